"""CIFAR-10 for tinyconvmixer: loading, downloading, augmenting and batching.

    from tinyconvmixer.data import load_cifar10, TrainTransform, iterate_batches

    data = load_cifar10()                  # or a path, or "sample"
    augment = TrainTransform(ra_n=2, ra_m=12)
    for b, idx in enumerate(iterate_batches(len(data.train_y), 512, np.random.default_rng([seed, epoch]))):
        x = augment(to_device(data.train_x[idx], device), np.random.default_rng([seed, epoch, b]))

Where things live:

    dataset.py      load_cifar10, the CIFAR10 record, where data is looked for
    cifar.py        the three on-disk formats (binary, Python pickle, image folder), and what a
                    source must hold (every image once, the numbers of the source it claims to be)
    jpeg.py, png.py a strict check of an image file's data, bit by bit (Pillow decodes garbage)
    archive.py      reading .tar/.tar.gz archives and folders safely, without extracting, to their end
    cache.py        the decoded-array .npz cache
    download.py     download with progress bar and MD5 check; the "data missing" message
    augment.py      TrainTransform / TestTransform: crop, flip, jitter, erasing, normalisation
    randaugment.py  RandAugment's 14 operations, vectorised over a batch
    loader.py       batch index arrays and the seeding contract for exact resumes
    make_sample.py  rebuilds the bundled sample (sample/cifar10-sample.tar.gz)
"""

from .augment import CIFAR10_MEAN, CIFAR10_STD, TestTransform, TrainTransform, normalize
from .cifar import CLASSES
from .dataset import CIFAR10, default_data_dir, load_cifar10
from .download import CIFAR10_BINARY, CIFAR10_PYTHON, download_url
from .errors import DataError
from .loader import get_batch, iterate_batches, num_batches
from .randaugment import rand_augment

__all__ = [
    "CIFAR10", "CIFAR10_BINARY", "CIFAR10_MEAN", "CIFAR10_PYTHON", "CIFAR10_STD", "CLASSES",
    "DataError", "TestTransform", "TrainTransform", "default_data_dir", "download_url",
    "get_batch", "iterate_batches", "load_cifar10", "normalize", "num_batches", "rand_augment",
]
