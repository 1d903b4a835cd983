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

Sizes are checked from the tar header (or the file system) BEFORE anything is
read: a member larger than any real CIFAR-10 file (a gzip "bomb": 2 MB that
inflate to gigabytes), more members or more bytes in all than a CIFAR-10
archive holds, or the same file name twice (which copy is meant?) is refused.

Both iterators yield ``(name, data)`` pairs: ``name`` is a "/"-separated path
relative to the archive or folder root, ``data`` is the file's bytes, or None
for a directory.
"""

import os
import stat
import tarfile
import zlib

from ..util.paths import quoted
from .errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# Limits well above anything in a real CIFAR-10 archive or folder. The largest real
# file is a Python batch (31,035,704 bytes); an image is a few kilobytes; the whole
# data set is about 185 MB in 60,000 files.
MAX_FILE_BYTES = 32 * 2**20          # any one member
MAX_TOTAL_BYTES = 1 * 2**30          # all members together
MAX_MEMBERS = 200_000                # files and folders


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
        raise DataError(f"{quoted(archive)}: refusing archive member {name!r}: absolute paths and "
                        "'..' components are not allowed (the archive is not a safe CIFAR-10 archive)")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{quoted(archive)}: refusing archive member {name!r}: links, devices and other "
                        "special files are not allowed (the archive is not a safe CIFAR-10 archive)")


class SizeGuard:
    """Counts members and bytes, and refuses (DataError) what no CIFAR-10 source holds."""

    def __init__(self, where):
        self.where, self.members, self.total, self.names = quoted(where), 0, 0, set()

    def check(self, name, size, is_file=True):
        self.members += 1
        self.total += size
        if size > MAX_FILE_BYTES:
            raise DataError(f"{self.where}: refusing {name!r}: it is {size:,} bytes, larger than any CIFAR-10 "
                            f"file (at most {MAX_FILE_BYTES:,}); this is not a CIFAR-10 source")
        if self.members > MAX_MEMBERS or self.total > MAX_TOTAL_BYTES:
            raise DataError(f"{self.where}: refusing to read on at {name!r}: more than {MAX_MEMBERS:,} entries "
                            f"or {MAX_TOTAL_BYTES:,} bytes, far more than CIFAR-10 holds")
        if is_file:
            if name in self.names:
                raise DataError(f"{self.where}: the file {name!r} appears twice; refusing the archive as "
                                "ambiguous (which copy is meant?)")
            self.names.add(name)


def _member_name(member):
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def iter_archive(path, wanted, progress=None):
    """Yield (name, bytes) for each file of the archive that passes `wanted(name)`, and (name, None) per folder.

    Files that `wanted` rejects are skipped without being read. Every member's
    size is checked against the limits above before it is read. Any problem
    reading the archive (not a tar file, bad gzip data, cut short) becomes a
    DataError that names the archive. progress(bytes_read, archive_bytes), if
    given, is called after each member (bytes of the compressed file so far).
    """
    guard = SizeGuard(path)
    try:
        total = os.path.getsize(path)
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for member in tar:
                check_member(member, path)
                name = _member_name(member)
                guard.check(name, member.size, is_file=member.isfile() and wanted(name))
                if member.isdir():
                    yield name, None
                elif wanted(name):
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise EOFError(f"member {name!r} holds {len(data):,} of its {member.size:,} bytes")
                    yield name, data
                if progress is not None:
                    progress(raw.tell(), total)
            _check_end(tar, guard.members)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        detail = " ".join(str(exc).split())        # tarfile's message may span lines: keep one
        raise DataError(f"{quoted(path)}: cannot read this as a tar archive: it is corrupt, truncated or not "
                        f"a .tar.gz at all ({type(exc).__name__}: {detail}). If it was downloaded, "
                        "delete it and download it again.") from exc


def _check_end(tar, members):
    """A tar archive ends with a block of zeros (two, by the standard). tarfile stops without a
    word where the file ends, or at a damaged header, as if the archive ended there: a plain
    .tar cut at a member boundary would pass for a smaller one. So the block where reading
    stopped must be that end marker, and only zeros may follow it (else two archives were
    joined, and the second would go unread). Reading to the end also makes gzip check its
    own end-of-stream marker and CRC, which it does only there."""
    tar.fileobj.seek(tar.offset)
    block = tar.fileobj.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        what = ("the file ends" if not block else "the file ends inside a member header"
                if len(block) < tarfile.BLOCKSIZE else "a damaged member header follows")
        raise EOFError(f"no end-of-archive marker after {members:,} entries: {what} at byte "
                       f"{tar.offset:,} of the archive's contents (the file was cut short or is damaged)")
    while chunk := tar.fileobj.read(1 << 20):
        if chunk.count(0) != len(chunk):
            raise EOFError("more data after the end-of-archive marker (two archives joined into one?)")


def iter_folder(root, files, folders=(), progress=None):
    """Yield (name, bytes) for `files` and (name, None) for `folders`, names relative to `root`.

    Sizes are checked (as for archives) before a file is read; progress(files_read,
    number_of_files), if given, is called after each file.
    """
    guard = SizeGuard(root)
    for name in folders:
        guard.check(name, 0, is_file=False)
        yield name, None
    for done, name in enumerate(files, 1):
        path = os.path.join(root, *name.split("/"))
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):       # a FIFO or a device would block or never end
                raise DataError(f"{quoted(path)}: not a regular file (a pipe, socket or device); refusing "
                                "to read it")
            guard.check(name, st.st_size)
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)       # a file that grew since it was measured stays bounded
        except OSError as exc:
            raise DataError(f"{quoted(path)}: cannot read this file ({exc.strerror or exc})") from exc
        if len(data) > MAX_FILE_BYTES:
            guard.check(name + " (grew while being read)", len(data))
        yield name, data
        if progress is not None:
            progress(done, len(files))
