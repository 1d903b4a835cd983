"""Data that is not all there, or there twice, or damaged inside a file: refused with a one-line
error naming it, never trained on. And paths that are not files (devices, pipes, broken links)
named as such; every path quoted, so that a message stays one line whatever the name holds.

The fakes are small (official batches of PER_BATCH images, image folders of one or a few
images per class); the loader is told the size of an official batch (cifar.BATCH_IMAGES).
"""

import io
import os
import shutil
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tinyconvmixer.data import CLASSES, DataError, load_cifar10
from tinyconvmixer.data import cifar as cifar_module

PER_BATCH = 10
BINARY = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
PYTHON = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(autouse=True)
def small_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar_module, "BATCH_IMAGES", PER_BATCH)
    monkeypatch.setenv("TINYCONVMIXER_DATA", str(tmp_path / "data-home"))


def batch(seed, n=PER_BATCH, labels=None):
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(n) % 10 if labels is None else labels
    return records.tobytes()


def image_bytes(seed, fmt="PNG"):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def write_tar(path, members, mode=None):
    """A tar archive of {name: bytes}; the mode from the suffix unless given."""
    mode = mode or ("w:gz" if str(path).endswith(("gz", "tgz")) else "w")
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def binary_members(root="cifar-10-batches-bin"):
    return {f"{root}/{name}": batch(i) for i, name in enumerate(BINARY)}


def image_members(root="cifar", per_class=(2, 1), fmt="PNG", suffix=".png"):
    members, k = {}, 0
    for split, n in zip(("train", "test"), per_class):
        for cls in CLASSES:
            for i in range(n):
                members[f"{root}/{split}/{cls}/{i:04d}{suffix}"] = image_bytes(k, fmt)
                k += 1
    return members


def refused(path, *phrases):
    with pytest.raises(DataError) as err:
        load_cifar10(path, download=False)
    message = str(err.value)
    assert "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


# ------------------------------------------------------------------- there twice

def test_an_archive_holding_the_image_tree_twice(tmp_path):
    members = {**image_members("cifar"), **image_members("cifar-backup")}
    refused(write_tar(tmp_path / "twice.tar.gz", members), "two copies of the train split",
            "cifar-backup/train/", "cifar/train/")
    only_test = {**image_members("cifar"), **{k.replace("cifar/", "old/"): v for k, v in image_members("cifar").items()
                                             if "/test/" in k}}
    refused(write_tar(tmp_path / "tests-twice.tar", only_test), "two copies of the test split")
    assert load_cifar10(write_tar(tmp_path / "once.tar.gz", image_members("cifar")), download=False)


def test_batches_and_an_image_tree_or_both_kinds_of_batch(tmp_path):
    refused(write_tar(tmp_path / "mixed.tar.gz", {**binary_members(), **image_members()}),
            "holds CIFAR-10 twice (binary and an image-folder tree data)")
    python = {f"cifar-10-batches-py/{name}": b"never read" for name in PYTHON}
    refused(write_tar(tmp_path / "both.tar.gz", {**binary_members(), **python}), "binary and python")


def test_one_batch_twice_under_another_name(tmp_path):
    members = binary_members()
    members["cifar-10-batches-bin/data_batch_4.bin"] = members["cifar-10-batches-bin/data_batch_2.bin"]
    refused(write_tar(tmp_path / "copy.tar.gz", members), "data_batch_2.bin and data_batch_4.bin hold the same bytes")


def test_one_image_as_two_files(tmp_path):
    members = image_members()
    members["cifar/train/cat/0000.jpg"] = image_bytes(99, "JPEG")
    refused(write_tar(tmp_path / "two.tar.gz", members), "one image as two files", "0000.png", "0000.jpg")


# ------------------------------------------------------------------- not all there

def test_a_plain_tar_cut_at_a_member_boundary(tmp_path):
    """The issue: only .tar.gz had an end-of-stream check; a .tar cut between members passed with
    members missing."""
    whole = write_tar(tmp_path / "whole.tar", binary_members()).read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as tar:
        starts = [m.offset for m in tar.getmembers()]
    for i, cut in enumerate([starts[3], starts[3] + 100, starts[3] + 700, len(whole) - 10240 + 10]):
        path = tmp_path / f"cut-{i}.tar"
        path.write_bytes(whole[:cut])
        refused(path, f"'{path}': cannot read this as a tar archive", "truncated")
    assert load_cifar10(tmp_path / "whole.tar", download=False).train_x.shape == (50, 32, 32, 3)


@pytest.mark.parametrize("name", ["cut.tar.gz", "cut.tgz"])
def test_a_cut_tar_inside_a_whole_gzip_stream(tmp_path, name):
    """The siblings: a complete gzip stream of a tar that was cut before it was compressed."""
    whole = write_tar(tmp_path / "whole.tar", binary_members()).read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as tar:
        cut = [m.offset for m in tar.getmembers()][4]
    import gzip
    (tmp_path / name).write_bytes(gzip.compress(whole[:cut]))
    refused(tmp_path / name, "no end-of-archive marker after 4 entries")


def test_a_damaged_member_header_or_two_archives_joined(tmp_path):
    whole = bytearray(write_tar(tmp_path / "whole.tar", binary_members()).read_bytes())
    with tarfile.open(tmp_path / "whole.tar") as tar:
        second = [m.offset for m in tar.getmembers()][2]
    damaged = bytearray(whole)
    damaged[second + 5] ^= 0xFF                       # the header's checksum no longer fits
    (tmp_path / "damaged.tar").write_bytes(bytes(damaged))
    refused(tmp_path / "damaged.tar", "a damaged member header follows")
    (tmp_path / "joined.tar").write_bytes(bytes(whole) * 2)
    refused(tmp_path / "joined.tar", "two archives joined")


def test_a_gzip_stream_cut_in_its_last_bytes(tmp_path):
    """Cut where only the tar's zero padding is left: gzip's own end check, reached by reading to the end."""
    good = write_tar(tmp_path / "good.tar.gz", binary_members()).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[:-6])
    refused(tmp_path / "cut.tar.gz", "Compressed file ended before the end-of-stream marker")


@pytest.mark.parametrize("where,problem", [
    ("one batch short", "data_batch_3.bin': 9 images; an official CIFAR-10 batch holds 10"),
    ("one label changed", "the train images per class are airplane 5, automobile 4, bird 6"),
    ("test batch short", "test_batch.bin': 9 images"),
])
def test_official_batches_with_the_wrong_number_of_images(tmp_path, where, problem):
    members = binary_members()
    root = "cifar-10-batches-bin/"
    if where == "one batch short":
        members[root + "data_batch_3.bin"] = batch(3, n=9)
    elif where == "test batch short":
        members[root + "test_batch.bin"] = batch(6, n=9)
    else:
        members[root + "data_batch_1.bin"] = batch(0, labels=[0, 2, 2, 3, 4, 5, 6, 7, 8, 9])
    refused(write_tar(tmp_path / "b.tar.gz", members), problem)


def test_an_image_folder_with_unequal_classes_lists_them(tmp_path):
    root = tmp_path / "images"
    for name, data in image_members("", per_class=(3, 1)).items():
        (root / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / name.lstrip("/")).write_bytes(data)
    assert load_cifar10(root, download=False).train_x.shape == (30, 32, 32, 3)
    (root / "train" / "ship" / "0001.png").unlink()
    refused(root, "the train images per class are airplane 3", "ship 2", "truck 3 (29 in all)")


def test_the_first_decode_says_how_many_images_of_each_class(tmp_path, capsys):
    load_cifar10(write_tar(tmp_path / "imgs.tar.gz", image_members(per_class=(3, 2))), download=False)
    assert "3 train + 2 test images per class" in capsys.readouterr().err


# ------------------------------------------------------------------- damaged inside a file

def jpeg_with_garbage(seed, fill):
    data = image_bytes(seed, "JPEG")
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    body = len(data) - start - 2
    garbage = {"random": np.random.default_rng(seed).integers(0, 256, body, dtype=np.uint8).tobytes(),
               "zeros": b"\0" * body, "letters": b"x" * body, "half": data[start:start + body // 2]}[fill]
    return data[:start] + garbage + (b"\xff\xd9" if fill != "random" else b"")


@pytest.mark.parametrize("fill", ["random", "zeros", "letters", "half"])
def test_a_jpeg_with_a_valid_header_and_garbage_data(tmp_path, fill):
    """The issue: Pillow (libjpeg) decodes such a file without a word. A full check refuses it by name."""
    members = image_members(fmt="JPEG", suffix=".jpg")
    members["cifar/train/horse/0001.jpg"] = jpeg_with_garbage(7, fill)
    refused(write_tar(tmp_path / "bad.tar.gz", members), "member 'cifar/train/horse/0001.jpg'",
            "cannot decode this image")


def png_chunks(data):
    pos, out = 8, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def png_of(chunks):
    return b"\x89PNG\r\n\x1a\n" + b"".join(len(body).to_bytes(4, "big") + kind + body +
                                           zlib.crc32(kind + body).to_bytes(4, "big") for kind, body in chunks)


@pytest.mark.parametrize("damage,phrase", [
    ("half the rows", "pixel data of 1,552 bytes where the header asks for 3,104"),
    ("extra rows", "pixel data of 3,105+ bytes"),
    ("bad crc", "cannot decode this image"),
    ("no iend", "cannot decode this image"),
])
def test_a_png_that_is_not_all_there(tmp_path, damage, phrase):
    good = image_bytes(3)
    chunks = png_chunks(good)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    if damage == "half the rows":
        bad = png_of([(k, zlib.compress(raw[:len(raw) // 2]) if k == b"IDAT" else b) for k, b in chunks])
    elif damage == "extra rows":
        bad = png_of([(k, zlib.compress(raw + raw[:97]) if k == b"IDAT" else b) for k, b in chunks])
    elif damage == "bad crc":
        bad = good[:40] + bytes([good[40] ^ 1]) + good[41:]
    else:
        bad = png_of([c for c in chunks if c[0] != b"IEND"])
    members = image_members()
    members["cifar/test/frog/0000.png"] = bad
    refused(write_tar(tmp_path / "bad.tar", members), "cifar/test/frog/0000.png", phrase)


def test_an_image_of_another_format_named_png(tmp_path):
    members = image_members()
    members["cifar/train/dog/0001.png"] = image_bytes(5, "BMP")
    refused(write_tar(tmp_path / "bmp.tar.gz", members), "0001.png'", "a BMP image; expected PNG or JPEG")


def test_the_bundled_sample_passes_the_full_check():
    data = load_cifar10("sample", download=False, cache=False)
    assert data.train_x.shape == (2500, 32, 32, 3)


# ------------------------------------------------------------------- paths

def test_a_device_a_pipe_a_folder_and_a_broken_link(tmp_path):
    refused("/dev/zero", "'/dev/zero' is a character device, not a CIFAR-10 archive or folder")
    os.mkfifo(tmp_path / "fifo.tar.gz")
    refused(tmp_path / "fifo.tar.gz", "is a named pipe, not a CIFAR-10 archive or folder")
    os.symlink(tmp_path / "gone.tar.gz", tmp_path / "link.tar.gz")
    refused(tmp_path / "link.tar.gz", "is a broken symbolic link")


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "quote's \"both\"", "bytes-\udcff\udcfe",
                                  "日本語 space"])
def test_every_path_in_a_message_is_quoted_on_one_line(tmp_path, name):
    missing = refused(tmp_path / f"{name}.tar.gz", "does not exist")
    assert repr(str(tmp_path / f"{name}.tar.gz")) in missing
    os.makedirs(tmp_path / name / "train")
    os.makedirs(tmp_path / name / "test")
    refused(tmp_path / name, repr(str(tmp_path / name)), "no CIFAR-10 data found")
    os.makedirs(tmp_path / name / "train" / "cat")
    refused(tmp_path / name, repr(str(tmp_path / name)), "must hold exactly the ten class folders")
    shutil.rmtree(tmp_path / name)


def test_a_path_that_cannot_be_looked_at_is_not_called_missing(tmp_path, monkeypatch):
    """(Root reads every folder, so the refusal is simulated: os.stat says permission denied.)"""
    from tinyconvmixer.util import paths
    real = os.stat

    def stat(path, *args, **kwargs):
        if "locked" in os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(paths.os, "stat", stat)
    refused(tmp_path / "locked" / "cifar.tar.gz", "is not accessible (Permission denied)")


def test_a_source_whose_name_is_not_utf8_is_read_and_cached(tmp_path):
    path = write_tar(tmp_path / "cifar-\udcff.tar.gz", binary_members())
    first = load_cifar10(path, download=False)
    assert "decoded now, cached" in first.source
    assert "decoded arrays from" in load_cifar10(path, download=False).source
