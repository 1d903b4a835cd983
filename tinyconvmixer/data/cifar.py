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

import io
import os
import pickle
import warnings

import numpy as np

from .errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
BINARY_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
PYTHON_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RECORD_BYTES = 1 + 3 * 32 * 32   # one label byte + a 3x32x32 image


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
    """
    in_folder = os.path.isdir(where)
    locate = (lambda name: os.path.join(where, name)) if in_folder else (lambda name: f"{where}: {name}")
    batches = {}                                  # official batch file name -> (bytes, path)
    images = {split: [] for split in SPLITS}      # (label, file name, HWC uint8 image)
    seen = {split: set() for split in SPLITS}     # class folders found per split
    for name, data in entries:
        parts = name.split("/")
        if data is not None and parts[-1] in BINARY_FILES + PYTHON_FILES:
            if parts[-1] in batches:                  # two copies: which one is meant?
                raise DataError(f"{where}: two files named {parts[-1]} ({batches[parts[-1]][1]} and "
                                f"{locate(name)}); refusing to guess which one is the CIFAR-10 batch")
            batches[parts[-1]] = (data, locate(name))
        elif data is None and len(parts) >= 2 and parts[-2] in SPLITS:
            seen[parts[-2]].add(parts[-1])        # a folder <split>/<class>
        elif data is not None and len(parts) >= 3 and parts[-3] in SPLITS:
            split, cls = parts[-3], parts[-2]     # a file <split>/<class>/<image>
            seen[split].add(cls)
            if cls in CLASSES:
                images[split].append((CLASSES.index(cls), name, decode_image(data, locate(name))))

    for kind, names, read in (("binary", BINARY_FILES, read_binary_batch),
                              ("python", PYTHON_FILES, read_python_batch)):
        if any(n in batches for n in names):
            missing = [n for n in names if n not in batches]
            if missing:
                raise DataError(f"{where}: incomplete CIFAR-10 {kind} batches, missing {', '.join(missing)}")
            train = [read(*batches[n]) for n in names[:5]]
            test_x, test_y = read(*batches[names[5]])
            arrays = dict(train_x=np.concatenate([x for x, _ in train]),
                          train_y=np.concatenate([y for _, y in train]),
                          test_x=test_x, test_y=test_y)
            return arrays, kind
    if not any(seen.values()):
        raise DataError(
            f"{where}: no CIFAR-10 data found. Expected the official batches "
            f"({', '.join(BINARY_FILES)} or the Python pickles {', '.join(PYTHON_FILES)}), "
            "or an image-folder tree train/<class>/*.png|jpg and test/<class>/...")
    return _stack_image_folder(images, seen, where), "image-folder"


def _stack_image_folder(images, seen, where):
    """Check the image-folder tree is complete, then stack it, sorted by class and file name."""
    arrays = {}
    for split in SPLITS:
        missing = [c for c in CLASSES if c not in seen[split]]
        extra = sorted(seen[split] - set(CLASSES))
        if missing or extra:
            raise DataError(
                f"{where}: {split}/ must hold exactly the ten class folders "
                f"{', '.join(CLASSES)}; missing: {', '.join(missing) or 'none'}; "
                f"unexpected: {', '.join(extra) or 'none'}")
        counts = np.bincount([label for label, _, _ in images[split]], minlength=len(CLASSES))
        empty = [c for c, k in zip(CLASSES, counts) if k == 0]
        if empty:
            raise DataError(f"{where}: no .png/.jpg images in {', '.join(f'{split}/{c}/' for c in empty)}")
        items = sorted(images[split], key=lambda item: item[:2])
        arrays[f"{split}_x"] = np.stack([image for _, _, image in items])
        arrays[f"{split}_y"] = np.array([label for label, _, _ in items], dtype=np.int64)
    return arrays


def decode_image(data, name):
    """Decode one PNG/JPEG file's bytes to a (32, 32, 3) uint8 array, insisting on 32x32 RGB."""
    from PIL import Image   # Pillow comes with matplotlib; imported here, only folders need it

    try:
        with warnings.catch_warnings():
            # A header claiming a huge size makes Pillow warn (or raise DecompressionBombError):
            # refuse it before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.size != (32, 32) or image.mode != "RGB":
                    raise DataError(f"{name}: expected a 32x32 RGB image, got "
                                    f"{image.size[0]}x{image.size[1]} {image.mode}")
                return np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:   # broken files raise OSError, SyntaxError, ValueError, DecompressionBomb...
        raise DataError(f"{name}: cannot decode this image ({type(exc).__name__}: {exc})") from exc


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
        raise DataError(f"{name}: the labels are not a list of integers ({exc})") from exc
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
        raise DataError(f"{name}: cannot unpickle this CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    rows = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        raise DataError(f"{name}: expected b'data' to be a uint8 array of shape (N, 3072), got "
                        f"{getattr(rows, 'dtype', type(rows).__name__)} {getattr(rows, 'shape', '')}")
    return _chw_rows_to_hwc(rows), check_labels(labels, len(rows), name)
