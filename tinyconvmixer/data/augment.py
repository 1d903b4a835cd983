"""Training-time augmentation and normalisation, for a whole batch at once, on the CPU or the GPU.

`TrainTransform` follows the recipe of the ConvMixer CIFAR-10 reference
(locuslab/convmixer-cifar10, train.py), in its order:

    RandomResizedCrop(32, scale=(scale, 1), ratio=(1, 1))   skipped when scale == 1
    RandomHorizontalFlip(p=0.5)                              when hflip
    RandAugment(num_ops=ra_n, magnitude=ra_m)                when ra_n > 0
    ColorJitter(jitter, jitter, jitter)                      when jitter > 0
    ToTensor + Normalize(CIFAR10_MEAN, CIFAR10_STD)
    RandomErasing(p=reprob)                                  when reprob > 0

Input: uint8 images (N, H, W, 3) as a NumPy or CuPy array; output: float32
(N, 3, H, W) on the same device. Every random number is drawn on the host
from the `numpy.random.Generator` passed in, stage by stage in the order
above, so the same generator state gives the same batch on CPU and GPU, and
re-seeding it the same way makes resuming exact. Stages that are switched
off draw nothing.
"""

import math

import numpy as np

from ..engine.backend import get_array_module
from .randaugment import brightness, color, contrast, rand_augment

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def normalize(images):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W): scale to [0, 1], then (x - mean) / std per channel."""
    _check_images(images)
    xp = get_array_module(images)
    x = images.astype(xp.float32) / 255
    x = (x - xp.asarray(CIFAR10_MEAN, dtype=xp.float32)) / xp.asarray(CIFAR10_STD, dtype=xp.float32)
    return xp.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _check_images(images):
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")


def random_resized_crop(images, rng, scale):
    """Crop a random square of area fraction U(scale, 1) from each image, resize it back (bilinear).

    As torchvision with ratio=(1, 1): side = round(sqrt(area * U(scale, 1))),
    top-left corner uniform over the valid positions. Resizing samples at
    pixel centres (align_corners=False), clamps at the crop's edges and
    rounds to uint8. Draws: the areas (N), then the rows (N), then the
    columns (N).
    """
    xp = get_array_module(images)
    n, h, w, _ = images.shape
    side = np.rint(np.sqrt(h * w * rng.uniform(scale, 1.0, size=n))).astype(np.int64)
    side = np.clip(side, 1, min(h, w))
    top = rng.integers(0, h - side + 1)
    left = rng.integers(0, w - side + 1)

    def taps(start, size, out):
        """Source indices (n, out) of the two neighbours and the weight of the second one."""
        src = np.maximum((np.arange(out) + 0.5) * (size[:, None] / out) - 0.5, 0)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, size[:, None] - 1)
        return start[:, None] + lo, start[:, None] + hi, (src - lo).astype(np.float32)

    y0, y1, wy = taps(top, side, h)       # (n, h) each
    x0, x1, wx = taps(left, side, w)      # (n, w) each
    f = images.astype(xp.float32)
    i = xp.arange(n)[:, None, None]
    y0, y1, x0, x1 = (xp.asarray(a) for a in (y0, y1, x0, x1))
    wy = xp.asarray(wy)[:, :, None, None]     # (n, h, 1, 1)
    wx = xp.asarray(wx)[:, None, :, None]     # (n, 1, w, 1)
    top_row = (1 - wx) * f[i, y0[:, :, None], x0[:, None, :]] + wx * f[i, y0[:, :, None], x1[:, None, :]]
    bottom_row = (1 - wx) * f[i, y1[:, :, None], x0[:, None, :]] + wx * f[i, y1[:, :, None], x1[:, None, :]]
    out = (1 - wy) * top_row + wy * bottom_row
    return xp.clip(xp.rint(out), 0, 255).astype(xp.uint8)


def random_hflip(images, rng):
    """Mirror each image left-right with probability 1/2. Draws: rng.random(N)."""
    xp = get_array_module(images)
    flip = xp.asarray(rng.random(images.shape[0]) < 0.5)[:, None, None, None]
    return xp.where(flip, images[:, :, ::-1], images)


def color_jitter(images, rng, strength):
    """torchvision's ColorJitter(strength, strength, strength) (no hue), per image.

    Each image gets brightness, contrast and saturation factors drawn from
    U(max(0, 1 - strength), 1 + strength), applied in a random order of its
    own. Draws: the orders (rng.random((N, 3)) argsorted), then the factors
    (rng.uniform(size=(N, 3)), columns brightness, contrast, saturation).
    """
    xp = get_array_module(images)
    n = images.shape[0]
    order = np.argsort(rng.random((n, 3)), axis=1)                  # a random permutation per image
    factors = rng.uniform(max(0.0, 1 - strength), 1 + strength, size=(n, 3))
    out = images.copy()
    for position in range(3):                                       # first, second, third op
        for op, adjust in enumerate((brightness, contrast, color)):
            chosen = np.flatnonzero(order[:, position] == op)
            if chosen.size:
                index = xp.asarray(chosen)
                out[index] = adjust(out[index], factors[chosen, op])
    return out


def random_erasing(x, rng, p, scale=(0.02, 0.33), ratio=(0.3, 3.3)):
    """torchvision's RandomErasing(p) with value 0 on normalised float images (N, C, H, W).

    With probability p an image gets one rectangle of area fraction
    U(scale) and aspect ratio log-uniform in `ratio` set to 0 (the mean
    colour, after normalisation). Like torchvision, up to 10 tries are made
    to find a rectangle that fits; if none does, the image is left alone.
    Draws: rng.random(N), then areas and log-ratios (N, 10) each, then the
    row and column positions as uniforms (N) each.
    """
    xp = get_array_module(x)
    n, _, h, w = x.shape
    erase = rng.random(n) < p
    area = h * w * rng.uniform(scale[0], scale[1], size=(n, 10))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=(n, 10)))
    eh = np.rint(np.sqrt(area * aspect)).astype(np.int64)           # (n, 10) heights of the tries
    ew = np.rint(np.sqrt(area / aspect)).astype(np.int64)
    fits = (eh < h) & (ew < w)
    first = fits.argmax(axis=1)                                     # the first try that fits
    erase &= fits.any(axis=1)
    eh, ew = eh[np.arange(n), first], ew[np.arange(n), first]
    top = (rng.random(n) * (h - eh + 1)).astype(np.int64)
    left = (rng.random(n) * (w - ew + 1)).astype(np.int64)
    rows = (np.arange(h) >= top[:, None]) & (np.arange(h) < (top + eh)[:, None])     # (n, h)
    cols = (np.arange(w) >= left[:, None]) & (np.arange(w) < (left + ew)[:, None])   # (n, w)
    mask = erase[:, None, None] & rows[:, :, None] & cols[:, None, :]                # (n, h, w)
    return xp.where(xp.asarray(mask)[:, None], xp.float32(0), x)


class TrainTransform:
    """The training augmentation of the reference recipe (see the module docstring)."""

    def __init__(self, ra_n=2, ra_m=12, scale=1.0, jitter=0.0, reprob=0.0, hflip=True):
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if not 0 <= ra_m <= 30 or ra_n < 0:
            raise ValueError(f"need ra_n >= 0 and ra_m in 0..30, got ra_n={ra_n}, ra_m={ra_m}")
        if not 0 <= jitter < math.inf or not 0 <= reprob <= 1:        # (also refuses nan)
            raise ValueError(f"need jitter >= 0 (finite) and reprob in [0, 1], got {jitter}, {reprob}")
        self.ra_n, self.ra_m, self.scale = ra_n, ra_m, scale
        self.jitter, self.reprob, self.hflip = jitter, reprob, hflip

    def __call__(self, images, rng):
        """uint8 (N, H, W, 3) xp array -> augmented, normalised float32 (N, 3, H, W) xp array."""
        _check_images(images)
        if self.scale < 1:
            images = random_resized_crop(images, rng, self.scale)
        if self.hflip:
            images = random_hflip(images, rng)
        if self.ra_n > 0:
            images = rand_augment(images, rng, self.ra_n, self.ra_m)
        if self.jitter > 0:
            images = color_jitter(images, rng, self.jitter)
        x = normalize(images)
        if self.reprob > 0:
            x = random_erasing(x, rng, self.reprob)
        return x

    def __repr__(self):
        return (f"TrainTransform(ra_n={self.ra_n}, ra_m={self.ra_m}, scale={self.scale}, "
                f"jitter={self.jitter}, reprob={self.reprob}, hflip={self.hflip})")


class TestTransform:
    """Evaluation transform: normalisation only. The rng argument is accepted and ignored."""

    __test__ = False   # the name starts with "Test": tell pytest this is not a test class

    def __call__(self, images, rng=None):
        return normalize(images)

    def __repr__(self):
        return "TestTransform()"
