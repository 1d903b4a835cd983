"""Tests of the download path, against a local HTTP server and file:// URLs (no internet needed)."""

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import time
import urllib.request

import numpy as np
import pytest

from tinyconvmixer.data import DataError, download_url, load_cifar10
from tinyconvmixer.data import cifar as cifar_module, download as download_module
from tinyconvmixer.data.download import Archive


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """A private data folder; official batches of 10 images (the real ones hold 10,000)."""
    monkeypatch.setattr(cifar_module, "BATCH_IMAGES", 10)
    path = tmp_path / "data-home"
    monkeypatch.setenv("TINYCONVMIXER_DATA", str(path))
    return path


def small_binary_archive():
    """A cifar-10-binary.tar.gz in the official layout with 10 images per batch file."""
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            records = rng.integers(0, 256, size=(10, 3073), dtype=np.uint8)
            records[:, 0] = np.arange(10)                      # label byte
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.nbytes
            tar.addfile(info, io.BytesIO(records.tobytes()))
    return buffer.getvalue()


@pytest.fixture
def served(tmp_path):
    """A tiny HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, that folder)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def md5(data):
    return hashlib.md5(data).hexdigest()


def test_download_over_http(served, tmp_path, capsys):
    url, root = served
    payload = small_binary_archive()
    (root / "cifar-10-binary.tar.gz").write_bytes(payload)
    dest = tmp_path / "out" / "cifar-10-binary.tar.gz"
    assert download_url(f"{url}/cifar-10-binary.tar.gz", str(dest), md5(payload)) == str(dest)
    assert dest.read_bytes() == payload
    assert not list(dest.parent.glob("*.part"))
    assert "downloading cifar-10-binary.tar.gz" in capsys.readouterr().err   # the progress bar


def test_download_from_file_url_without_progress(tmp_path, capsys):
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "copy.bin"
    download_url(source.as_uri(), dest, md5(source.read_bytes()), progress=False)
    assert dest.read_bytes() == source.read_bytes()
    assert capsys.readouterr().err == ""


def test_checksum_mismatch_leaves_nothing_behind(served, tmp_path):
    url, root = served
    (root / "file.tar.gz").write_bytes(b"not what you wanted")
    dest = tmp_path / "out" / "file.tar.gz"
    wrong = "0" * 32
    with pytest.raises(DataError, match="checksum mismatch") as err:
        download_url(f"{url}/file.tar.gz", dest, wrong, progress=False)
    message = str(err.value)
    assert wrong in message and md5(b"not what you wanted") in message and f"{url}/file.tar.gz" in message
    assert list(dest.parent.iterdir()) == []              # no partial file, no renamed file


def test_http_error_leaves_nothing_behind(served, tmp_path):
    url, _ = served
    dest = tmp_path / "out" / "missing.tar.gz"
    with pytest.raises(DataError, match="could not download .*/missing.tar.gz.*404"):
        download_url(f"{url}/missing.tar.gz", dest, "0" * 32, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_load_downloads_into_the_data_dir(served, data_dir, monkeypatch):
    url, root = served
    payload = small_binary_archive()
    (root / "cifar-10-binary.tar.gz").write_bytes(payload)
    archive = Archive("cifar-10-binary.tar.gz", f"{url}/cifar-10-binary.tar.gz", md5(payload))
    monkeypatch.setattr(download_module, "CIFAR10_BINARY", archive)
    data = load_cifar10()
    assert data.train_x.shape == (50, 32, 32, 3) and data.test_y.tolist() == list(range(10))
    assert (data_dir / "cifar-10-binary.tar.gz").read_bytes() == payload
    assert "binary" in data.source and str(data_dir) in data.source


def test_offline_message(data_dir, monkeypatch):
    # Port 9 on 127.0.0.1 ("discard") is closed: the connection is refused, as when offline.
    archive = Archive("cifar-10-binary.tar.gz", "http://127.0.0.1:9/cifar-10-binary.tar.gz", "0" * 32)
    monkeypatch.setattr(download_module, "CIFAR10_BINARY", archive)
    with pytest.raises(DataError) as err:
        load_cifar10()
    message = str(err.value)
    assert "downloading it failed" in message and archive.url in message
    assert str(data_dir / "cifar-10-binary.tar.gz") in message          # which file to put where
    assert "image-folder" in message and "cifar-10-python.tar.gz" in message
    assert not any(data_dir.iterdir())                                  # no partial file left


def test_no_download_never_touches_the_network(data_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not open a URL")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="downloading is switched off") as err:
        load_cifar10(download=False)
    message = str(err.value)
    assert download_module.CIFAR10_BINARY.url in message
    assert str(data_dir / "cifar-10-binary.tar.gz") in message
    assert "train/<class>/*.png|jpg" in message


def test_official_constants():
    assert download_module.CIFAR10_BINARY.md5 == "c32a1d4ab5d03f1284b67883e8d87530"
    assert download_module.CIFAR10_PYTHON.md5 == "c58f30108f718f92721af3b95e74349a"
    assert download_module.CIFAR10_BINARY.url.endswith("/~kriz/cifar-10-binary.tar.gz")


class TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Announces 1 MB, then sends one byte every 0.1 s: never idle long enough for a read timeout."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass                                           # the client gave up: as it should

    def log_message(self, *args):
        pass


def test_a_trickling_server_is_stopped_by_the_overall_deadline(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    dest = tmp_path / "out" / "slow.tar.gz"
    start = time.monotonic()
    try:
        with pytest.raises(DataError, match=r"did not finish within 1 s \(\d+ of 1000000 bytes arrived\)"):
            download_url(f"http://127.0.0.1:{server.server_address[1]}/slow", dest, "0" * 32, progress=False,
                         timeout=5, deadline=1)
    finally:
        server.shutdown()
        server.server_close()
    # Stopped near the 1 s deadline, not after the 60 s the trickle lasts: the bound is loose, so
    # that a loaded machine (slow to schedule the threads) passes as well as a fast one.
    assert time.monotonic() - start < 30
    assert list(dest.parent.iterdir()) == []              # and no partial file


def test_temporary_files_of_killed_downloads_are_removed(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"abc")
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / "copy.tmp-999999999-0.bin"
    stale.write_bytes(b"half")
    download_url(source.as_uri(), tmp_path / "out" / "copy.bin", md5(b"abc"), progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.bin"]


def test_a_download_larger_than_any_cifar_archive_is_stopped(tmp_path):
    source = tmp_path / "endless.bin"
    source.write_bytes(b"x" * 5000)
    with pytest.raises(DataError, match="sent more than 4,096 bytes"):
        download_url(source.as_uri(), tmp_path / "out" / "x.bin", md5(b""), progress=False, max_bytes=4096)
    assert list((tmp_path / "out").iterdir()) == []
