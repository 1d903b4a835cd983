"""`load_cifar10`: find CIFAR-10 on disk (or download it), decode it once, cache it.

What `path` may be:

* an archive: cifar-10-binary.tar.gz, cifar-10-python.tar.gz, or a .tar.gz of
  an image-folder tree (like cifar10-jpeg.tar.gz);
* a folder: cifar-10-batches-bin/, cifar-10-batches-py/, or an image-folder
  root holding train/ and test/;
* a data folder holding any of the above (searched in the order of
  `CANDIDATES`: the official, lossless versions first); if it holds nothing
  usable, the official binary archive is downloaded into it (unless
  ``download=False``);
* "sample": the 3,000-image sample bundled with the package (see sample/README.md;
  to load a folder that happens to be called sample, write "./sample");
* None: the default data folder, ``$TINYCONVMIXER_DATA`` or else
  ``~/.cache/tinyconvmixer``, created if needed. If that holds nothing usable,
  the official binary archive is downloaded into it (unless ``download=False``).

A path that does not exist is an error (a DataError naming it): a mistyped
path must not create a new folder of that name and download 160 MB into it.

The decoded arrays are cached as an .npz in the default data folder (see
cache.py), keyed on the source's content, so only the first start pays for
decoding; that first decode reports on stderr what it is doing and how far it is.
"""

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..util.paths import kind as path_kind, quoted, shown
from ..util.statusline import StatusLine, format_seconds
from . import cache as npz_cache
from . import download as downloads
from .archive import is_archive, iter_archive, iter_folder
from .cifar import CLASSES, describe_counts, folder_contents, read_cifar, wanted
from .errors import DataError

SAMPLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample", "cifar10-sample.tar.gz")

# What a data folder may hold, in the order we look for it ("." is the folder itself).
CANDIDATES = ("cifar-10-batches-bin", "cifar-10-binary.tar.gz",
              "cifar-10-batches-py", "cifar-10-python.tar.gz",
              ".", "CIFAR-10-images", "cifar10-jpeg.tar.gz")

DESCRIPTIONS = {"binary": "official CIFAR-10 binary batches",
                "python": "official CIFAR-10 Python batches",
                "image-folder": "CIFAR-10 image folder"}


@dataclass
class CIFAR10:
    """CIFAR-10 in memory; labels index `classes`, which is in the official order."""
    train_x: np.ndarray = field(repr=False)   # (50000, 32, 32, 3) uint8, HWC images
    train_y: np.ndarray = field(repr=False)   # (50000,) int64 in 0..9
    test_x: np.ndarray = field(repr=False)    # (10000, 32, 32, 3) uint8
    test_y: np.ndarray = field(repr=False)    # (10000,) int64
    classes: tuple = CLASSES
    source: str = ""                          # where the data came from, for logs
    fingerprint: str = ""                     # hash of the four arrays: the data's identity (cache.py)
    path: str = ""                            # the archive or folder it was read from


def default_data_dir():
    """$TINYCONVMIXER_DATA if set, else ~/.cache/tinyconvmixer."""
    return os.path.expanduser(os.environ.get("TINYCONVMIXER_DATA") or "~/.cache/tinyconvmixer")


def find_source(folder):
    """The first CIFAR-10 archive or folder in `folder`, in `CANDIDATES` order, or None."""
    for name in CANDIDATES:
        path = os.path.normpath(os.path.join(folder, name))
        if is_archive(name) and os.path.isfile(path):
            return path
        if not is_archive(name) and os.path.isdir(path) and folder_contents(path, list_files=False):
            return path
    return None


def load_cifar10(path=None, download=True, cache=True, progress=True):
    """Load CIFAR-10 (see the module docstring for what `path` may be) as a `CIFAR10`.

    download: fetch the official binary archive into the data folder when
        nothing usable is there; with False, raise a DataError that says
        which file to put where instead.
    cache: read and write the decoded-array cache.
    progress: report a first decode on stderr (what, how far, how long).
    """
    data_dir = default_data_dir()
    if path is None:
        source = _find_or_download(data_dir, download)
    elif isinstance(path, str) and path == "sample":
        source = SAMPLE_PATH
        if not os.path.isfile(SAMPLE_PATH):
            raise DataError(f"the bundled sample {SAMPLE_PATH} is missing from this installation; reinstall "
                            "tinyconvmixer, or rebuild it with python -m tinyconvmixer.data.make_sample")
    else:
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        what = path_kind(path)
        if what == "a file":
            source = path
        elif what == "a folder":
            source = _find_or_download(path, download)   # an empty folder may be downloaded into
        elif what is None:                               # a typo must not start a download into a new folder
            raise DataError(f"{quoted(path)} does not exist: give an existing CIFAR-10 archive or folder (an "
                            f"empty folder to download it into), or no path to use the default data folder "
                            f"{quoted(data_dir)}")
        else:
            raise DataError(f"{quoted(path)} is {what}, not a CIFAR-10 archive or folder: give the path of "
                            "the archive (.tar.gz) or of the folder that holds the data")

    if os.path.isfile(source):
        files = [source]
        entries = lambda report: iter_archive(source, wanted, report)     # noqa: E731
    else:
        _, names, folders = folder_contents(source)
        files = [os.path.join(source, *name.split("/")) for name in names]
        entries = lambda report: iter_folder(source, names, folders, report)   # noqa: E731

    try:
        cache_file = npz_cache.cache_path(source, files, data_dir) if cache else None
    except OSError as exc:
        raise DataError(f"cannot read {quoted(source)} ({exc.strerror or exc})") from exc
    hit = npz_cache.load(cache_file) if cache else None
    if hit is not None:
        arrays, kind, fingerprint = hit
        how = f"decoded arrays from {cache_file}"
    else:
        report = DecodeReport(source, cached=cache, enabled=progress)
        arrays, kind = read_cifar(entries(report), source)
        report.finish(len(arrays["train_y"]) + len(arrays["test_y"]), describe_counts(arrays))
        fingerprint = npz_cache.fingerprint(arrays)
        written = npz_cache.save(cache_file, arrays, kind, fingerprint) if cache else None
        how = f"decoded now, cached in {written}" if written else "decoded now, not cached"
    what = DESCRIPTIONS[kind] + (" (the bundled sample)" if source == SAMPLE_PATH else "")
    return CIFAR10(**arrays, classes=CLASSES, source=f"{what}: {source} ({how})", fingerprint=fingerprint,
                   path=source)


class DecodeReport:
    """The status line of a first decode: what is decoded, how far (%), for how long."""

    def __init__(self, source, cached=True, enabled=True):
        self.name, self.start = shown(os.path.basename(source)), time.perf_counter()
        self.line = StatusLine() if enabled else None
        self.what = "first use: decoding" if cached else "decoding"
        self.show(0, 1, force=True)

    def show(self, done, total, force=False):
        if self.line is not None and (force or self.line.due()):
            elapsed = time.perf_counter() - self.start
            self.line.show(f"{self.what} CIFAR-10 from {self.name}: {100 * done / max(total, 1):3.0f}% "
                           f"({format_seconds(elapsed)} elapsed)", force=True)

    __call__ = show

    def finish(self, n_images, counts=""):
        """The last line: how many images, from where, how long; `counts` the images per class."""
        if self.line is not None:
            seconds = time.perf_counter() - self.start
            self.line.close(f"decoded {self.name} in {seconds:.3g} s: "
                            + (counts if counts else f"{n_images:,} images"))


def _find_or_download(folder, download):
    """A CIFAR-10 source in `folder`; when there is none, download the official archive there."""
    source = find_source(folder) if os.path.isdir(folder) else None
    if source is not None:
        return source
    archive = downloads.CIFAR10_BINARY
    if not download:
        reason = "downloading is switched off (download=False / --no-download)."
        raise DataError(downloads.missing_data_message(folder, reason))
    try:
        return downloads.download_url(archive.url, os.path.join(folder, archive.filename), archive.md5)
    except (DataError, OSError) as exc:
        reason = f"downloading it failed:\n    {exc}"
        raise DataError(downloads.missing_data_message(folder, reason)) from exc
