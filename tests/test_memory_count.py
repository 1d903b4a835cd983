"""benchmarks/memory.py's count of what the tape keeps (by memory, not by name), and what
ConvMixer's tape keeps: four activations a block (GELU's slopes and BatchNorm's inputs; the
residual sum and BatchNorm's outputs are computed again), on the fast variants and on the
references, and nothing at all under no_grad."""

import contextlib
import os
import sys

import numpy as np
import pytest

import tinyconvmixer.functional as F
from tinyconvmixer import Tensor, nn, no_grad
from tinyconvmixer.engine import backend, dispatch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import memory  # noqa: E402  (benchmarks/memory.py)


def test_union_counts_overlapping_ranges_once():
    assert memory.union_bytes([(0, 10), (5, 20), (30, 40), (30, 35), (40, 41)]) == 31
    assert memory.union_bytes([]) == 0


def test_a_view_keeps_its_whole_allocation_alive(rng):
    a = rng.standard_normal((8, 8))
    assert memory.allocation(a[2:4, ::2]) == memory.allocation(a) == memory.allocation(a.T)
    start, stop = memory.allocation(a)
    assert stop - start == a.nbytes


def test_the_tape_count_of_a_small_graph(rng):
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    h = x @ w                       # MatMul keeps x and w (its inputs, by name a and b)
    y = (h * h).sum()               # Mul keeps h twice: one allocation; Sum keeps only a shape
    kept = memory.tape_bytes(y)
    assert kept == x.data.nbytes + w.data.nbytes + h.data.nbytes + y.data.nbytes


def test_a_stub_keeps_data_only_where_backward_reads_it(rng):
    x = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    x2 = x + x                      # an addition keeps nothing; GELU keeps its slope: x2 is read
    a = F.gelu(x2)                  # by no one
    b = F.batch_norm(a, None, None, training=True) + x       # BatchNorm keeps a; the sum keeps nothing
    loss = F.gelu(b).sum()          # ... and b is not kept: the last GELU keeps only its slope
    act = x.data.nbytes
    stats = 2 * 3 * 8                                         # BatchNorm's mean and invstd, 3 channels
    assert memory.tape_bytes(loss) == 4 * act + stats + loss.data.nbytes   # x, a, the two slopes
    assert a._stub._data is a.data and x2._stub._data is None
    assert b._stub._data is None                              # computed again where it is read:
    np.testing.assert_array_equal(b._stub.data, b.data)       # the same values, bit for bit


@pytest.mark.parametrize("variants", ["fast", "references"])
def test_convmixer_keeps_four_activations_a_block(variants, rng):
    """Per image: four activations a block (the two GELU slopes, the two BatchNorm inputs), two
    for the patch embedding (its GELU slope and BatchNorm input), the images and the head's
    few values. One activation here is 16 x 8 x 8 float32 = 4 KiB per image: one more kept
    per block (the residual sum, a BatchNorm output, a GELU input) would be seen."""
    def kept(N):
        nn.init.manual_seed(0)
        model = nn.ConvMixer(16, 2, kernel_size=5, patch_size=2, n_classes=10)
        x = Tensor(backend.channels_last(rng.standard_normal((N, 3, 16, 16)).astype(np.float32)))
        return memory.tape_bytes(F.cross_entropy(model(x), np.arange(N) % 10))
    with (dispatch.reference_only() if variants == "references" else contextlib.nullcontext()):
        per_image = (kept(6) - kept(2)) / 4
    act, images = 16 * 8 * 8 * 4, 3 * 16 * 16 * 4
    assert 10 * act <= per_image <= 10 * act + images + 256       # (4 x 2 blocks + 2) activations


def test_evaluation_under_no_grad_keeps_nothing(rng):
    model = nn.ConvMixer(16, 2, kernel_size=5, patch_size=2, n_classes=10)
    x = Tensor(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    with no_grad():
        out = model(x)
    assert out._fn is None and memory.tape_bytes(out) == out.data.nbytes


def test_a_stub_without_data_says_what_to_declare(rng):
    from tinyconvmixer.engine import Function

    class Careless(Function):               # reads its input in backward without listing it in saves
        def forward(self, x):
            return x * 2

        def backward(self, g):
            return g * 2 + 0 * self.inputs[0].data

    x = Tensor(rng.standard_normal(3), requires_grad=True)
    y = Careless.apply(F.gelu(x))           # GELU keeps its slope, not its output
    with pytest.raises(RuntimeError, match="GELU output was not kept: list it in its reader's saves"):
        y.sum().backward()

    class Careful(Careless):
        saves = (0,)
    x.grad = None
    Careful.apply(F.gelu(x)).sum().backward()     # the stub kept GELU's output this time
    x2 = Tensor(x.data, requires_grad=True)
    (F.gelu(x2) * 2).sum().backward()
    np.testing.assert_allclose(x.grad, x2.grad)


def test_what_is_computed_again_stays_shallow_and_safe(rng):
    """Found by review: an addition may be made again only from kept data or one more cheap op,
    never from a leaf (whose data may change in place before backward), and deciding so costs
    the same for a chain of 2,000 additions or a graph of shared ones (no recursion, no blow-up)."""
    w = Tensor(rng.standard_normal((4, 4, 1, 1)), requires_grad=True)
    h = Tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True) * 1.0
    for _ in range(2000):
        h = h + 1.0
    F.conv2d(h, w).sum().backward()
    h = Tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True) * 1.0
    for _ in range(40):
        h = h + h                               # 2^40 paths: only seen if the check recursed
    F.conv2d(h, w).sum().backward()

    a, b = (Tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True) for _ in range(2))
    w.grad = None
    F.conv2d(a + b, w).sum().backward()
    expected, w.grad = w.grad.copy(), None
    y = F.conv2d(a + b, w)
    a.data += 100                               # in place, between forward and backward
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, expected)

    s = F.batch_norm(a * 1.0, None, None, training=True) + a * 1.0
    s.sum().backward()                          # frees the graph behind s ...
    y = F.conv2d(s, w)                          # ... whose nodes then remake nothing: s is kept
    assert s._stub._data is s.data
