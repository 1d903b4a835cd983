"""RandAugment (Cubuk et al., 2019) the way torchvision implements it, for a whole batch at once.

RandAugment applies `num_ops` rounds to every image; in each round the image
gets one of 14 operations, chosen uniformly, at one fixed strength
`magnitude` (a bin 0..30), with the sign of signed operations flipped with
probability 1/2. We follow torchvision's tensor implementation
(torchvision.transforms.RandAugment on uint8 tensors): the same operations,
strengths and formulas, with results truncated back to uint8 after each
operation as torchvision does.

Vectorisation: instead of a loop over images, each round loops over the 14
operations and applies each one to the subset of images that drew it, all at
once. Images are uint8 xp arrays (N, H, W, 3) on the CPU (NumPy) or the GPU
(CuPy). All random numbers come from a NumPy Generator on the host, so a seed
gives the same augmentation on either device. Geometric operations compute
their pixel index maps on the host too (in float64), so the CPU and the GPU
pick exactly the same source pixels.
"""

import numpy as np

from ..engine.backend import get_array_module

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
       "Brightness", "Color", "Contrast", "Sharpness",
       "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
          "Brightness", "Color", "Contrast", "Sharpness"}


def op_strength(name, magnitude, num_bins=31, size=(32, 32)):
    """torchvision's unsigned strength of op `name` at bin `magnitude` for images of `size` (H, W)."""
    t = magnitude / (num_bins - 1)                          # 0 .. 1 along the bins
    if name in ("ShearX", "ShearY"):
        return 0.3 * t                                      # shear factor (tan of the shear angle)
    if name in ("TranslateX", "TranslateY"):
        return 150.0 / 331.0 * size[1 if name == "TranslateX" else 0] * t   # pixels
    if name == "Rotate":
        return 30.0 * t                                     # degrees
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 0.9 * t                                      # the enhance factor is 1 +- this
    if name == "Posterize":
        return 8 - round(magnitude / ((num_bins - 1) / 4))  # bits kept: 8 .. 4
    if name == "Solarize":
        return 255.0 * (1 - t)                              # threshold: 255 .. 0
    return 0.0                                              # Identity, AutoContrast, Equalize


def rand_augment(images, rng, num_ops=2, magnitude=9, num_bins=31):
    """RandAugment a uint8 batch (N, H, W, 3); returns a new array, the input is left alone.

    Random draws per round, in this order: the op of every image
    (rng.integers(14, size=N)), then a sign for every image (rng.random(N) < 0.5
    means negative), used only by signed ops.
    """
    xp = get_array_module(images)
    out = images.copy()
    n, h, w, _ = images.shape
    for _ in range(num_ops):
        ops = rng.integers(len(OPS), size=n)
        signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        for k, name in enumerate(OPS):
            chosen = np.flatnonzero(ops == k)
            if name == "Identity" or chosen.size == 0:
                continue
            strength = np.full(chosen.size, op_strength(name, magnitude, num_bins, (h, w)))
            if name in SIGNED:
                strength *= signs[chosen]
            index = xp.asarray(chosen)
            out[index] = apply_op(name, out[index], strength)
    return out


def apply_op(name, images, strengths):
    """Apply op `name` to a uint8 batch (n, H, W, 3), image i at (signed) strength strengths[i]."""
    if name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        return affine_nearest(images, affine_matrices(name, strengths, images.shape[1:3]))
    if name == "Identity":
        return images
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return ENHANCE[name](images, 1.0 + np.asarray(strengths, dtype=np.float64))
    if name == "Posterize":
        return posterize(images, strengths)
    if name == "Solarize":
        return solarize(images, strengths)
    return {"AutoContrast": autocontrast, "Equalize": equalize}[name](images)


# ---------------------------------------------------------------- colour ops

def _per_image(values, xp):
    """Host values, one per image -> float32 xp array (n, 1, 1, 1) that broadcasts over NHWC."""
    return xp.asarray(np.asarray(values, dtype=np.float32).reshape(-1, 1, 1, 1))


def blend(images, other, ratio):
    """ratio * images + (1 - ratio) * other, clamped to 0..255 and truncated to uint8.

    This is torchvision's _blend; every enhance op is a blend with a
    "degenerate" image: black (brightness), grey (colour), the mean grey
    (contrast) or a blurred copy (sharpness). ratio > 1 extrapolates away
    from it. Computed in float32, as torchvision does.
    """
    xp = get_array_module(images)
    ratio = np.asarray(ratio, dtype=np.float64)
    mixed = _per_image(ratio, xp) * images.astype(xp.float32) + _per_image(1.0 - ratio, xp) * other
    return xp.clip(mixed, 0, 255).astype(xp.uint8)


def grayscale(images):
    """Luma 0.2989 R + 0.587 G + 0.114 B, truncated to uint8: (n, H, W, 3) -> (n, H, W, 1)."""
    xp = get_array_module(images)
    f = images.astype(xp.float32)
    luma = 0.2989 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return luma.astype(xp.uint8)[..., None]


def brightness(images, factors):
    """Scale all pixels: blend with black."""
    xp = get_array_module(images)
    return blend(images, xp.float32(0), factors)


def color(images, factors):
    """Saturation: blend with the image's own grey version (factor 0 = grey)."""
    xp = get_array_module(images)
    return blend(images, grayscale(images).astype(xp.float32), factors)


def contrast(images, factors):
    """Blend with a flat image at the mean grey level (factor 0 = uniform grey)."""
    xp = get_array_module(images)
    mean = grayscale(images).astype(xp.float32).mean(axis=(1, 2, 3), keepdims=True)   # (n, 1, 1, 1)
    return blend(images, mean, factors)


def sharpness(images, factors):
    """Blend with a smoothed copy (factor > 1 sharpens).

    The smoothed copy uses the 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13
    on the interior pixels, rounded to uint8; border pixels stay as they are
    (torchvision and PIL both do this).
    """
    xp = get_array_module(images)
    f = images.astype(xp.float32)
    h, w = images.shape[1:3]
    total = 4 * f[:, 1:-1, 1:-1]                       # centre weight 5 = 4 here + 1 in the loop
    for dy in range(3):
        for dx in range(3):
            total = total + f[:, dy:dy + h - 2, dx:dx + w - 2]
    smooth = images.copy()
    smooth[:, 1:-1, 1:-1] = xp.rint(total / 13).astype(xp.uint8)
    return blend(images, smooth.astype(xp.float32), factors)


ENHANCE = {"Brightness": brightness, "Color": color, "Contrast": contrast, "Sharpness": sharpness}


def posterize(images, bits):
    """Keep the top bits[i] bits of every channel value of image i."""
    xp = get_array_module(images)
    masks = (0xFF << (8 - np.asarray(bits, dtype=np.int64))) & 0xFF
    return images & xp.asarray(masks.astype(np.uint8).reshape(-1, 1, 1, 1))


def solarize(images, thresholds):
    """Invert (255 - v) every value v >= the image's threshold."""
    xp = get_array_module(images)
    return xp.where(images >= _per_image(thresholds, xp), 255 - images, images)


def autocontrast(images):
    """Stretch each channel of each image to span 0..255 (channels with one value are left alone)."""
    xp = get_array_module(images)
    low = images.min(axis=(1, 2), keepdims=True).astype(xp.float32)    # (n, 1, 1, 3)
    high = images.max(axis=(1, 2), keepdims=True).astype(xp.float32)
    flat = high <= low
    scale = xp.where(flat, xp.float32(1), xp.float32(255) / xp.where(flat, xp.float32(1), high - low))
    low = xp.where(flat, xp.float32(0), low)
    return xp.clip((images - low) * scale, 0, 255).astype(xp.uint8)


def equalize(images):
    """Histogram-equalise each channel of each image (the formula PIL and torchvision share).

    With hist the 256-bin histogram of a channel and `step` = (pixels outside
    the highest occupied bin) // 255, value v maps to
    (step // 2 + number of pixels below v) // step; step == 0 leaves the
    channel unchanged.
    """
    xp = get_array_module(images)
    n, h, w, c = images.shape
    channels = images.transpose(0, 3, 1, 2).reshape(n * c, h * w).astype(xp.int64)  # one row per channel
    rows = xp.arange(n * c)
    bins = (channels + 256 * rows[:, None]).ravel()               # bin of each pixel, per row
    if xp is np:
        hist = np.bincount(bins, minlength=256 * n * c)
    else:       # cupy.bincount reads the largest value back to the host (a sync): count with add.at
        hist = xp.zeros(256 * n * c, dtype=xp.int64)
        xp.add.at(hist, bins, 1)
    hist = hist.reshape(n * c, 256)
    top = channels.max(axis=1)                                    # highest occupied bin per channel
    step = (h * w - hist[rows, top]) // 255                       # (n*c,)
    below = xp.cumsum(hist, axis=1) - hist                        # pixels strictly below each value
    lut = (step[:, None] // 2 + below) // xp.maximum(step, 1)[:, None]
    lut = xp.where(step[:, None] == 0, xp.arange(256), xp.minimum(lut, 255))
    mapped = xp.take_along_axis(lut, channels, axis=1).astype(xp.uint8)
    return mapped.reshape(n, c, h, w).transpose(0, 2, 3, 1).copy()


# ------------------------------------------------------------- geometric ops

def affine_matrices(name, strengths, size):
    """Inverse maps (n, 2, 3), float64, of the geometric ops, as torchvision builds them.

    Coordinates are measured from the image centre, in pixels, with pixel
    centres at +-0.5, +-1.5, ...: output pixel (x, y) is filled from source
    point M[:, :2] @ (x, y) + M[:, 2].
    """
    h, w = size
    s = np.asarray(strengths, dtype=np.float64)
    m = np.zeros((len(s), 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    if name == "ShearX":      # about the top row (torchvision passes center=[0, 0])
        m[:, 0, 1], m[:, 0, 2] = s, s * h / 2
    elif name == "ShearY":    # about the left column
        m[:, 1, 0], m[:, 1, 2] = s, s * w / 2
    elif name == "TranslateX":
        m[:, 0, 2] = -np.trunc(s)       # torchvision moves by int(strength) whole pixels
    elif name == "TranslateY":
        m[:, 1, 2] = -np.trunc(s)
    elif name == "Rotate":    # counter-clockwise by s degrees about the centre
        a = np.deg2rad(s)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    else:
        raise ValueError(f"{name} is not a geometric op")
    return m


def affine_nearest(images, matrices):
    """Warp image i by inverse map matrices[i] with nearest sampling; outside points become 0.

    Nearest means rounding the source coordinate half-to-even, like
    torch.nn.functional.grid_sample(mode="nearest").
    """
    xp = get_array_module(images)
    n, h, w, c = images.shape
    xs = np.arange(w) + 0.5 - w / 2                                        # (w,) centred x
    ys = (np.arange(h) + 0.5 - h / 2)[:, None]                             # (h, 1) centred y
    m = matrices[:, :, :, None, None]                                      # (n, 2, 3, 1, 1)
    src_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2] + w / 2 - 0.5   # (n, h, w) column index
    src_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2] + h / 2 - 0.5   # (n, h, w) row index
    col, row = np.rint(src_x).astype(np.int64), np.rint(src_y).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = np.where(inside, row * w + col, 0).reshape(n, h * w)            # source pixel per output pixel
    picked = images.reshape(n, h * w, c)[xp.arange(n)[:, None], xp.asarray(flat)]   # (n, h*w, c)
    keep = xp.asarray(inside.reshape(n, h * w, 1))
    return xp.where(keep, picked, xp.uint8(0)).reshape(n, h, w, c)
