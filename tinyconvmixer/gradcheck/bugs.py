"""A catalogue of bugs that students really write, to plant in the engine one at a time.

    python -m tinyconvmixer.gradcheck --list-bugs            the catalogue
    python -m tinyconvmixer.gradcheck --inject col2im-overwrite
    python -m tinyconvmixer.gradcheck --mystery 7             a bug chosen by the seed, unnamed
    python -m tinyconvmixer.gradcheck --reveal 7              ... and what it was

Each bug is a small buggy version of one piece of the engine: a subclass of an
op's Function with a wrong forward or backward, or a wrong version of a helper
marked @replaceable (unbroadcast, col2im, the topological order, ...). plant()
stands it in for the original with engine/dispatch.py's stand_in(), the public
mechanism that the exercises use too; nothing is written to a file. While a bug
is planted, the op runs the buggy code on every device (the faster variants of
fast/ step aside). Each bug says which kinds of check catch it (suite.KINDS:
ones, op, model, parity, optim) and, by omission, which miss it;
tests/test_bugs.py holds every bug to that.

The catalogue teaches about checking as much as about gradients:
  * most bugs are caught by every check that runs the op;
  * col2im-overwrite and sub-sign are missed by the whole-model check: the model
    never has overlapping im2col windows, and never subtracts two tensors;
  * topo-breadth-first is caught by the model check and missed by every per-op check;
  * bn-no-var-path and bn-weight-grad-centred pass the all-ones upstream check;
  * log-softmax-no-max, gelu-tanh-for-exact and conv-output-size are forward bugs
    and bn-running-var-biased a buffer bug: backward agrees with forward, so no
    gradient check can see them; only PyTorch parity does;
  * adamw-l2 changes no gradient at all: only the optimiser check sees it.

Where conv2d has two reference paths (im2col and depthwise), each bug says which
one it lives in.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import optim
from ..engine import backend, dispatch, ops, tensor
from ..functional import activation, conv, im2col, loss, normalization
from ..functional.activation import normal_cdf


@dataclass(frozen=True)
class Bug:
    name: str
    op: str
    summary: str          # one line: what is wrong
    where: str            # file, function and code path
    explanation: str      # why the checks that catch it do, and why the others cannot
    swaps: Callable       # () -> [(reference, buggy replacement)], for dispatch.stand_in
    caught_by: tuple      # the kinds of check (suite.KINDS) that see it

    def plant(self):
        """A context manager: the engine has this bug inside the `with` block."""
        return dispatch.stand_in(*self.swaps())


# ----- the buggy versions ---------------------------------------------------------------------

def _sub_sign():
    class SubSignBug(ops.Sub):
        def backward(self, g):
            return ops.unbroadcast(g, self.shapes[0]), ops.unbroadcast(g, self.shapes[1])   # BUG: -g for b
    return [(ops.Sub, SubSignBug)]


def _broadcast_not_summed():
    def unbroadcast(grad, shape):
        return grad                                   # BUG: never summed back to `shape`
    return [(ops.unbroadcast, unbroadcast)]


def _no_accumulation():
    def accumulate(grads, key, g):
        grads[key] = g                                # BUG: should add to what is already there
    return [(tensor.accumulate, accumulate)]


def _topo_breadth_first():
    def breadth_first_order(root):
        order, seen, queue = [], {id(root)}, [root]   # BUG: a queue from the output, not a DFS post-order
        while queue:
            node = queue.pop(0)
            order.append(node)
            if node._fn is not None and node._fn.inputs is not None:
                for t, need in zip(node._fn.inputs, node._fn.needs_grad):
                    if need and id(t) not in seen:
                        seen.add(id(t))
                        queue.append(t)
        return order
    return [(tensor.topological_order, breadth_first_order)]


def _gelu_no_product_rule():
    class GELUNoProductRule(activation.GELU):
        def forward(self, x):
            if self.approximate != "none":
                return super().forward(x)
            cdf = normal_cdf(x)
            self.slope = cdf                          # BUG: d/dx x Phi(x) = Phi(x) + x phi(x)
            return x * cdf
    return [(activation.GELU, GELUNoProductRule)]


def _gelu_tanh_for_exact():
    class GELUTanhForExact(activation.GELU):
        def forward(self, x):
            self.approximate = "tanh"                 # BUG: whatever the caller asked for
            return super().forward(x)
    return [(activation.GELU, GELUTanhForExact)]


def _conv_weight_transpose():
    class ConvWeightTranspose(conv.Conv2dIm2col):
        def backward(self, g):
            dx, dw, db = super().backward(g)
            G, F = self.groups, self.w_shape[0]
            right = dw.reshape(G, F // G, -1)         # dOut^T @ cols: (G, F/G, Cg*kh*kw)
            wrong = right.transpose(0, 2, 1)          # BUG: cols^T @ dOut, (G, Cg*kh*kw, F/G) ...
            return dx, wrong.reshape(dw.shape), db    # ... reshaped to the weight's shape all the same
    return [(conv.Conv2dIm2col, ConvWeightTranspose)]


def _col2im_overwrite():
    def col2im(cols, padded_shape, stride):
        xp = backend.get_array_module(cols)
        N, C, kh, kw, Ho, Wo = cols.shape
        dx = xp.zeros(padded_shape, dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                im2col.tap(dx, i, j, (Ho, Wo), stride)[...] = cols[:, :, i, j]   # BUG: = instead of +=
        return dx
    return [(im2col.col2im, col2im)]


def _col2im_stride():
    def col2im(cols, padded_shape, stride):
        xp = backend.get_array_module(cols)
        N, C, kh, kw, Ho, Wo = cols.shape
        dx = xp.zeros(padded_shape, dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                dx[:, :, i:i + Ho, j:j + Wo] += cols[:, :, i, j]   # BUG: window p starts at p, not p * stride
        return dx
    return [(im2col.col2im, col2im)]


def _conv_output_size():
    def output_size(size, kernel, stride):
        return (size - kernel) // stride              # BUG: + 1 (the first window) forgotten
    return [(im2col.output_size, output_size)]


def _channel_scale(fn, ndim):
    """weight / sqrt(var + eps) shaped to broadcast over channels."""
    cs = (1, -1) + (1,) * (ndim - 2)
    scale = fn.invstd.reshape(cs)
    return scale if fn.weight is None else scale * fn.weight.reshape(cs)


def _bn_training_backward(edit):
    """BatchNorm with its training backward's results replaced by edit(self, g, dx, dweight,
    dbias) -> (dx, dweight, dbias), computed from the reference's."""
    class BatchNormBug(normalization.BatchNorm):
        def backward(self, g):
            grads = super().backward(g)
            return edit(self, g, *grads) if self.training else grads
    return [(normalization.BatchNorm, BatchNormBug)]


def _bn_no_stats_path():
    return _bn_training_backward(lambda self, g, dx, dw, db: (
        g * _channel_scale(self, g.ndim),                       # BUG: mean and var treated as constants
        dw, db))


def _bn_no_var_path():
    def edit(self, g, dx, dw, db):
        axes = (0,) + tuple(range(2, g.ndim))
        dx = (g - g.mean(axis=axes, keepdims=True)) * _channel_scale(self, g.ndim)   # BUG: no - xhat * mean(g xhat)
        return dx, dw, db
    return _bn_training_backward(edit)


def _bn_weight_grad_centred():
    return _bn_training_backward(lambda self, g, dx, dw, db: (
        dx, dw / self.invstd.reshape(-1),                     # BUG: sum(g (x - mean)), not sum(g xhat)
        db))


def _bn_running_var_biased():
    class BatchNormBiasedRunningVar(normalization.BatchNorm):
        def _update_running(self, mean, var, M):
            if self.running_mean is not None:
                m = self.momentum
                self.running_mean *= 1 - m
                self.running_mean += m * mean
                self.running_var *= 1 - m
                self.running_var += m * var           # BUG: PyTorch keeps the unbiased var * M / (M - 1)
    return [(normalization.BatchNorm, BatchNormBiasedRunningVar)]


def _ce_no_softmax():
    class CrossEntropyNoSoftmax(loss.CrossEntropy):
        def backward(self, g):
            xp = backend.get_array_module(g)
            N = self.logp.shape[0]
            dz = xp.zeros_like(self.logp)             # BUG: should start from softmax = exp(logp)
            dz[xp.arange(N), self.target] -= 1.0
            return dz * (g / N)
    return [(loss.CrossEntropy, CrossEntropyNoSoftmax)]


def _log_softmax_no_max():
    def log_softmax(z, axis):
        xp = backend.get_array_module(z)
        return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))   # BUG: exp(z) without z - max
    return [(loss.stable_log_softmax, log_softmax)]


def _adamw_l2():
    reference = optim.adamw_updates.__wrapped__

    def adamw_updates(entries):
        changed = []
        for p, g, m, v, hyper, group in entries:
            g = g + group["weight_decay"] * p         # BUG: decay as an L2 gradient ...
            changed.append((p, g, m, v, (1.0,) + tuple(hyper[1:]), group))   # ... not p *= 1 - lr * wd
        reference(changed)
    return [(optim.adamw_updates, adamw_updates)]


# ----- the catalogue --------------------------------------------------------------------------
_BN_PATHS = "functional/normalization.py BatchNorm.backward, training mode (every device)"
_IM2COL_DX = ("functional/im2col.py col2im: the input gradient of the im2col path (the depthwise "
              "path never calls col2im)")

BUGS = [
    Bug("sub-sign", "a - b",
        "a - b: b's gradient is +g instead of -g (the minus sign forgotten)",
        "engine/ops.py Sub.backward (every device)",
        "d(a - b)/db = -1, so b's gradient is -g. Every check that runs a - b sees it, with any "
        "upstream gradient: the error is 2|g|. The tiny ConvMixer stack never subtracts one tensor "
        "from another (BatchNorm does its subtractions on raw arrays inside one Function), so the "
        "whole-model check cannot see it: a model check covers only the ops that the model uses.",
        _sub_sign, ("ones", "op", "parity")),
    Bug("broadcast-not-summed", "broadcasting",
        "a broadcast input's gradient is not summed back to the input's shape",
        "engine/ops.py unbroadcast, called by Add, Sub, Mul, Div and MatMul (every device)",
        "An input that broadcasting stretched was used once per copy, so its gradient is the sum "
        "over the copies (walkthrough Step 4). Unsummed, it has the output's shape. gradcheck "
        "reports the shape; a training run would only fail later, when AdamW refuses a (3, 4) "
        "gradient for a (4,) weight. Every kind of gradient check sees it: even the model adds a "
        "broadcast bias in its linear layer.",
        _broadcast_not_summed, ("ones", "op", "model", "parity")),
    Bug("no-accumulation", "Tensor.backward",
        "a tensor used by several ops keeps the last gradient it gets, not their sum",
        "engine/tensor.py accumulate, called by Tensor.backward for every input of every node (every device)",
        "When several ops use one tensor, the chain rule adds their contributions: dL/dx is the sum "
        "over the uses of x. Overwriting keeps one of them. Caught wherever a tensor is used twice: "
        "x in the 'reshape transpose' check, the residual connection of the model, `a` in the "
        "PyTorch check of the tensor ops.",
        _no_accumulation, ("ones", "op", "model", "parity")),
    Bug("topo-breadth-first", "Tensor.backward",
        "backward runs breadth-first: a node may pass its gradient on too early",
        "engine/tensor.py topological_order, called by Tensor.backward (every device)",
        "A node may pass its gradient on only after every op that consumed it has contributed. "
        "Breadth-first order guarantees that only when all paths from the output to a node have "
        "the same length; a later contribution then arrives after the node was processed and is "
        "lost. The per-op checks are single ops, or graphs whose paths have equal lengths, so they "
        "pass. The model's residual connection reaches its input in one step (the skip) and in "
        "four (depthwise conv, GELU, BatchNorm, add): the gradient through the block is lost. "
        "Here the whole-model check catches what no per-op check can.",
        _topo_breadth_first, ("model", "parity")),
    Bug("gelu-no-product-rule", "gelu",
        "exact GELU's slope is Phi(x): the product rule's x * phi(x) is missing",
        "functional/activation.py GELU.forward, where the slope for backward is computed, exact form "
        "only (every device)",
        "GELU(x) = x Phi(x), so its slope is Phi(x) + x phi(x) by the product rule. The missing "
        "x phi(x) is largest at x = +-1, where it is phi(1) = 0.24. Every gradient check of exact "
        "GELU sees it; the tanh form is computed by other code and passes.",
        _gelu_no_product_rule, ("ones", "op", "model", "parity")),
    Bug("conv-weight-grad-transpose", "conv2d",
        "conv2d's weight gradient is cols^T @ dOut, reshaped as if it were dOut^T @ cols",
        "functional/conv.py Conv2dIm2col.backward: the im2col path (the depthwise path computes its "
        "own weight gradient and is unaffected)",
        "dW = dOut^T @ cols has one row per output channel. cols^T @ dOut holds the same numbers "
        "transposed; reshaping it to the weight's shape succeeds, because the sizes agree, and "
        "scrambles which number belongs to which weight: shapes that fit prove nothing. Every "
        "gradient check of the im2col path sees it; the depthwise cases pass.",
        _conv_weight_transpose, ("ones", "op", "model", "parity")),
    Bug("col2im-overwrite", "conv2d",
        "col2im writes windows' gradients back with = instead of +=: overlaps overwrite",
        _IM2COL_DX,
        "A pixel inside several windows was copied into each of them, so its gradient is the sum "
        "over those windows; with = only the last kernel tap's part survives. Windows overlap when "
        "the kernel is larger than the stride. ConvMixer's im2col convolutions never overlap: the "
        "patch embedding has kernel = stride, the pointwise convolution is 1 x 1, and the k x k "
        "convolutions are depthwise, which never call col2im. So the whole-model check passes; only "
        "the per-op checks with overlapping windows, and PyTorch parity, catch it.",
        _col2im_overwrite, ("ones", "op", "parity")),
    Bug("col2im-stride", "conv2d",
        "col2im adds window p back at row p, not p * stride (at stride 2: off by one)",
        _IM2COL_DX,
        "Window (p, q) of the forward pass starts at (p * stride, q * stride). Adding its gradient "
        "back at (p, q) is right for stride 1 only, so every stride-1 check passes. The strided "
        "checks catch it, and so does the model check, because its patch embedding has stride 2 "
        "and the check asks for the gradient of the input image too. (A check of the parameters "
        "alone, as in walkthrough Step 11, would miss it: nothing needs the image's gradient.)",
        _col2im_stride, ("ones", "op", "model", "parity")),
    Bug("conv-output-size", "conv2d",
        "conv2d counts (size - k) // stride windows, one too few: the last ones are lost",
        "functional/im2col.py output_size, called by conv.py and im2col_view: the im2col path "
        "(depthwise.py counts its own windows and is unaffected)",
        "A forward bug whose backward is still exactly right for the function it computes: a "
        "convolution that skips its last windows. Gradient checks compare backward with forward, so "
        "they all pass, and the model runs too, on smaller maps. Only PyTorch parity sees the "
        "output's shape differ.",
        _conv_output_size, ("parity",)),
    Bug("bn-no-stats-path", "batch_norm",
        "BatchNorm's training backward treats the batch mean and variance as constants",
        _BN_PATHS,
        "In training mode every output depends on every input of its channel through the mean and "
        "the variance; the two missing terms are -mean(dxhat) and -xhat * mean(dxhat * xhat). "
        "Even u = 1 sees it: sum(BN(x)) does not depend on x, so its true gradient is 0, while this "
        "backward returns weight / sqrt(var + eps) (walkthrough Exercise 9.1).",
        _bn_no_stats_path, ("ones", "op", "model", "parity")),
    Bug("bn-no-var-path", "batch_norm",
        "BatchNorm's training backward drops the path through the batch variance",
        _BN_PATHS,
        "dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps); the bug drops "
        "the last term. With u = 1, dxhat = weight is constant over a channel, so mean(dxhat * "
        "xhat) = weight * mean(xhat) = 0: the dropped term is 0 and the all-ones check passes. A "
        "random upstream gradient gives every output its own weight and catches it; so does the "
        "model, where the gradient reaching each BatchNorm is not constant.",
        _bn_no_var_path, ("op", "model", "parity")),
    Bug("bn-weight-grad-centred", "batch_norm",
        "BatchNorm's weight gradient sums g * (x - mean) instead of g * xhat",
        _BN_PATHS + "; the input's gradient stays right",
        "y = weight * xhat + bias, so dweight = sum(g * xhat) per channel; the bug is off by the "
        "factor sqrt(var + eps). With u = 1 both sums are 0 (xhat and x - mean each sum to 0 over "
        "a channel), so the all-ones check passes. The BatchNorms of the tiny ConvMixer stack have "
        "no weight, so the model check cannot see it either: two blind spots at once. The per-op "
        "check with a random upstream gradient, and PyTorch parity, catch it.",
        _bn_weight_grad_centred, ("op", "parity")),
    Bug("bn-running-var-biased", "batch_norm",
        "BatchNorm's running variance is updated with the biased variance (/ M, not M - 1)",
        "functional/normalization.py BatchNorm._update_running, in training mode (every device)",
        "The running statistics are buffers: the training-mode output does not use them, so no "
        "gradient depends on them and no gradient check can see this. PyTorch updates running_var "
        "with the unbiased variance var * M / (M - 1); the parity check compares the buffers after "
        "one forward pass. With M = 36 values per channel they differ by 1/35: in eval mode every "
        "prediction would be slightly off.",
        _bn_running_var_biased, ("parity",)),
    Bug("ce-no-softmax", "cross_entropy",
        "cross-entropy's gradient is -onehot / N: the softmax term is missing",
        "functional/loss.py CrossEntropy.backward (every device)",
        "loss = -(1/N) sum_n log softmax(z_n)[t_n], and the gradient of log softmax(z)[t] is "
        "onehot(t) - softmax(z), so dloss/dz = (softmax(z) - onehot(t)) / N. Without softmax, "
        "only the true class is pulled up; nothing pushes the others down. Every gradient check "
        "of cross-entropy sees it.",
        _ce_no_softmax, ("ones", "op", "model", "parity")),
    Bug("log-softmax-no-max", "log_softmax",
        "log-softmax as z - log(sum(exp(z))): no row maximum subtracted, so exp overflows",
        "functional/loss.py stable_log_softmax, the forward of F.log_softmax and F.cross_entropy "
        "(every device)",
        "Mathematically the same function, so every gradient check passes: their logits are of "
        "size 3. For logits near 1000, exp overflows to inf and the loss is nan. Only a check at "
        "large logits sees it: the PyTorch parity of cross_entropy at logits of about 1000. Gradient "
        "checks compare backward with forward; they cannot tell that forward itself is wrong.",
        _log_softmax_no_max, ("parity",)),
    Bug("gelu-tanh-for-exact", "gelu",
        "F.gelu computes the tanh approximation even when the exact GELU is asked for",
        "functional/activation.py GELU.forward (every device): forward and backward are both the "
        "tanh form's, so they agree",
        "The forward and the backward are both those of the tanh form, so every gradient check "
        "passes. Only a comparison with an independent implementation shows that the function "
        "is the wrong one: PyTorch's exact GELU differs by up to 4.7e-4 (walkthrough Step 6).",
        _gelu_tanh_for_exact, ("parity",)),
    Bug("adamw-l2", "AdamW",
        "AdamW's decay applied as L2: wd * p added to the gradient, not p shrunk directly",
        "optim.py adamw_updates, the update AdamW.step applies to every parameter (every device)",
        "The loss, and so every gradient, is unchanged: no check of the ops can see an optimiser "
        "bug. Added to the gradient, the decay goes through Adam's division by sqrt(v), so a weight "
        "with large gradients is barely decayed (walkthrough Step 12). The optimiser check sees it: "
        "with a zero loss gradient AdamW shrinks every weight by exactly (1 - lr * wd) per step, "
        "while this version moves each weight by about lr per step; and PyTorch's AdamW disagrees.",
        _adamw_l2, ("optim",)),
]

BY_NAME = {bug.name: bug for bug in BUGS}


def mystery(seed):
    """The bug that `--mystery seed` plants. Seeds are dealt like cards: each run of len(BUGS)
    consecutive seeds (0-16, 17-33, ...) gets every bug once, in a shuffled order, so a class
    that numbers its students gets as many different bugs as it can."""
    n = len(BUGS)
    order = np.random.default_rng([seed // n, 31337]).permutation(n)
    return BUGS[int(order[seed % n])]
