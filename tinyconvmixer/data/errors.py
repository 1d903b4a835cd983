"""The one exception type of `tinyconvmixer.data`.

Everything that can go wrong while finding, downloading, reading or caching
CIFAR-10 (a missing file, a corrupt archive, a malicious pickle, a folder with
a class missing) is reported as a `DataError` whose message names the file and
says what to do. Catching `DataError` therefore catches every data problem and
nothing else.
"""


class DataError(RuntimeError):
    """CIFAR-10 could not be found, downloaded, read or cached (see the message)."""
