"""Downloading the official CIFAR-10 archive, with a checksum and nothing left behind on failure.

`download_url` streams a URL to a temporary file beside `dest` (an atomic
write, see ../atomic.py), shows a text progress bar on stderr, checks the MD5
and only then renames the file to `dest`. If anything goes wrong (no network,
a cut connection, a wrong checksum, Ctrl-C) the partial file is deleted, so a
later run never mistakes half an archive for the real thing.

`missing_data_message` is the text shown when CIFAR-10 is not on disk and
cannot be downloaded (offline machine, or downloading switched off): it says
which file to put where, where to get it, and what else would do.
"""

import hashlib
import os
import time
import urllib.request
from dataclasses import dataclass

from ..util.atomic import atomic_write, remove_stale_temp_files
from ..util.paths import quoted, shown
from ..util.statusline import StatusLine
from .errors import DataError


@dataclass(frozen=True)
class Archive:
    """An official CIFAR-10 download: file name, URL and MD5 published by its authors."""
    filename: str
    url: str
    md5: str


CIFAR10_BINARY = Archive("cifar-10-binary.tar.gz",
                         "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                         "c32a1d4ab5d03f1284b67883e8d87530")
CIFAR10_PYTHON = Archive("cifar-10-python.tar.gz",
                         "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                         "c58f30108f718f92721af3b95e74349a")

CHUNK = 1 << 20   # read and hash up to 1 MiB at a time
DEADLINE = 3600   # seconds for a whole download (163 MB: over 45 KB/s needed)
MAX_BYTES = 1 << 30   # the official archives are 163 and 170 MB


def download_url(url, dest, md5, progress=True, timeout=60, deadline=DEADLINE, max_bytes=MAX_BYTES):
    """Download `url` to the file `dest`, check its MD5 hex digest, and return `dest`.

    The data goes to a temporary file beside `dest` (see ../atomic.py) and is
    renamed to `dest` only once complete and verified; on any failure the
    partial file is removed and a DataError naming the URL is raised (a
    checksum mismatch also names the expected and the actual MD5).

    timeout: seconds without any data before giving up (per network read).
    deadline: seconds for the whole download. The timeout alone cannot stop a
        server that sends a byte every few seconds; the deadline does (it is
        checked after every read, so it is overrun by at most `timeout`).
    max_bytes: stop a server that sends more than any CIFAR-10 archive holds.
    """
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    name = os.path.basename(dest)
    remove_stale_temp_files(os.path.dirname(os.path.abspath(dest)))   # left by killed downloads
    start = time.monotonic()

    def fetch(tmp):
        """Stream `url` into `tmp`, then check it; raising here deletes `tmp`."""
        digest, done, total = hashlib.md5(), 0, 0
        line = StatusLine(min_interval=0.2, log_interval=30.0) if progress else None
        try:
            with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as response, \
                    open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                # read1: return what has arrived (read() would wait for a whole chunk, past the deadline)
                while chunk := response.read1(CHUNK):
                    if time.monotonic() - start > deadline:
                        raise DataError(f"the download of {url} did not finish within {deadline:g} s "
                                        f"({done:,} of {total or '?'} bytes arrived); the partial file was "
                                        "deleted. Try again later, or fetch the file by hand")
                    if done + len(chunk) > max_bytes:
                        raise DataError(f"the download of {url} sent more than {max_bytes:,} bytes, far more "
                                        "than CIFAR-10; the partial file was deleted")
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if line is not None:
                        line.show(_progress_text(name, done, total), force=done == total)
        finally:
            if line is not None and done:
                line.close(_progress_text(name, done, total))    # (before any error is shown)
        if total and done != total:
            raise DataError(f"the download of {url} stopped after {done} of {total} bytes; "
                            "the partial file was deleted, try again")
        got = digest.hexdigest()
        if got != md5:
            raise DataError(f"checksum mismatch for {url}: expected md5 {md5}, got {got}. "
                            "The download was deleted; try again, or fetch the file by hand.")

    try:
        return atomic_write(dest, fetch)   # also on Ctrl-C: never leave a partial download behind
    except DataError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise DataError(f"could not download {url} to {quoted(dest)} ({type(exc).__name__}: {detail})") from exc


def _progress_text(name, done, total):
    """The status line of a download: a 20-character bar, megabytes and percent."""
    mb = done / 1e6
    if total:
        filled = int(20 * done / total)
        bar = "#" * filled + "." * (20 - filled)
        return f"downloading {shown(name)} [{bar}] {mb:.1f}/{total / 1e6:.1f} MB {100 * done / total:.0f}%"
    return f"downloading {shown(name)} {mb:.1f} MB"


def missing_data_message(data_dir, reason):
    """Explain that CIFAR-10 is missing from `data_dir` (`reason` says why it was not downloaded)."""
    binary, python = CIFAR10_BINARY, CIFAR10_PYTHON
    return (
        f"CIFAR-10 was not found in {quoted(data_dir)}, and {reason}\n"
        f"Put the official archive {binary.filename} (md5 {binary.md5}) at\n"
        f"    {shown(os.path.join(data_dir, binary.filename))}\n"
        f"after downloading it on a machine with internet access from\n"
        f"    {binary.url}\n"
        f"The Python version {python.filename} ({python.url})\n"
        "or the extracted folders cifar-10-batches-bin/ or cifar-10-batches-py/ work as well.\n"
        "So does an image-folder copy, train/<class>/*.png|jpg and test/<class>/*.png|jpg with\n"
        "the ten class folders airplane automobile bird cat deer dog frog horse ship truck,\n"
        "as a folder or as a .tar.gz of one (like cifar10-jpeg.tar.gz).\n"
        "Set TINYCONVMIXER_DATA to use another data folder, or give the file or folder path explicitly."
    )
