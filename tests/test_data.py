"""Tests of CIFAR-10 loading: every format, the cache, the safety checks, the bundled sample.

The archives are small fakes built here in the official layouts (a dozen
random images per batch), so the tests need no network and little time.
"""

import io
import os
import pickle
import re
import struct
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyconvmixer.data import CLASSES, DataError, load_cifar10
from tinyconvmixer.data import cifar as cifar_module, dataset as dataset_module

PER_BATCH = 10          # images per official batch file in the fakes: one of each class


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """A private default data folder, so no test touches ~/.cache; and official batches of PER_BATCH
    images (the real ones hold 10,000: the loader checks that a source holds what it claims)."""
    monkeypatch.setattr(cifar_module, "BATCH_IMAGES", PER_BATCH)
    path = tmp_path / "data-home"
    monkeypatch.setenv("TINYCONVMIXER_DATA", str(path))
    return path


@pytest.fixture(scope="module")
def cifar():
    """Random 'CIFAR-10': five train batches and a test batch of (images HWC, labels), each class once in each."""
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, size=(PER_BATCH, 32, 32, 3), dtype=np.uint8),
             rng.permutation(np.arange(PER_BATCH) % 10)) for _ in range(6)]


def expected(cifar):
    return dict(train_x=np.concatenate([x for x, _ in cifar[:5]]),
                train_y=np.concatenate([y for _, y in cifar[:5]]),
                test_x=cifar[5][0], test_y=cifar[5][1])


def assert_same(data, want):
    for key, value in want.items():
        got = getattr(data, key)
        assert got.dtype == (np.uint8 if key.endswith("_x") else np.int64), key
        np.testing.assert_array_equal(got, value, err_msg=key)
    assert data.classes == CLASSES


# ----------------------------------------------------------------- builders

def binary_batch(images, labels):
    """The official binary record format: label byte + CHW image bytes, per image."""
    chw = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], chw], axis=1).tobytes()


def python_batch(images, labels, protocol):
    """The official pickle format: a dict with b'data' (N, 3072) CHW rows and b'labels'."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {b"batch_label": b"fake batch", b"labels": [int(v) for v in labels], b"data": rows,
             b"filenames": [b"x.png"] * len(labels)}
    return pickle.dumps(batch, protocol=protocol)


BINARY_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
PYTHON_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_binary_folder(folder, cifar):
    folder.mkdir(parents=True)
    for name, (x, y) in zip(BINARY_NAMES, cifar):
        (folder / name).write_bytes(binary_batch(x, y))
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


def write_python_folder(folder, cifar):
    folder.mkdir(parents=True)
    for i, (name, (x, y)) in enumerate(zip(PYTHON_NAMES, cifar)):
        (folder / name).write_bytes(python_batch(x, y, protocol=2 + i % 4))   # protocols 2..5
    return folder


def write_image_folder(root, cifar, suffix=".png"):
    """train/<class>/<n>.png and test/<class>/<n>.png (PNG is lossless, so pixels round-trip)."""
    for split, batches in (("train", cifar[:5]), ("test", cifar[5:])):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
        for k, (x, y) in enumerate((img, lab) for xs, ys in batches for img, lab in zip(xs, ys)):
            Image.fromarray(x).save(root / split / CLASSES[y] / f"{k:04d}{suffix}")
    return root


def tar_folder(folder, archive, arcname):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return archive


def image_folder_expected(cifar):
    """What an image folder of `cifar` decodes to: sorted by class, then file name."""
    out = {}
    for split, batches in (("train", cifar[:5]), ("test", cifar[5:])):
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        order = np.lexsort((np.arange(len(y)), y))       # by label, then by file number
        out[f"{split}_x"], out[f"{split}_y"] = x[order], y[order]
    return out


def tar_with(path, members):
    """A .tar.gz holding the given (TarInfo, bytes or None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


# -------------------------------------------------------------- the formats

def test_binary_archive_and_folder(tmp_path, cifar):
    folder = write_binary_folder(tmp_path / "src" / "cifar-10-batches-bin", cifar)
    archive = tar_folder(folder, tmp_path / "cifar-10-binary.tar.gz", "cifar-10-batches-bin")
    for path in (archive, folder, tmp_path / "src"):          # archive, folder, data folder
        data = load_cifar10(path, download=False)
        assert_same(data, expected(cifar))
        assert "binary" in data.source and str(path) in data.source


def test_python_archive_and_torchvision_folder(tmp_path, cifar):
    root = tmp_path / "torchvision-root"              # root/cifar-10-batches-py, as torchvision leaves it
    folder = write_python_folder(root / "cifar-10-batches-py", cifar)
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    for path in (archive, folder, root):
        data = load_cifar10(path, download=False)
        assert_same(data, expected(cifar))
        assert "Python" in data.source


def test_image_folder_and_its_tarball(tmp_path, cifar):
    root = write_image_folder(tmp_path / "images", cifar)
    archive = tar_folder(root, tmp_path / "cifar10-jpeg.tar.gz", "cifar10")   # with a top folder
    want = image_folder_expected(cifar)
    for path in (root, archive):
        data = load_cifar10(path, download=False)
        assert_same(data, want)
        assert "image folder" in data.source


def test_data_folder_prefers_the_official_binary_version(tmp_path, cifar):
    folder = tmp_path / "data"
    folder.mkdir()
    tar_folder(write_image_folder(tmp_path / "images", cifar), folder / "cifar10-jpeg.tar.gz", ".")
    assert "image folder" in load_cifar10(folder, download=False).source
    write_python_folder(folder / "cifar-10-batches-py", cifar)
    assert "Python" in load_cifar10(folder, download=False).source
    write_binary_folder(folder / "cifar-10-batches-bin", cifar)
    assert "binary" in load_cifar10(folder, download=False).source


def test_default_data_dir_comes_from_the_environment(data_dir, cifar):
    write_binary_folder(data_dir / "cifar-10-batches-bin", cifar)
    data = load_cifar10(download=False)
    assert_same(data, expected(cifar))
    assert str(data_dir) in data.source


# ---------------------------------------------------------------- the cache

def test_cache_is_written_in_the_cache_folder_keyed_on_content_and_reused(tmp_path, data_dir, cifar, capsys):
    folder = write_binary_folder(tmp_path / "src" / "cifar-10-batches-bin", cifar)
    archive = tar_folder(folder, tmp_path / "src" / "cifar-10-binary.tar.gz", "cifar-10-batches-bin")
    first = load_cifar10(archive, download=False)
    assert "first use: decoding CIFAR-10 from cifar-10-binary.tar.gz" in capsys.readouterr().err
    assert not list((tmp_path / "src").glob("*.npz"))       # never beside the source
    caches = sorted(data_dir.glob("cifar-10-binary.decoded-*.npz"))
    assert len(caches) == 1 and "decoded now" in first.source
    with np.load(caches[0], allow_pickle=False) as npz:    # plain arrays, no pickle needed
        assert npz["train_x"].dtype == np.uint8
    second = load_cifar10(archive, download=False)
    assert "decoded arrays from" in second.source and str(caches[0]) in second.source
    assert "decoding" not in capsys.readouterr().err
    assert_same(second, expected(cifar))
    assert second.fingerprint == first.fingerprint and len(first.fingerprint) == 16
    assert not list(data_dir.glob("*.tmp*"))                 # no temporary file left behind

    # The source edited in place, its size and modification time kept: a new cache, the stale one removed.
    plain = tmp_path / "src" / "cifar-10-binary.tar"              # uncompressed: edit a label byte in place
    with tarfile.open(plain, "w") as tar:
        tar.add(folder, arcname="cifar-10-batches-bin")
    first = load_cifar10(plain, download=False)
    caches = sorted(data_dir.glob("cifar-10-binary.decoded-*.npz"))
    with tarfile.open(plain) as tar:
        offset = tar.getmember("cifar-10-batches-bin/data_batch_1.bin").offset_data
    before = os.stat(plain)
    raw = bytearray(plain.read_bytes())
    raw[offset + 1] = (raw[offset + 1] + 1) % 256                  # image 0's first red pixel
    plain.write_bytes(bytes(raw))
    os.utime(plain, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(plain).st_size, os.stat(plain).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    third = load_cifar10(plain, download=False)
    assert "decoded now" in third.source and third.fingerprint != first.fingerprint
    assert third.train_x[0, 0, 0, 0] == (int(first.train_x[0, 0, 0, 0]) + 1) % 256
    assert sorted(data_dir.glob("cifar-10-binary.decoded-*.npz")) != caches
    assert len(list(data_dir.glob("cifar-10-binary.decoded-*.npz"))) == 2   # one per source path


def test_cache_keyed_on_content_of_a_folder(tmp_path, data_dir, cifar):
    """A batch file of a folder edited in place, size and time kept: decoded again."""
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    first = load_cifar10(folder, download=False)
    victim = folder / "test_batch.bin"
    st = os.stat(victim)
    raw = bytearray(victim.read_bytes())
    raw[1] = (raw[1] + 1) % 256                                    # the first test image's first red pixel
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = load_cifar10(folder, download=False)
    assert "decoded now" in second.source and second.fingerprint != first.fingerprint
    assert second.test_x[0, 0, 0, 0] == (int(first.test_x[0, 0, 0, 0]) + 1) % 256


def test_read_only_cache_folder_loads_without_a_cache(tmp_path, data_dir, cifar, recwarn):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    data_dir.mkdir()
    os.chmod(data_dir, 0o555)
    try:
        data = load_cifar10(folder, download=False)
    finally:
        os.chmod(data_dir, 0o755)
    assert_same(data, expected(cifar))
    assert "not cached" in data.source and not list(data_dir.iterdir())
    assert any("could not write the data cache" in str(w.message) for w in recwarn)


def test_cache_off_and_broken_cache(tmp_path, data_dir, cifar):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    load_cifar10(folder, cache=False)
    assert not list(tmp_path.glob("*.npz")) and not data_dir.exists()
    load_cifar10(folder)
    (cache,) = data_dir.glob("*.npz")
    cache.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="ignoring unreadable cache"):
        data = load_cifar10(folder)
    assert_same(data, expected(cifar))


@pytest.mark.parametrize("problem,edit", [
    ("labels outside 0..9", lambda a: a["train_y"].__setitem__(0, 10)),
    ("labels outside 0..9", lambda a: a["test_y"].__setitem__(0, -1)),
    ("unexpected train arrays", lambda a: a.__setitem__("train_y", a["train_y"][:-1])),
    ("unexpected test arrays", lambda a: a.__setitem__("test_x", a["test_x"].astype(np.float32))),
    ("unknown kind", lambda a: a.__setitem__("kind", np.array("pickle"))),
    ("fingerprint", lambda a: a.pop("fingerprint")),
])
def test_a_cache_that_fails_its_checks_is_ignored_and_the_data_decoded_again(tmp_path, data_dir, cifar,
                                                                            problem, edit):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    load_cifar10(folder)
    (cache,) = data_dir.glob("*.npz")
    with np.load(cache) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(cache, **arrays)
    with pytest.warns(UserWarning, match=f"ignoring unreadable cache .*{problem}"):
        data = load_cifar10(folder)
    assert_same(data, expected(cifar))
    assert "decoded now" in data.source
    assert "decoded arrays from" in load_cifar10(folder).source       # rewritten, good again


def test_temporary_files_of_killed_cache_writers_are_removed(tmp_path, data_dir, cifar):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    data_dir.mkdir()
    dead = data_dir / "cifar-10-batches-bin.decoded-x.tmp-999999999-0.npz"
    alive = data_dir / f"cifar-10-batches-bin.decoded-y.tmp-{os.getppid()}-0.npz"    # a live process's
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    load_cifar10(folder)
    assert not dead.exists() and alive.exists()


# ------------------------------------------------------------ safety checks

@pytest.mark.parametrize("name", ["../evil.bin", "/tmp/evil.bin", "ok/../../evil.bin"])
def test_archive_with_escaping_member_is_refused(tmp_path, name):
    archive = tar_with(tmp_path / "bad.tar.gz", [(tarfile.TarInfo(name), b"boom")])
    with pytest.raises(DataError, match="refusing archive member") as err:
        load_cifar10(archive, download=False)
    assert str(archive) in str(err.value)
    assert not (tmp_path.parent / "evil.bin").exists()


def test_oversized_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A header declaring 2 GB (a gzip bomb would inflate to it): refused from the header alone."""
    from tinyconvmixer.data import archive as archive_module

    def never(*args, **kwargs):
        raise AssertionError("the member was read")
    monkeypatch.setattr(tarfile.TarFile, "extractfile", never)
    info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    info.size = 2_000_000_000
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:
        tar.addfile(info)                                  # the header only: no 2 GB anywhere
    with pytest.raises(DataError, match=r"refusing 'cifar-10-batches-bin/data_batch_1.bin': it is "
                                        r"2,000,000,000 bytes, larger than any CIFAR-10 file"):
        load_cifar10(bomb, download=False)
    monkeypatch.setattr(archive_module, "MAX_MEMBERS", 5)  # and more members than any CIFAR-10 source
    many = tar_with(tmp_path / "many.tar.gz", [(tarfile.TarInfo(f"x/{i}.txt"), b"") for i in range(9)])
    with pytest.raises(DataError, match="more than 5 entries"):
        load_cifar10(many, download=False)


def test_oversized_file_in_a_folder_is_refused_before_it_is_read(tmp_path, cifar, monkeypatch):
    from tinyconvmixer.data import archive as archive_module

    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    monkeypatch.setattr(archive_module, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DataError, match="data_batch_1.bin': it is 30,730 bytes, larger than any CIFAR-10 file"):
        load_cifar10(folder, download=False, cache=False)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_in_an_image_folder_is_refused_not_waited_for(tmp_path, cifar):
    root = write_image_folder(tmp_path / "imgs", cifar)
    os.mkfifo(root / "train" / "cat" / "pipe.png")
    with pytest.raises(DataError, match="pipe.png': not a regular file"):
        load_cifar10(root, download=False)


def test_duplicate_batch_names_are_refused_as_ambiguous(tmp_path, cifar):
    batches = [(tarfile.TarInfo(f"cifar-10-batches-bin/{name}"), binary_batch(x, y))
               for name, (x, y) in zip(BINARY_NAMES, cifar)]
    twice = tar_with(tmp_path / "twice.tar.gz", batches + [(tarfile.TarInfo(batches[0][0].name),
                                                            binary_batch(*cifar[1]))])
    with pytest.raises(DataError, match="data_batch_1.bin' appears twice; refusing the archive as ambiguous"):
        load_cifar10(twice, download=False)
    elsewhere = tar_with(tmp_path / "two.tar.gz", batches + [(tarfile.TarInfo("copy/data_batch_1.bin"),
                                                              binary_batch(*cifar[1]))])
    with pytest.raises(DataError, match="two files named data_batch_1.bin .*refusing to guess"):
        load_cifar10(elsewhere, download=False)


@pytest.mark.parametrize("labels,message", [
    (None, "no labels"),
    ([0.0, 1.5] * (PER_BATCH // 2), "expected 10 integer labels in 0..9, got float64"),
    (["cat"] * PER_BATCH, "expected 10 integer labels in 0..9, got <U3"),
    ([True] * PER_BATCH, "got bool"),
    ([[0, 1], [2]] + [0] * (PER_BATCH - 2), "the labels are not a list of integers"),
    ([2 ** 70] * PER_BATCH, "got object"),
    ([0] * (PER_BATCH - 1), "got int64 values of shape (9,)"),
    ([12] * PER_BATCH, "expected labels in 0..9, got values 12..12"),
])
def test_python_batch_with_missing_or_bad_labels(tmp_path, cifar, labels, message):
    folder = write_python_folder(tmp_path / "cifar-10-batches-py", cifar)
    rows = cifar[0][0].transpose(0, 3, 1, 2).reshape(PER_BATCH, -1)
    batch = {b"data": rows} if labels is None else {b"data": rows, b"labels": labels}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load_cifar10(folder, download=False)
    assert "data_batch_1" in str(err.value) and "\n" not in str(err.value)


def png_header_only(width, height):
    """A PNG that declares width x height and holds no pixels (what a decompression bomb starts with)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [20000, 12000])     # above Pillow's error limit, and its warning limit
def test_decompression_bomb_image_is_refused(tmp_path, cifar, size):
    root = write_image_folder(tmp_path / "imgs", cifar)
    (root / "train" / "cat" / "bomb.png").write_bytes(png_header_only(size, size))
    with pytest.raises(DataError, match="bomb.png': cannot decode this image \\(DecompressionBomb"):
        load_cifar10(root, download=False)


def test_archive_with_link_is_refused(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = tar_with(tmp_path / "link.tar.gz", [(link, None)])
    with pytest.raises(DataError, match="links, devices"):
        load_cifar10(archive, download=False)


class Evil:
    """Unpickling this runs a shell command: what a malicious 'CIFAR batch' would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path, cifar):
    folder = write_python_folder(tmp_path / "cifar-10-batches-py", cifar)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system") as err:
        load_cifar10(folder, download=False)
    assert "data_batch_3" in str(err.value)
    assert not marker.exists()


def test_corrupt_and_truncated_archives(tmp_path, cifar):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    good = tar_folder(folder, tmp_path / "good.tar.gz", "cifar-10-batches-bin").read_bytes()
    cases = (("truncated.tar.gz", good[: len(good) // 2]), ("garbage.tar.gz", b"\x1f\x8b" + b"x" * 100))
    for name, content in cases:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match="corrupt, truncated or not a .tar.gz") as err:
            load_cifar10(path, download=False)
        assert str(path) in str(err.value)


def test_truncated_or_incomplete_batches(tmp_path, cifar):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    with open(folder / "data_batch_2.bin", "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(DataError, match="data_batch_2.bin': .* not a whole number of 3073-byte"):
        load_cifar10(folder, download=False)
    (folder / "data_batch_2.bin").unlink()
    with pytest.raises(DataError, match="missing data_batch_2.bin"):
        load_cifar10(folder, download=False)


def test_image_folder_with_missing_or_extra_class(tmp_path, cifar):
    root = write_image_folder(tmp_path / "images", cifar)
    os.rename(root / "test" / "cat", root / "test" / "cats")
    with pytest.raises(DataError, match=r"test/ must hold exactly .*missing: cat; unexpected: cats") as err:
        load_cifar10(root, download=False)
    assert str(root) in str(err.value)
    # The same problem inside a tarball (no folder entries there, only file names).
    png = io.BytesIO()
    Image.new("RGB", (32, 32)).save(png, format="PNG")
    members = [(tarfile.TarInfo(f"{split}/{cls}/0.png"), png.getvalue())
               for split in ("train", "test") for cls in CLASSES if cls != "frog"]
    archive = tar_with(tmp_path / "nofrog.tar.gz", members)
    with pytest.raises(DataError, match="missing: frog"):
        load_cifar10(archive, download=False)


def test_image_folder_with_empty_class_folder(tmp_path, cifar):
    root = write_image_folder(tmp_path / "images", cifar)
    for f in (root / "train" / "ship").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"no \.png/\.jpg images in train/ship/"):
        load_cifar10(root, download=False)


@pytest.mark.parametrize("size, mode, problem", [((31, 32), "RGB", "31x32 RGB"), ((32, 32), "L", "32x32 L")])
def test_image_folder_with_wrong_image(tmp_path, cifar, size, mode, problem):
    root = write_image_folder(tmp_path / "images", cifar)
    bad = root / "train" / "horse" / "odd.png"
    Image.new(mode, size).save(bad)
    with pytest.raises(DataError, match="expected a 32x32 RGB image") as err:
        load_cifar10(root, download=False)
    assert str(bad) in str(err.value) and problem in str(err.value)


def test_not_an_image(tmp_path, cifar):
    root = write_image_folder(tmp_path / "images", cifar)
    (root / "test" / "deer" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(DataError, match="broken.jpg': cannot decode this image"):
        load_cifar10(root, download=False)


def test_folder_without_cifar(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not found in"):
        load_cifar10(tmp_path / "empty", download=False)
    archive = tar_with(tmp_path / "other.tar.gz", [(tarfile.TarInfo("readme.txt"), b"hello")])
    with pytest.raises(DataError, match="no CIFAR-10 data found"):
        load_cifar10(archive, download=False)
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nope.tar.gz")


class RecordDownloads:
    """Stands in for download_url: records where it was asked to download, then fails as if offline."""

    def __init__(self):
        self.dests = []

    def __call__(self, url, dest, md5, **kwargs):
        self.dests.append(os.fspath(dest))
        raise DataError("no network in this test")


def test_a_path_that_does_not_exist_is_an_error_not_a_download(tmp_path, monkeypatch):
    record = RecordDownloads()
    monkeypatch.setattr(dataset_module.downloads, "download_url", record)
    for name in ("typo", "cifar-10-batchez-bin", "nope.tar.gz"):
        with pytest.raises(DataError, match="does not exist") as err:
            load_cifar10(tmp_path / name, download=True)
        assert str(tmp_path / name) in str(err.value)
        assert not (tmp_path / name).exists()               # no folder made for the typo
    assert record.dests == []


def test_an_existing_empty_folder_is_downloaded_into(tmp_path, monkeypatch, data_dir):
    record = RecordDownloads()
    monkeypatch.setattr(dataset_module.downloads, "download_url", record)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="downloading it failed"):
        load_cifar10(tmp_path / "empty", download=True)
    with pytest.raises(DataError, match="downloading it failed"):
        load_cifar10(download=True)                           # the default folder, made if needed
    assert record.dests == [str(tmp_path / "empty" / "cifar-10-binary.tar.gz"),
                            str(data_dir / "cifar-10-binary.tar.gz")]


def test_download_leaves_only_the_verified_file(tmp_path):
    import hashlib

    from tinyconvmixer.data import download_url

    source = tmp_path / "source.bin"
    source.write_bytes(b"cifar" * 1000)
    dest = tmp_path / "out" / "cifar-10-binary.tar.gz"
    download_url(source.as_uri(), dest, hashlib.md5(source.read_bytes()).hexdigest(), progress=False)
    assert os.listdir(dest.parent) == [dest.name] and dest.read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match="checksum mismatch"):
        download_url(source.as_uri(), dest, "0" * 32, progress=False)
    assert os.listdir(dest.parent) == [dest.name] and dest.read_bytes() == source.read_bytes()   # kept


# ------------------------------------------------------- the bundled sample

def test_bundled_sample(data_dir):
    data = load_cifar10("sample", download=False)
    assert data.train_x.shape == (2500, 32, 32, 3) and data.test_x.shape == (500, 32, 32, 3)
    assert data.train_x.dtype == np.uint8 and data.train_y.dtype == np.int64
    assert np.bincount(data.train_y).tolist() == [250] * 10
    assert np.bincount(data.test_y).tolist() == [50] * 10
    assert 40 < data.train_x.mean() < 200 and data.train_x.std() > 30      # real pictures, not blank
    # Cached in the data folder, never inside the installed package.
    assert len(list(data_dir.glob("cifar10-sample.decoded-*.npz"))) == 1
    assert not [n for n in os.listdir(os.path.dirname(dataset_module.SAMPLE_PATH)) if n.endswith(".npz")]
    assert "decoded arrays from" in load_cifar10("sample").source


def test_sample_regenerates_identically(tmp_path):
    """make_sample is deterministic: run on the sample itself (already the first N per class) it
    reproduces it byte for byte."""
    make_sample = load_tool("make_sample").make_sample

    sample = dataset_module.SAMPLE_PATH
    rebuilt = tmp_path / "again.tar.gz"
    count = make_sample(sample, str(rebuilt), per_class={"train": 250, "test": 50})
    assert count == 3000
    with open(sample, "rb") as f:
        assert rebuilt.read_bytes() == f.read()
    assert os.path.getsize(sample) < 4_000_000


def test_failed_sample_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    make_sample = load_tool("make_sample").make_sample

    dest = tmp_path / "sample.tar.gz"
    dest.write_bytes(b"the previous sample")

    def broken_addfile(self, info, fileobj=None):
        raise OSError("disk full")
    monkeypatch.setattr(tarfile.TarFile, "addfile", broken_addfile)
    with pytest.raises(OSError, match="disk full"):
        make_sample(dataset_module.SAMPLE_PATH, str(dest), per_class={"train": 1, "test": 1})
    assert os.listdir(tmp_path) == ["sample.tar.gz"] and dest.read_bytes() == b"the previous sample"


# ---------------------------------------------------- the full offline copy

def offline_copy():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in ("/work/shared/data/cifar10-jpeg.tar.gz",
                 os.path.join(repo, "..", "shared", "data", "cifar10-jpeg.tar.gz")):
        if os.path.isfile(path):
            return os.path.normpath(path)
    return None


@pytest.mark.slow
@pytest.mark.skipif(offline_copy() is None, reason="no offline CIFAR-10 copy (shared/data/cifar10-jpeg.tar.gz)")
def test_offline_full_copy_layout():
    """All 60,000 members are there, balanced, and the first image of every class decodes.

    (Decoding all 60,000 takes seconds and a 185 MB cache; the same code path
    is covered by the sample test.)
    """
    from tinyconvmixer.data.archive import iter_archive
    from tinyconvmixer.data.cifar import decode_image, wanted

    counts = {}
    for name, data in iter_archive(offline_copy(), wanted):
        if data is None:
            continue
        split, cls, _ = name.split("/")[-3:]
        counts[split, cls] = counts.get((split, cls), 0) + 1
        if counts[split, cls] == 1:
            assert decode_image(data, name).shape == (32, 32, 3)
    assert {k: v for k, v in counts.items() if k[0] == "train"} == {("train", c): 5000 for c in CLASSES}
    assert {k: v for k, v in counts.items() if k[0] == "test"} == {("test", c): 1000 for c in CLASSES}


def test_no_warnings_on_a_clean_load(tmp_path, cifar):
    folder = write_binary_folder(tmp_path / "cifar-10-batches-bin", cifar)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cifar10(folder)
        load_cifar10(folder)


def load_tool(name):
    """A script of the repository's tools/ folder, as a module (tools/ is not a package)."""
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
