"""Reading the files of a .tar.gz archive or of a folder, safely.

We never extract archives to disk. `iter_archive` walks the members of a tar
file in order and hands back the bytes of the ones the caller wants; the CIFAR
readers decode them straight from memory. That is both the fastest way (one
sequential pass over the gzip stream) and the safest: no file is ever written
from a name chosen by whoever made the archive.

Still, an archive whose member names try to escape their folder (an absolute
path, a ``..`` component) or that contains links or device files is not a
CIFAR-10 archive we want anything to do with, so such members are refused
with a `DataError` (the checks Python 3.12's ``tarfile`` ``filter="data"``
would make when extracting, written out here so they also run on 3.11).

Both iterators yield ``(name, data)`` pairs: ``name`` is a "/"-separated path
relative to the archive or folder root, ``data`` is the file's bytes, or None
for a directory.
"""

import os
import tarfile
import zlib

from .errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_archive(path):
    """True when `path` has a tar archive's file name."""
    return os.fspath(path).lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path):
    """The file name without its archive suffix: 'cifar-10-binary.tar.gz' -> 'cifar-10-binary'."""
    name = os.path.basename(os.fspath(path))
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_member(member, archive):
    """Raise DataError unless `member` is a plain file or folder with a harmless name."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    drive = len(parts[0]) == 2 and parts[0][1] == ":"          # C:/... on Windows
    if name.startswith(("/", "\\")) or drive or ".." in parts:
        raise DataError(f"{archive}: refusing archive member {name!r}: absolute paths and "
                        "'..' components are not allowed (the archive is not a safe CIFAR-10 archive)")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: refusing archive member {name!r}: links, devices and other "
                        "special files are not allowed (the archive is not a safe CIFAR-10 archive)")


def iter_archive(path, wanted):
    """Yield (name, bytes) for each file of the archive that passes `wanted(name)`, and (name, None) per folder.

    Files that `wanted` rejects are skipped without being read. Any problem
    reading the archive (not a tar file, bad gzip data, cut short) becomes a
    DataError that names the archive.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                check_member(member, path)
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                name = name.rstrip("/")
                if member.isdir():
                    yield name, None
                elif wanted(name):
                    yield name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: cannot read this as a tar archive: it is corrupt, truncated or not "
                        f"a .tar.gz at all ({type(exc).__name__}: {exc}). If it was downloaded, "
                        "delete it and download it again.") from exc


def iter_folder(root, files, folders=()):
    """Yield (name, bytes) for `files` and (name, None) for `folders`, names relative to `root`."""
    for name in folders:
        yield name, None
    for name in files:
        path = os.path.join(root, *name.split("/"))
        try:
            with open(path, "rb") as f:
                yield name, f.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read this file ({exc})") from exc
