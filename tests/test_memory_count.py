"""benchmarks/memory.py's count of what the tape keeps (by memory, not by name), and what the ops
keep: nothing batch-sized of their own beyond the tape's inputs, on the fast variants and on the
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
    y = (h * h).sum()               # Mul keeps h twice: one allocation; Sum keeps the product
    kept = memory.tape_bytes(y)
    assert kept == x.data.nbytes + w.data.nbytes + h.data.nbytes + 4 * 3 * 8 + y.data.nbytes


def own_bytes(root):
    """Bytes the Functions keep beyond the arrays of the tensors the tape holds anyway."""
    held = [root.data]
    for node in memory.topological_order(root):
        if node._fn is not None and node._fn.inputs is not None:
            memory.arrays_in(node._fn.inputs, held)
    return memory.tape_bytes(root) - memory.union_bytes({memory.allocation(a) for a in held if a.size})


@pytest.mark.parametrize("variants", ["fast", "references"])
def test_ops_keep_nothing_batch_sized_of_their_own(variants, rng):
    """ConvMixer's tape: every op keeps only arrays the tape holds anyway (its inputs), except
    the patch embedding's column matrix (a copy of the images), the head's few values per
    image (log-probabilities) and parameter-sized arrays. One activation of this model is
    16 x 8 x 8 float32 = 4 KiB per image: an op keeping one would be seen."""
    def extra(N):
        nn.init.manual_seed(0)
        model = nn.ConvMixer(16, 2, kernel_size=5, patch_size=2, n_classes=10)
        x = Tensor(backend.channels_last(rng.standard_normal((N, 3, 16, 16)).astype(np.float32)))
        return own_bytes(F.cross_entropy(model(x), np.arange(N) % 10))
    with (dispatch.reference_only() if variants == "references" else contextlib.nullcontext()):
        per_image = (extra(6) - extra(2)) / 4
    assert per_image <= 3 * 16 * 16 * 4 + 256                    # the images' bytes, and the head's


def test_evaluation_under_no_grad_keeps_nothing(rng):
    model = nn.ConvMixer(16, 2, kernel_size=5, patch_size=2, n_classes=10)
    x = Tensor(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    with no_grad():
        out = model(x)
    assert out._fn is None and memory.tape_bytes(out) == out.data.nbytes
