"""Batching: which images go into which batch, and moving a batch to the device.

There is no DataLoader object and no worker process: the whole of CIFAR-10
fits in memory as uint8 (150 MB), so a batch is just an index array into
the arrays of `load_cifar10`, and augmentation runs vectorised on the
device that trains (see augment.py).

Seeding contract (what the train loop does, and what makes resuming exact):

* epoch order: ``rng = np.random.default_rng([seed, epoch])``, then
  ``iterate_batches(n, batch_size, rng)``: one permutation per epoch, drawn
  from that generator and nothing else;
* augmentation of batch b of that epoch:
  ``transform(images, np.random.default_rng([seed, epoch, b]))``.

Each generator depends only on (seed, epoch[, batch]), never on how many
random numbers were drawn before, so a run resumed at any epoch or batch
sees exactly the batches and augmentations of an uninterrupted run, on the
CPU and on the GPU alike.
"""

import numpy as np

from ..engine.backend import get_array_module, to_device


def num_batches(n, batch_size, drop_last=False):
    """How many batches `iterate_batches` yields for n examples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(n, batch_size, rng=None, shuffle=True, drop_last=False):
    """Yield int64 index arrays that split range(n) into batches of `batch_size`.

    shuffle: visit the examples in the order rng.permutation(n) (one
        permutation, drawn once, per call); otherwise in order 0..n-1 and
        `rng` is not needed.
    drop_last: leave out a final batch smaller than batch_size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs rng, a numpy.random.Generator")
    order = rng.permutation(n) if shuffle else np.arange(n)
    for b in range(num_batches(n, batch_size, drop_last)):
        yield order[b * batch_size:(b + 1) * batch_size]


def get_batch(images, labels, index, device):
    """images[index], labels[index] on `device` ("cpu" or "gpu").

    Works whether the full arrays live on the host (the batch is gathered,
    then copied over) or already on the device (the batch is gathered there).
    """
    xp = get_array_module(images)
    index = xp.asarray(index)
    return to_device(images[index], device), to_device(labels[index], device)
