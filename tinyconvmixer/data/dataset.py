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

The decoded arrays are cached as an .npz (see cache.py), so only the first
start pays for decoding.
"""

import os
from dataclasses import dataclass, field

import numpy as np

from . import cache as npz_cache
from . import download as downloads
from .archive import is_archive, iter_archive, iter_folder
from .cifar import CLASSES, folder_contents, read_cifar, wanted
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


def load_cifar10(path=None, download=True, cache=True):
    """Load CIFAR-10 (see the module docstring for what `path` may be) as a `CIFAR10`.

    download: fetch the official binary archive into the data folder when
        nothing usable is there; with False, raise a DataError that says
        which file to put where instead.
    cache: read and write the decoded-array cache.
    """
    data_dir = default_data_dir()
    beside_source = True           # cache next to the source when its folder is writable
    if path is None:
        source = _find_or_download(data_dir, download)
    elif isinstance(path, str) and path == "sample":
        source, beside_source = SAMPLE_PATH, False   # never write into the installed package
        if not os.path.isfile(SAMPLE_PATH):
            raise DataError(f"the bundled sample {SAMPLE_PATH} is missing from this installation; reinstall "
                            "tinyconvmixer, or rebuild it with python -m tinyconvmixer.data.make_sample")
    else:
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if os.path.isfile(path):
            source = path
        elif os.path.isdir(path):
            source = _find_or_download(path, download)   # an empty folder may be downloaded into
        else:                                            # a typo must not start a download into a new folder
            raise DataError(f"{path} does not exist: give an existing CIFAR-10 archive or folder (an empty "
                            f"folder to download it into), or no path to use the default data folder {data_dir}")

    # `entries` is a generator: nothing is read unless the cache misses and it is consumed.
    if os.path.isfile(source):
        files, entries = [source], iter_archive(source, wanted)
    else:
        _, names, folders = folder_contents(source)
        files = [os.path.join(source, *name.split("/")) for name in names]
        entries = iter_folder(source, names, folders)

    places = npz_cache.cache_paths(source, files, data_dir, beside_source) if cache else []
    arrays, kind, cache_file = npz_cache.load(places)
    if arrays is not None:
        how = f"decoded arrays from {cache_file}"
    else:
        arrays, kind = read_cifar(entries, source)
        written = npz_cache.save(places, arrays, kind) if cache else None
        how = f"decoded now, cached in {written}" if written else "decoded now, not cached"
    what = DESCRIPTIONS[kind] + (" (the bundled sample)" if source == SAMPLE_PATH else "")
    return CIFAR10(**arrays, classes=CLASSES, source=f"{what}: {source} ({how})")


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
