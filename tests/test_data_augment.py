"""Tests of augmentation, RandAugment and batching (on the CPU; the device test also on a GPU when there is one).

torchvision is not a dependency, so each operation is checked against an
independent reference: Pillow's ImageOps / ImageEnhance / Image.transform
(torchvision's tensor ops were written to match them, up to rounding), or a
direct PyTorch computation (grid_sample, interpolate) of the sampling that
torchvision performs.
"""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from scipy import ndimage

from tinyconvmixer.engine.backend import to_device, to_numpy
from tinyconvmixer.data import (CIFAR10_MEAN, CIFAR10_STD, TestTransform, TrainTransform, get_batch,
                                iterate_batches, load_cifar10, normalize, num_batches)
from tinyconvmixer.data.augment import color_jitter, random_erasing, random_resized_crop
from tinyconvmixer.data.randaugment import (OPS, SIGNED, affine_matrices, apply_op, brightness, color, contrast,
                                            op_strength, rand_augment)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The bundled sample, loaded with a private data folder (never ~/.cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYCONVMIXER_DATA", str(tmp_path_factory.mktemp("data-home")))
        return load_cifar10("sample")


@pytest.fixture(scope="module")
def images(sample):
    """64 real CIFAR-10 images (N, 32, 32, 3) uint8, a few of every class."""
    return sample.train_x[::39][:64].copy()


def pil_each(images, fn):
    """Apply a PIL function image by image (the reference: slow, obviously correct)."""
    return np.stack([np.asarray(fn(Image.fromarray(im))) for im in images])


def max_diff(a, b):
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def full(value, n=64):
    return np.full(n, value, dtype=np.float64)


# -------------------------------------------------------- op strengths

def test_strengths_match_torchvision_at_magnitude_12():
    """torchvision's RandAugment table (31 bins) at the recipe's magnitude 12."""
    s = {name: op_strength(name, 12) for name in OPS}
    assert s["ShearX"] == s["ShearY"] == pytest.approx(0.12)
    assert s["TranslateX"] == pytest.approx(150 / 331 * 32 * 12 / 30)      # 5.80 -> 5 whole pixels
    assert s["Rotate"] == pytest.approx(12.0)
    assert s["Brightness"] == s["Color"] == s["Contrast"] == s["Sharpness"] == pytest.approx(0.36)
    assert s["Posterize"] == 6 and s["Solarize"] == pytest.approx(153.0)
    assert [op_strength("Posterize", m) for m in (0, 9, 30)] == [8, 7, 4]
    assert op_strength("Solarize", 30) == 0.0
    assert SIGNED == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                      "Brightness", "Color", "Contrast", "Sharpness"}


# -------------------------------------------------------- colour ops vs PIL

def test_posterize_solarize_equalize_match_pil_exactly(images):
    for bits in (4, 6, 8):
        ref = pil_each(images, lambda im: ImageOps.posterize(im, bits))
        assert max_diff(apply_op("Posterize", images, full(bits)), ref) == 0
    for threshold in (0.0, 85.0, 153.0, 255.0):
        ref = pil_each(images, lambda im: ImageOps.solarize(im, threshold))
        assert max_diff(apply_op("Solarize", images, full(threshold)), ref) == 0
    assert max_diff(apply_op("Equalize", images, full(0)), pil_each(images, ImageOps.equalize)) == 0


def test_equalize_and_autocontrast_edge_cases():
    flat = np.full((1, 32, 32, 3), 77, np.uint8)                  # one value per channel: left alone
    two = np.zeros((1, 32, 32, 3), np.uint8)
    two[:, :16] = 200                                             # two values per channel
    for image in (flat, two):
        assert max_diff(apply_op("Equalize", image, full(0, 1)), pil_each(image, ImageOps.equalize)) == 0
    assert np.array_equal(apply_op("AutoContrast", flat, full(0, 1)), flat)
    # 200 * (255 / 200) is 255 in float32 (torchvision) but 254.99999999999997 -> 254 in PIL's doubles.
    stretched = apply_op("AutoContrast", two, full(0, 1))
    assert set(np.unique(stretched)) == {0, 255}


def test_autocontrast_matches_pil(images):
    assert max_diff(apply_op("AutoContrast", images, full(0)), pil_each(images, ImageOps.autocontrast)) <= 1


@pytest.mark.parametrize("factor", [0.1, 0.64, 1.36, 1.9])
def test_enhance_ops_match_pil(images, factor):
    """Brightness is exact; the others differ from PIL by rounding only (PIL rounds its grey
    level and its mean, torchvision truncates them)."""
    pairs = [("Brightness", ImageEnhance.Brightness, 0), ("Color", ImageEnhance.Color, 1),
             ("Contrast", ImageEnhance.Contrast, 2), ("Sharpness", ImageEnhance.Sharpness, 1)]
    for name, enhancer, tolerance in pairs:
        ours = apply_op(name, images, full(factor - 1))
        assert max_diff(ours, pil_each(images, lambda im: enhancer(im).enhance(factor))) <= tolerance, name


def test_sharpness_blur_kernel_and_border(images):
    """Factor 0 returns the smoothed image itself: inside, the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13,
    rounded; the one-pixel border untouched."""
    smooth = apply_op("Sharpness", images, full(-1.0))
    kernel = np.ones((1, 3, 3, 1)) / 13
    kernel[0, 1, 1, 0] = 5 / 13
    ref = np.rint(ndimage.correlate(images.astype(np.float64), kernel, mode="nearest"))
    assert np.array_equal(smooth[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1])
    for border in (np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1]):
        assert np.array_equal(smooth[border], images[border])


@pytest.mark.parametrize("name", ["Brightness", "Color", "Contrast", "Sharpness", "Identity"])
def test_strength_zero_is_identity(images, name):
    assert np.array_equal(apply_op(name, images, full(0.0)), images)


def test_contrast_zero_is_the_mean_grey(images):
    """Contrast factor 0 -> a flat image at the mean of torchvision's luma: 0.2989 R + 0.587 G + 0.114 B
    in float32, truncated to uint8 (so a grey (v, v, v) pixel has luma v - 1: the weights sum to 0.9999)."""
    out = apply_op("Contrast", images[:4], full(-1.0, 4))
    r, g, b = np.moveaxis(images[:4].astype(np.float32), -1, 0)
    grey = np.trunc(np.float32(0.2989) * r + np.float32(0.587) * g + np.float32(0.114) * b)
    want = np.floor(grey.astype(np.float64).mean(axis=(1, 2)))
    assert np.array_equal(out, np.broadcast_to(want[:, None, None, None], out.shape).astype(np.uint8))


# ------------------------------------------------------ geometric ops

def pil_affine(images, coefficients):
    """PIL's nearest-neighbour affine warp: output pixel (x, y) samples the source at
    (a x + b y + c, d x + e y + f), in pixel-edge coordinates, black outside."""
    warp = lambda im: im.transform((32, 32), Image.AFFINE, coefficients, resample=Image.NEAREST)  # noqa: E731
    return pil_each(images, warp)


def test_geometric_ops_match_pil(images):
    """Strengths chosen so no sample point falls exactly halfway between pixels (where
    PIL rounds up and torchvision rounds half to even); then the results are identical."""
    for m in (0.1234, -0.29):
        assert max_diff(apply_op("ShearX", images, full(m)), pil_affine(images, (1, m, 0, 0, 1, 0))) == 0
        assert max_diff(apply_op("ShearY", images, full(m)), pil_affine(images, (1, 0, 0, m, 1, 0))) == 0
    for t in (5.8, -5.8, 14.5):        # torchvision moves by int(t) pixels
        shift = int(t)
        assert max_diff(apply_op("TranslateX", images, full(t)), pil_affine(images, (1, 0, -shift, 0, 1, 0))) == 0
        assert max_diff(apply_op("TranslateY", images, full(t)), pil_affine(images, (1, 0, 0, 0, 1, -shift))) == 0
    for angle in (17.3, -30.0):
        ref = pil_each(images, lambda im: im.rotate(angle, resample=Image.NEAREST))
        assert max_diff(apply_op("Rotate", images, full(angle)), ref) == 0


def test_geometric_ops_match_grid_sample_at_recipe_strength(images):
    """At the real magnitude 12 (ties included) we sample exactly like torchvision:
    a centred pixel grid mapped by the inverse matrix, then grid_sample(nearest, zeros)."""
    torch = pytest.importorskip("torch")
    n = len(images)
    centres = torch.arange(32, dtype=torch.float32) + 0.5 - 16
    gx, gy = torch.meshgrid(centres, centres, indexing="xy")
    base = torch.stack([gx, gy, torch.ones(32, 32)], dim=-1).reshape(1, 1024, 3).expand(n, -1, -1)
    source = torch.tensor(images).permute(0, 3, 1, 2).float()
    for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        for sign in (1, -1):
            strengths = full(sign * op_strength(name, 12))
            theta = torch.tensor(affine_matrices(name, strengths, (32, 32)), dtype=torch.float32)
            grid = (base @ theta.transpose(1, 2) / 16).reshape(n, 32, 32, 2)
            ref = torch.nn.functional.grid_sample(source, grid, mode="nearest", padding_mode="zeros",
                                                  align_corners=False)
            ref = ref.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            assert max_diff(apply_op(name, images, strengths), ref) == 0, (name, sign)


def test_rotation_direction_is_counter_clockwise():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 16, 28] = 255                                 # a dot 12 pixels right of the centre
    out = apply_op("Rotate", image, full(90.0, 1))
    assert np.argwhere(out[0, :, :, 0]).tolist() == [[3, 16]]    # ... ends up 12 pixels above it


# ------------------------------------------------------------- RandAugment

@pytest.mark.parametrize("num_ops", [1, 2])
def test_rand_augment_equals_a_loop_over_images(images, num_ops):
    """Grouping images by op gives what applying each image's op one by one gives."""
    out = rand_augment(images, np.random.default_rng(7), num_ops=num_ops, magnitude=12)
    rng = np.random.default_rng(7)
    want = images.copy()
    for _ in range(num_ops):
        ops, negative = rng.integers(len(OPS), size=len(images)), rng.random(len(images)) < 0.5
        for i, k in enumerate(ops):
            strength = op_strength(OPS[k], 12) * (-1 if negative[i] and OPS[k] in SIGNED else 1)
            want[i:i + 1] = apply_op(OPS[k], want[i:i + 1], full(strength, 1))
    assert np.array_equal(out, want)
    assert not np.array_equal(out, images)


def test_rand_augment_leaves_its_input_alone(images):
    before = images.copy()
    rand_augment(images, np.random.default_rng(0), 2, 30)
    assert np.array_equal(images, before)


# ------------------------------------------------- the other transforms

def test_normalize_values_and_statistics(images, sample):
    out = normalize(images)
    assert out.dtype == np.float32 and out.shape == (64, 3, 32, 32) and out.flags.c_contiguous
    mean, std = np.array(CIFAR10_MEAN)[:, None, None], np.array(CIFAR10_STD)[:, None, None]
    want = (images.transpose(0, 3, 1, 2) / 255 - mean) / std
    np.testing.assert_allclose(out, want, atol=1e-5)
    everything = normalize(sample.train_x)                       # 2,500 real images
    np.testing.assert_allclose(everything.mean(axis=(0, 2, 3)), 0, atol=0.03)
    np.testing.assert_allclose(everything.std(axis=(0, 2, 3)), 1, atol=0.03)
    assert np.array_equal(TestTransform()(images), out)


def test_random_resized_crop_matches_torch_interpolate(images):
    """Same draws, then every crop resized like torchvision (bilinear, align_corners=False)."""
    torch = pytest.importorskip("torch")
    out = random_resized_crop(images, np.random.default_rng(3), 0.25)
    rng, n = np.random.default_rng(3), len(images)
    side = np.rint(np.sqrt(1024 * rng.uniform(0.25, 1.0, size=n))).astype(int)
    top, left = rng.integers(0, 33 - side), rng.integers(0, 33 - side)
    for i in range(n):
        crop = images[i, top[i]:top[i] + side[i], left[i]:left[i] + side[i]]
        crop = torch.tensor(crop).permute(2, 0, 1)[None].float()
        ref = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False,
                                              antialias=True)
        assert max_diff(out[i], ref[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()) == 0
    assert 0.25 * 1024 <= min(side) ** 2 and max(side) <= 32


def test_scale_one_flip_only(images):
    """scale=1 draws no crop; the flips are exactly rng.random(N) < 0.5."""
    out = TrainTransform(ra_n=0, scale=1.0)(images, np.random.default_rng(5))
    flipped = np.random.default_rng(5).random(len(images)) < 0.5
    want = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
    assert np.array_equal(out, normalize(want))
    assert 10 < flipped.sum() < 54
    unchanged = TrainTransform(ra_n=0, hflip=False)(images, np.random.default_rng(5))
    assert np.array_equal(unchanged, normalize(images))


def test_color_jitter_applies_each_images_own_order(images):
    out = color_jitter(images[:16], np.random.default_rng(2), 0.4)
    rng = np.random.default_rng(2)
    order = np.argsort(rng.random((16, 3)), axis=1)
    factors = rng.uniform(0.6, 1.4, size=(16, 3))
    ops = (brightness, contrast, color)
    for i in range(16):
        want = images[i:i + 1]
        for op in order[i]:
            want = ops[op](want, factors[i:i + 1, op])
        assert np.array_equal(out[i:i + 1], want)


def test_random_erasing_makes_one_zero_rectangle(images):
    x = normalize(images)
    out = random_erasing(x, np.random.default_rng(4), p=1.0)
    erased = 0
    for i in range(len(x)):
        zero = np.all(out[i] == 0, axis=0) & np.any(x[i] != 0, axis=0)    # (H, W) newly zero
        assert np.array_equal(out[i][:, ~zero], x[i][:, ~zero])
        if zero.any():
            erased += 1
            rows, cols = np.flatnonzero(zero.any(axis=1)), np.flatnonzero(zero.any(axis=0))
            assert zero[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()     # a filled rectangle
            assert 0.02 * 1024 - 8 <= zero.sum() <= 0.33 * 1024 + 8
    assert erased > 50
    assert np.array_equal(random_erasing(x, np.random.default_rng(4), p=0.0), x)


# ------------------------------------------------------- the full pipeline

RECIPE = dict(ra_n=2, ra_m=12, scale=0.75, jitter=0.1, reprob=0.25)


def test_train_transform_shapes_and_determinism(images):
    transform = TrainTransform(**RECIPE)
    before = images.copy()
    a = transform(images, np.random.default_rng([0, 3, 1]))
    b = TrainTransform(**RECIPE)(images, np.random.default_rng([0, 3, 1]))
    c = transform(images, np.random.default_rng([0, 3, 2]))
    assert a.shape == (64, 3, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(images, before)
    assert np.isfinite(a).all()


def test_same_augmentation_on_every_device(images, device):
    """The same seed gives the same batch on the CPU and on the GPU (skipped without CuPy):
    every op, then the whole recipe."""
    on_device = to_device(images, device)
    for name in OPS:
        strengths = full(op_strength(name, 12) * (-1 if name in SIGNED else 1))
        got = to_numpy(apply_op(name, on_device, strengths))
        assert np.array_equal(got, apply_op(name, images, strengths)), name
    got = to_numpy(TrainTransform(**RECIPE)(on_device, np.random.default_rng([0, 3, 1])))
    want = TrainTransform(**RECIPE)(images, np.random.default_rng([0, 3, 1]))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_train_transform_checks_its_arguments(images):
    with pytest.raises(ValueError, match="scale"):
        TrainTransform(scale=0)
    with pytest.raises(ValueError, match="ra_m"):
        TrainTransform(ra_m=31)
    with pytest.raises(ValueError, match=r"uint8 images of shape \(N, H, W, 3\)"):
        TrainTransform()(images.transpose(0, 3, 1, 2), np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        normalize(images.astype(np.float32))


# ---------------------------------------------------------------- batching

def test_iterate_batches():
    batches = list(iterate_batches(10, 4, np.random.default_rng([1, 0])))
    assert [len(b) for b in batches] == [4, 4, 2] and num_batches(10, 4) == 3
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(iterate_batches(10, 4, np.random.default_rng([1, 0])))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = list(iterate_batches(10, 4, np.random.default_rng([1, 1])))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    assert [len(b) for b in iterate_batches(10, 4, np.random.default_rng(0), drop_last=True)] == [4, 4]
    assert num_batches(10, 4, drop_last=True) == 2 and num_batches(12, 4) == 3
    assert np.concatenate(list(iterate_batches(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rng"):
        next(iterate_batches(5, 2))


def test_get_batch_on_cpu(images):
    labels = np.arange(len(images))
    x, y = get_batch(images, labels, np.array([3, 1]), "cpu")
    assert np.array_equal(x, images[[3, 1]]) and y.tolist() == [3, 1]
