"""Decoding CIFAR-10 from the three layouts it is distributed in.

1. The official binary version (cifar-10-binary.tar.gz, folder
   cifar-10-batches-bin/): data_batch_1.bin .. data_batch_5.bin and
   test_batch.bin, each a run of 3073-byte records: 1 label byte, then the
   32x32 image as 3072 bytes in CHW order (1024 red, 1024 green, 1024 blue).
2. The official Python version (cifar-10-python.tar.gz, folder
   cifar-10-batches-py/ as torchvision leaves it): the same batches as Python 2
   pickles of a dict with b"data" (a uint8 array of shape (N, 3072), CHW order
   per row) and b"labels" (a list of ints). Unpickling can run arbitrary code,
   so we use an unpickler that can only build numpy arrays (see
   `_ArrayOnlyUnpickler`).
3. An image-folder tree: train/<class>/*.png|jpg and test/<class>/..., one
   32x32 RGB image per file, the folder name giving the label (for example
   the JPEG copy in /work/shared/data/cifar10-jpeg.tar.gz).

The readers here take a stream of ``(name, data)`` entries (see archive.py),
so the same code reads an archive and a folder. Every image comes back as
uint8 HWC, every label as int64, labels in the official class order.
"""

import hashlib
import io
import os
import pickle
import warnings

import numpy as np

from ..util.paths import quoted
from . import jpeg, png
from .errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
BINARY_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
PYTHON_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RECORD_BYTES = 1 + 3 * 32 * 32   # one label byte + a 3x32x32 image
BATCH_IMAGES = 10_000            # images in each official batch file (5 training batches, 1 test batch)
STRICT_CHECKS = {"JPEG": jpeg.check, "PNG": png.check}   # the formats read, and their full checks


def wanted(name):
    """Whether a file name inside an archive or folder can hold CIFAR-10 data."""
    base = name.rsplit("/", 1)[-1]
    return base in BINARY_FILES or base in PYTHON_FILES or base.lower().endswith(IMAGE_SUFFIXES)


def folder_contents(root, list_files=True):
    """What a folder holds: (kind, files, folders), or None when it is not a CIFAR-10 folder.

    kind is "binary" or "python" for a folder of official batches, or
    "image-folder" for a folder holding train/ and test/. `files` and
    `folders` are "/"-separated names relative to `root` (folders are listed
    for the image-folder check that all ten class folders exist); with
    list_files=False they are left empty, to just ask for the kind.
    """
    for kind, names in (("binary", BINARY_FILES), ("python", PYTHON_FILES)):
        if os.path.isfile(os.path.join(root, names[0])):
            present = [n for n in names if os.path.isfile(os.path.join(root, n))]
            return kind, present if list_files else [], []
    if not all(os.path.isdir(os.path.join(root, split)) for split in SPLITS):
        return None
    files, folders = [], []
    for split in SPLITS if list_files else ():
        for entry in sorted(os.scandir(os.path.join(root, split)), key=lambda e: e.name):
            if entry.is_dir():
                folders.append(f"{split}/{entry.name}")
                files += [f"{split}/{entry.name}/{f}" for f in sorted(os.listdir(entry.path))
                          if f.lower().endswith(IMAGE_SUFFIXES)]
    return "image-folder", files, folders


def read_cifar(entries, where):
    """Decode CIFAR-10 from (name, data) entries; returns (arrays, kind).

    arrays is a dict with train_x, test_x (uint8, (N, 32, 32, 3)) and train_y,
    test_y (int64, (N,)). kind says which layout was found: "binary",
    "python" or "image-folder". `where` (the archive or folder path) is used
    in error messages.

    A source that holds the data twice is refused, not read twice: two copies of
    a batch (by name or by content), binary and Python batches together, batches
    and an image tree together, the image tree under two roots (cifar/ and
    cifar-backup/), or one image as two files (0001.png and 0001.jpg). So is a
    source whose numbers of images do not fit what it claims to be (check_counts).
    """
    in_folder = os.path.isdir(where)
    q = quoted(where)
    locate = ((lambda name: quoted(os.path.join(where, name))) if in_folder
              else (lambda name: f"{q}: member {name!r}"))
    batches = {}                                  # official batch file name -> (bytes, where)
    images = {split: [] for split in SPLITS}      # (label, file name, HWC uint8 image)
    seen = {split: set() for split in SPLITS}     # class folders found per split
    roots = {split: {} for split in SPLITS}       # the folder above <split>/ -> a file or folder in it
    stems = {}                                    # (split, class, file name without suffix) -> file name
    for name, data in entries:
        parts = name.split("/")
        if data is not None and parts[-1] in BINARY_FILES + PYTHON_FILES:
            if parts[-1] in batches:                  # two copies: which one is meant?
                raise DataError(f"{q}: two files named {parts[-1]} ({batches[parts[-1]][1]} and "
                                f"{locate(name)}); refusing to guess which one is the CIFAR-10 batch")
            batches[parts[-1]] = (data, locate(name))
        elif data is None and len(parts) >= 2 and parts[-2] in SPLITS:
            seen[parts[-2]].add(parts[-1])        # a folder <split>/<class>
            roots[parts[-2]].setdefault("/".join(parts[:-2]), name)
        elif data is not None and len(parts) >= 3 and parts[-3] in SPLITS:
            split, cls = parts[-3], parts[-2]     # a file <split>/<class>/<image>
            seen[split].add(cls)
            roots[split].setdefault("/".join(parts[:-3]), name)
            stem = (tuple(parts[:-3]), split, cls, os.path.splitext(parts[-1])[0])
            if stem in stems:
                raise DataError(f"{q}: one image as two files, {locate(stems[stem])} and {locate(name)}; "
                                "refusing to guess which one is meant (or to train on it twice)")
            stems[stem] = name
            if cls in CLASSES:
                images[split].append((CLASSES.index(cls), name, decode_image(data, locate(name))))
    for split in SPLITS:
        if len(roots[split]) > 1:
            copies = ", ".join(f"{r or '.'}/{split}/" for r in sorted(roots[split]))
            raise DataError(f"{q}: two copies of the {split} split ({copies}); refusing to guess which one "
                            "is meant (or to train and test on every image twice)")

    kinds = [kind for kind, names in (("binary", BINARY_FILES), ("python", PYTHON_FILES))
             if any(n in batches for n in names)]
    if len(kinds) + any(seen.values()) > 1:
        found = kinds + (["an image-folder tree"] if any(seen.values()) else [])
        raise DataError(f"{q}: holds CIFAR-10 twice ({' and '.join(found)} data); refusing to guess which "
                        "copy is meant. Give the path of one of them")
    for kind, names, read in (("binary", BINARY_FILES, read_binary_batch),
                              ("python", PYTHON_FILES, read_python_batch)):
        if kinds == [kind]:
            missing = [n for n in names if n not in batches]
            if missing:
                raise DataError(f"{q}: incomplete CIFAR-10 {kind} batches, missing {', '.join(missing)}")
            _no_identical_batches(names, batches, q)
            parts = [read(*batches[n]) for n in names]
            for n, (x, _) in zip(names, parts):
                if len(x) != BATCH_IMAGES:
                    raise DataError(f"{batches[n][1]}: {len(x):,} images; an official CIFAR-10 batch holds "
                                    f"{BATCH_IMAGES:,} (the file is cut, padded or not CIFAR-10's)")
            arrays = dict(train_x=np.concatenate([x for x, _ in parts[:5]]),
                          train_y=np.concatenate([y for _, y in parts[:5]]),
                          test_x=parts[5][0], test_y=parts[5][1])
            check_counts(arrays, where, official=True)
            return arrays, kind
    if not any(seen.values()):
        raise DataError(
            f"{q}: no CIFAR-10 data found. Expected the official batches "
            f"({', '.join(BINARY_FILES)} or the Python pickles {', '.join(PYTHON_FILES)}), "
            "or an image-folder tree train/<class>/*.png|jpg and test/<class>/...")
    arrays = _stack_image_folder(images, seen, where)
    check_counts(arrays, where, official=False)
    return arrays, "image-folder"


def _no_identical_batches(names, batches, q):
    digests = {}
    for n in names:
        digest = hashlib.sha256(batches[n][0]).digest()
        if digest in digests:
            raise DataError(f"{q}: {digests[digest]} and {n} hold the same bytes: one batch twice (the data set "
                            "would train or test on those images twice); refusing it")
        digests[digest] = n


def class_counts(arrays, split):
    """Images per class of one split, in class order."""
    return np.bincount(arrays[f"{split}_y"], minlength=len(CLASSES)).tolist()


def describe_counts(arrays):
    """'5,000 train + 1,000 test images per class': what a (class-balanced) source holds."""
    return " + ".join(f"{class_counts(arrays, split)[0]:,} {split}" for split in SPLITS) + " images per class"


def check_counts(arrays, where, official):
    """The numbers of images must be those of the source claimed: the official batches hold
    5 x BATCH_IMAGES training and BATCH_IMAGES test images, the same number of each class; an
    image folder (the full set, the bundled sample, a class-balanced subset) the same number
    in every class of a split. Anything else (a class cut short, an image copied in twice) is
    a DataError that lists the counts."""
    for split, total in (("train", 5 * BATCH_IMAGES), ("test", BATCH_IMAGES)):
        counts = class_counts(arrays, split)
        if len(set(counts)) == 1 and (not official or sum(counts) == total):
            continue
        listed = ", ".join(f"{c} {k:,}" for c, k in zip(CLASSES, counts))
        claim = (f"the official batches hold {total // len(CLASSES):,} of each class" if official else
                 "CIFAR-10 and its class-balanced samples hold the same number of each class")
        raise DataError(f"{quoted(where)}: the {split} images per class are {listed} ({sum(counts):,} in all); "
                        f"{claim}, so this is not a whole copy (an image missing, or one there twice)")


def _stack_image_folder(images, seen, where):
    """Check the image-folder tree is complete, then stack it, sorted by class and file name."""
    arrays = {}
    for split in SPLITS:
        missing = [c for c in CLASSES if c not in seen[split]]
        extra = sorted(seen[split] - set(CLASSES))
        if missing or extra:
            raise DataError(
                f"{quoted(where)}: {split}/ must hold exactly the ten class folders "
                f"{', '.join(CLASSES)}; missing: {', '.join(missing) or 'none'}; "
                f"unexpected: {', '.join(extra) or 'none'}")
        counts = np.bincount([label for label, _, _ in images[split]], minlength=len(CLASSES))
        empty = [c for c, k in zip(CLASSES, counts) if k == 0]
        if empty:
            raise DataError(f"{quoted(where)}: no .png/.jpg images in "
                            f"{', '.join(f'{split}/{c}/' for c in empty)}")
        items = sorted(images[split], key=lambda item: item[:2])
        arrays[f"{split}_x"] = np.stack([image for _, _, image in items])
        arrays[f"{split}_y"] = np.array([label for label, _, _ in items], dtype=np.int64)
    return arrays


def decode_image(data, name):
    """Decode one PNG/JPEG file's bytes to a (32, 32, 3) uint8 array, insisting on 32x32 RGB.

    A full check, not a header read: Pillow decodes every pixel, and the file's
    own structure is checked strictly (jpeg.py, png.py), because Pillow decodes
    garbage after a valid header without a word (libjpeg only warns).
    """
    from PIL import Image   # Pillow comes with matplotlib; imported here, only folders need it

    try:
        with warnings.catch_warnings():
            # A header claiming a huge size makes Pillow warn (or raise DecompressionBombError):
            # refuse it before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in STRICT_CHECKS:
                    raise DataError(f"{name}: a {image.format} image; expected PNG or JPEG")
                if image.size != (32, 32) or image.mode != "RGB":
                    raise DataError(f"{name}: expected a 32x32 RGB image, got "
                                    f"{image.size[0]}x{image.size[1]} {image.mode}")
                pixels = np.asarray(image, dtype=np.uint8)
                STRICT_CHECKS[image.format](data)
                return pixels
    except DataError:
        raise
    except Exception as exc:   # broken files raise OSError, SyntaxError, ValueError, DecompressionBomb...
        detail = " ".join(str(exc).split())
        raise DataError(f"{name}: cannot decode this image ({type(exc).__name__}: {detail}); the file is "
                        "damaged") from exc


def check_labels(labels, count, name):
    """Labels must be integers, one per image, in 0..9; returns them as int64.

    Checked here, on the host, once: the training loop then never has to read
    labels back from the GPU to check them (see functional/loss.py).
    """
    if labels is None:
        raise DataError(f"{name}: no labels (expected b'labels', a list of {count} integers in 0..9)")
    try:
        array = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{name}: the labels are not a list of integers ({' '.join(str(exc).split())})") from exc
    if array.dtype.kind not in "iu" or array.shape != (count,):
        raise DataError(f"{name}: expected {count} integer labels in 0..9, got {array.dtype} values "
                        f"of shape {array.shape}")
    if count and (array.min() < 0 or array.max() >= len(CLASSES)):
        raise DataError(f"{name}: expected labels in 0..9, got values {array.min()}..{array.max()}")
    return array.astype(np.int64)


def _chw_rows_to_hwc(rows):
    """(N, 3072) rows, each a CHW image, -> (N, 32, 32, 3) HWC images."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def read_binary_batch(data, name):
    """One official binary batch file -> (images (N, 32, 32, 3) uint8, labels (N,) int64)."""
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DataError(f"{name}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte "
                        "CIFAR-10 records; the file is truncated or not a CIFAR-10 batch")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return _chw_rows_to_hwc(records[:, 1:]), check_labels(records[:, 0], len(records), name)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, lists, bytes and numbers, and nothing else.

    A pickle names the functions it calls to rebuild objects ("globals");
    a malicious one names os.system or the like. Pickle looks every such
    global up through `find_class`, so refusing all but the few numpy
    internals that rebuild an ndarray makes loading safe.
    """

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),    # numpy < 2 (and the official 2009 files)
        ("numpy._core.multiarray", "_reconstruct"),   # numpy >= 2
        ("numpy.core.numeric", "_frombuffer"),        # arrays pickled with protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),                        # bytes pickled by Python 3 with protocol 2
    }

    def __init__(self, file, name):
        super().__init__(file, encoding="bytes")      # Python 2 str -> bytes, as in the official files
        self.name = name

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"{self.name}: refusing to unpickle {module}.{name}: a CIFAR-10 Python "
                            "batch only holds numpy arrays, lists and dicts, so this file is not "
                            "one (and may be malicious)")
        return super().find_class(module, name)


def read_python_batch(data, name):
    """One official Python (pickle) batch file -> (images (N, 32, 32, 3) uint8, labels (N,) int64)."""
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(data), name).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or garbled pickles raise many different types
        detail = " ".join(str(exc).split())
        raise DataError(f"{name}: cannot unpickle this CIFAR-10 batch ({type(exc).__name__}: {detail})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    rows = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        raise DataError(f"{name}: expected b'data' to be a uint8 array of shape (N, 3072), got "
                        f"{getattr(rows, 'dtype', type(rows).__name__)} {getattr(rows, 'shape', '')}")
    return _chw_rows_to_hwc(rows), check_labels(labels, len(rows), name)
