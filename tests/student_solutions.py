"""A class's worth of student solutions: wrong in the ways students are wrong, and right in unusual ways.

WRONG: (exercise, what the mistake is, the file, a regex the checker's output must match: the
message must point at the mistake). RIGHT: (exercise, what is unusual, the file). Used by
tests/test_student_solutions.py, with PyTorch and without it; the checker never sees these
files otherwise.
"""

import textwrap


def _f(text):
    return textwrap.dedent(text).lstrip()


NP = "import numpy as np\n\n"

WRONG = [
    # ----- 1 unbroadcast ---------------------------------------------------------------------
    ("unbroadcast", "never summed back", _f("""
        def unbroadcast(grad, shape):
            return grad
        """), r"result of shape \(\d+(, \d+)*\); it must be"),
    ("unbroadcast", "stretched axes summed without keepdims", _f("""
        def unbroadcast(grad, shape):
            extra = grad.ndim - len(shape)
            if extra:
                grad = grad.sum(axis=tuple(range(extra)))
            stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
            if stretched:
                grad = grad.sum(axis=stretched)
            return grad
        """), r"size-1 axes are missing: keepdims=True keeps them"),
    ("unbroadcast", "only the prepended axes summed", _f("""
        def unbroadcast(grad, shape):
            extra = grad.ndim - len(shape)
            if extra:
                grad = grad.sum(axis=tuple(range(extra)))
            return grad
        """), r"unbroadcast\(grad \(3, 4\), shape=\(3, 1\)\).*\n.*result of shape \(3, 4\); it must be \(3, 1\)"),
    ("unbroadcast", "only one prepended axis summed", _f("""
        def unbroadcast(grad, shape):
            if grad.ndim > len(shape):
                grad = grad.sum(axis=0)
            stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
            if stretched:
                grad = grad.sum(axis=stretched, keepdims=True)
            return grad
        """), r"unbroadcast\(grad \(\d+, \d+, \d+, \d+\), shape=.*\n.*it must be"),
    ("unbroadcast", "stretched axes counted before the prepended ones go", _f("""
        def unbroadcast(grad, shape):
            extra = grad.ndim - len(shape)
            stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
            if extra:
                grad = grad.sum(axis=tuple(range(extra)))
            if stretched:
                grad = grad.sum(axis=stretched, keepdims=True)
            return grad
        """), r"unbroadcast\(grad \(1, 3, 4\), shape=\(1, 4\)\)\n\s+unbroadcast returned result of shape \(3, 4\); it must be \(1, 4\)"),
    ("unbroadcast", "returned in float32", _f("""
        import numpy as np

        def unbroadcast(grad, shape):
            extra = grad.ndim - len(shape)
            if extra:
                grad = grad.sum(axis=tuple(range(extra)))
            stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
            if stretched:
                grad = grad.sum(axis=stretched, keepdims=True)
            return np.asarray(grad, dtype=np.float32)
        """), r"returned result as float32; its inputs are float64, so it must be float64 too"),
    ("unbroadcast", "mean instead of sum", _f("""
        def unbroadcast(grad, shape):
            extra = grad.ndim - len(shape)
            if extra:
                grad = grad.mean(axis=tuple(range(extra)))
            stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
            if stretched:
                grad = grad.mean(axis=stretched, keepdims=True)
            return grad
        """), r"result\[.*\][^\n]*: expected .*, yours .*; \d+ of \d+ values differ"),
    ("unbroadcast", "the engine's own answer imported", _f("""
        from tinyconvmixer.engine.ops import unbroadcast
        """), r"refused: ex01_unbroadcast.py, line 1: imports unbroadcast from tinyconvmixer.engine.ops, the "
              r"engine's own code"),
    ("unbroadcast", "the engine's module imported under an alias", _f("""
        import tinyconvmixer.engine.ops as o

        def unbroadcast(grad, shape):
            return o.unbroadcast(grad, shape)
        """), r"refused: .*imports tinyconvmixer.engine.ops, the engine's own code"),
    ("unbroadcast", "the engine fetched by name", _f("""
        import sys

        def unbroadcast(grad, shape):
            return getattr(sys.modules["tinyconvmixer.engine.ops"], "unbroadcast")(grad, shape)
        """), r"refused: ex01_unbroadcast.py, line 4: reads modules"),
    ("unbroadcast", "the engine fetched with importlib", _f("""
        import importlib

        def unbroadcast(grad, shape):
            ops = importlib.import_module("tinyconvmixer." + "engine.ops")
            return ops.unbroadcast(grad, shape)
        """), r"refused: .*uses importlib"),
    # ----- 2 matmul ----------------------------------------------------------------------------
    ("matmul", "ga guessed from the shapes: g @ b", _f("""
        def matmul_backward(a, b, g):
            return g @ b, a.T @ g
        """), r"matmul_backward\(a \(3, 3\), b \(3, 3\), g \(3, 3\)\)\n\s+ga\[.*\][^\n]*: expected"),
    ("matmul", "gb transposed: g.T @ a", _f("""
        def matmul_backward(a, b, g):
            return g @ b.T, g.T @ a
        """), r"returned gb of shape \(2, 4\); it must be \(4, 2\) \(transposed\?\)"),
    ("matmul", "gb = a @ g", _f("""
        def matmul_backward(a, b, g):
            return g @ b.T, a @ g
        """), r"gb"),
    ("matmul", "the gradients swapped", _f("""
        def matmul_backward(a, b, g):
            return a.T @ g, g @ b.T
        """), r"returned ga of shape"),
    ("matmul", "float32 result", _f("""
        def matmul_backward(a, b, g):
            return (g @ b.T).astype("float32"), (a.T @ g).astype("float32")
        """), r"returned ga as float32"),
    ("matmul", "a tuple of one", _f("""
        def matmul_backward(a, b, g):
            return [g @ b.T]
        """), r"must return a tuple \(ga, gb\); it returned a list of 1"),
    # ----- 3 sum_mean --------------------------------------------------------------------------
    ("sum_mean", "mean ignores keepdims", _f("""
        import math
        from tinyconvmixer.engine import backend

        def _axes(shape, axis):
            if axis is None:
                return tuple(range(len(shape)))
            axes = (axis,) if isinstance(axis, int) else axis
            return tuple(sorted(a % len(shape) for a in axes))

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            if not keepdims:
                g = xp.expand_dims(g, _axes(shape, axis))
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            n = math.prod(shape[a] for a in _axes(shape, axis))
            return xp.broadcast_to(xp.expand_dims(g, _axes(shape, axis)), shape) / n
        """), r"mean_backward\(g \([\d, ]+\), shape=.*keepdims=True\)\n\s+line \d+ of ex03_sum_mean.py .*ValueError"),
    ("sum_mean", "mean divides by every element, not those reduced", _f("""
        import math
        from tinyconvmixer.engine import backend

        def _axes(shape, axis):
            if axis is None:
                return tuple(range(len(shape)))
            axes = (axis,) if isinstance(axis, int) else axis
            return tuple(sorted(a % len(shape) for a in axes))

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            if not keepdims:
                g = xp.expand_dims(g, _axes(shape, axis))
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            return sum_backward(g, shape, axis, keepdims) / math.prod(shape)
        """), r"mean_backward\(g .*axis=[^N].*\n\s+dx\[.*\][^\n]*: expected .*yours is 1/\d+ of the expected"),
    ("sum_mean", "mean divides by shape[axis] only", _f("""
        from tinyconvmixer.engine import backend

        def _axes(shape, axis):
            if axis is None:
                return tuple(range(len(shape)))
            axes = (axis,) if isinstance(axis, int) else axis
            return tuple(sorted(a % len(shape) for a in axes))

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            if not keepdims:
                g = xp.expand_dims(g, _axes(shape, axis))
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            n = shape[axis] if isinstance(axis, int) else shape[0]
            return sum_backward(g, shape, axis, keepdims) / n
        """), r"mean_backward\(g .*\n\s+dx\[.*\][^\n]*: expected"),
    ("sum_mean", "axis=None not handled", _f("""
        from tinyconvmixer.engine import backend

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            if not keepdims:
                g = xp.expand_dims(g, axis)
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            n = 1
            for a in ((axis,) if isinstance(axis, int) else axis):
                n *= shape[a]
            return sum_backward(g, shape, axis, keepdims) / n
        """), r"sum_backward\(g \(\), shape=\(3, 4\), axis=None, keepdims=False\)\n\s+line \d+ of ex03_sum_mean.py"),
    ("sum_mean", "g broadcast without its axes put back", _f("""
        import math
        from tinyconvmixer.engine import backend

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            n = math.prod(shape) // max(g.size, 1)
            return xp.broadcast_to(g, shape) / n
        """), r"sum_backward\(g \(3,\), shape=\(3, 3\), axis=1, keepdims=False\)\n\s+dx\[.*\][^\n]*: expected"),
    ("sum_mean", "mean multiplies by n", _f("""
        import math
        from tinyconvmixer.engine import backend

        def _axes(shape, axis):
            if axis is None:
                return tuple(range(len(shape)))
            axes = (axis,) if isinstance(axis, int) else axis
            return tuple(sorted(a % len(shape) for a in axes))

        def sum_backward(g, shape, axis, keepdims):
            xp = backend.get_array_module(g)
            if not keepdims:
                g = xp.expand_dims(g, _axes(shape, axis))
            return xp.broadcast_to(g, shape)

        def mean_backward(g, shape, axis, keepdims):
            return sum_backward(g, shape, axis, keepdims) * math.prod(shape[a] for a in _axes(shape, axis))
        """), r"yours is \d+ x the expected everywhere"),
    ("sum_mean", "sum returns g without broadcasting", _f("""
        import math

        def sum_backward(g, shape, axis, keepdims):
            return g

        def mean_backward(g, shape, axis, keepdims):
            return g / (math.prod(shape) // max(g.size, 1))
        """), r"returned dx of shape"),
    # ----- 4 topological_order -----------------------------------------------------------------
    ("topological_order", "breadth-first", _f("""
        def topological_order(root):
            order, seen, queue = [], {id(root)}, [root]
            while queue:
                t = queue.pop(0)
                order.append(t)
                if t._fn is not None:
                    for parent, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need and id(parent) not in seen:
                            seen.add(id(parent))
                            queue.append(parent)
            return order
        """), r"topological_order puts the \w+ output .* before the \w+ output .*which uses it"),
    ("topological_order", "post-order not reversed", _f("""
        def topological_order(root):
            order, visited, stack = [], set(), [(root, False)]
            while stack:
                t, done = stack.pop()
                if done:
                    order.append(t)
                    continue
                if id(t) in visited:
                    continue
                visited.add(id(t))
                stack.append((t, True))
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need and id(p) not in visited:
                            stack.append((p, False))
            return order
        """), r"topological_order must start with the root"),
    ("topological_order", "no visited set (exponential)", _f("""
        def topological_order(root):
            order = []
            def visit(t):
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need:
                            visit(p)
                if t not in order:
                    order.append(t)
            visit(root)
            return order[::-1]
        """), r"topological_order was stopped after reading t._fn or its inputs [\d,]+ times"),
    ("topological_order", "recursive (a chain of 5,000 ops)", _f("""
        def topological_order(root):
            post, visited = [], set()
            def visit(t):
                if id(t) in visited:
                    return
                visited.add(id(t))
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need:
                            visit(p)
                post.append(t)
            visit(root)
            return post[::-1]
        """), r"RecursionError on a chain of 5,000 ops: a recursive search needs one Python call per op"),
    ("topological_order", "constants followed too", _f("""
        def topological_order(root):
            order, visited, stack = [], set(), [(root, False)]
            while stack:
                t, done = stack.pop()
                if done:
                    order.append(t)
                    continue
                if id(t) in visited:
                    continue
                visited.add(id(t))
                stack.append((t, True))
                if t._fn is not None:
                    for p in t._fn.inputs:
                        if id(p) not in visited:
                            stack.append((p, False))
            return order[::-1]
        """), r"needs no gradient \(a constant\): follow only the inputs whose needs_grad is True"),
    ("topological_order", "leaves left out", _f("""
        def topological_order(root):
            order, visited, stack = [], set(), [(root, False)]
            while stack:
                t, done = stack.pop()
                if done:
                    if t._fn is not None:
                        order.append(t)
                    continue
                if id(t) in visited:
                    continue
                visited.add(id(t))
                stack.append((t, True))
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need and id(p) not in visited:
                            stack.append((p, False))
            return order[::-1]
        """), r"topological_order misses a leaf"),
    ("topological_order", "duplicates: visited marked too late", _f("""
        def topological_order(root):
            order, visited, stack = [], set(), [(root, False)]
            while stack:
                t, done = stack.pop()
                if done:
                    order.append(t)
                    visited.add(id(t))
                    continue
                stack.append((t, True))
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need and id(p) not in visited:
                            stack.append((p, False))
            return order[::-1]
        """), r"(lists .* twice|was stopped after reading)"),
    ("topological_order", "an endless loop", _f("""
        def topological_order(root):
            stack = [root]
            order = []
            while stack:
                t = stack[-1]
                if t not in order:
                    order.append(t)
            return order
        """), r"timed out after \d+ s and was stopped: an endless loop\?"),
    ("topological_order", "the engine's order imported", _f("""
        from tinyconvmixer.engine.tensor import topological_order
        """), r"refused: .*imports topological_order from tinyconvmixer.engine.tensor"),
    ("topological_order", "the engine's order through __globals__", _f("""
        def topological_order(root):
            return root.backward.__globals__["topological_order"](root)
        """), r"refused: .*reads __globals__"),
    # ----- 5 gelu_slope ------------------------------------------------------------------------
    ("gelu_slope", "no product rule: Phi(x)", _f("""
        from tinyconvmixer.functional.activation import normal_cdf

        def gelu_slope(x):
            return normal_cdf(x)
        """), r"the slope\[.*\] \(x = .*\): expected .*, yours"),
    ("gelu_slope", "x phi(x) only", _f("""
        import math
        from tinyconvmixer.engine import backend

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            return x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        """), r"the slope\[.*\][^\n]*: expected"),
    ("gelu_slope", "pdf without 1/sqrt(2 pi)", _f("""
        from tinyconvmixer.engine import backend
        from tinyconvmixer.functional.activation import normal_cdf

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            return normal_cdf(x) + x * xp.exp(-0.5 * x * x)
        """), r"the slope\[.*\][^\n]*: expected"),
    ("gelu_slope", "pdf exp(-x^2) instead of exp(-x^2/2)", _f("""
        import math
        from tinyconvmixer.engine import backend
        from tinyconvmixer.functional.activation import normal_cdf

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            return normal_cdf(x) + x * xp.exp(-x * x) / math.sqrt(2 * math.pi)
        """), r"the slope\[.*\][^\n]*: expected"),
    ("gelu_slope", "the tanh approximation's slope", _f("""
        import math
        from tinyconvmixer.engine import backend

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            c = math.sqrt(2 / math.pi)
            t = xp.tanh(c * (x + 0.044715 * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        """), r"the slope\[.*\][^\n]*: expected"),
    ("gelu_slope", "minus x phi(x)", _f("""
        import math
        from tinyconvmixer.engine import backend
        from tinyconvmixer.functional.activation import normal_cdf

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            return normal_cdf(x) - x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        """), r"the slope\[.*\][^\n]*: expected"),
    ("gelu_slope", "float32 result", _f("""
        import math
        from tinyconvmixer.engine import backend
        from tinyconvmixer.functional.activation import normal_cdf

        def gelu_slope(x):
            xp = backend.get_array_module(x)
            s = normal_cdf(x) + x * xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            return s.astype(xp.float32)
        """), r"returned the slope as float32"),
    ("gelu_slope", "the engine's GELU borrowed", _f("""
        from tinyconvmixer.functional.activation import GELU

        def gelu_slope(x):
            fn = GELU(approximate="none")
            fn.forward(x)
            return fn.slope
        """), r"refused: .*imports GELU from tinyconvmixer.functional.activation"),
    # ----- 6 col2im ----------------------------------------------------------------------------
    ("col2im", "= instead of +=", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.zeros(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] = cols[:, :, i, j]
            return dx
        """), r"dx_padded\[.*\] \(a pixel in \d+ windows\): expected"),
    ("col2im", "the stride ignored", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            dx = xp.zeros(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + Ho, j:j + Wo] += cols[:, :, i, j]
            return dx
        """), r"col2im\(cols .*stride=\((\d, [2-9]|[2-9], \d)\)\)\n\s+dx_padded\[.*\]"),
    ("col2im", "the row stride used for the columns", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.zeros(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sh * (Wo - 1) + 1:sh] += cols[:, :, i, j]
            return dx
        """), r"col2im\(cols .*stride=\(1, 2\)\)\n\s+(dx_padded\[|line \d+ of ex06_col2im.py)"),
    ("col2im", "the kernel taps transposed", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.zeros(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += cols[:, :, j % kh, i % kw]
            return dx
        """), r"dx_padded\[.*\][^\n]*: expected"),
    ("col2im", "not started from zeros", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.ones(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
            return dx
        """), r"dx_padded\[.*\][^\n]*: expected"),
    ("col2im", "the last window of each row left out", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.zeros(padded_shape, dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1):sh, j:j + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j, :-1]
            return dx
        """), r"col2im\(cols .*\n\s+(dx_padded\[|line \d+ of ex06_col2im.py)"),
    ("col2im", "an integer array to add into", _f("""
        from tinyconvmixer.engine import backend

        def col2im(cols, padded_shape, stride):
            xp = backend.get_array_module(cols)
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = xp.zeros(padded_shape, dtype=int)
            for i in range(kh):
                for j in range(kw):
                    dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
            return dx
        """), r"(Cannot cast ufunc|returned dx_padded as int64)"),
    # ----- 7 batchnorm -------------------------------------------------------------------------
    ("batchnorm", "the path through the variance dropped", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dbias = g.sum(axis=axes)
            dweight = (g * xhat).sum(axis=axes)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=axes, keepdims=True))
            return dx, dweight, dbias
        """), r"batchnorm_backward\(g .*\n\s+dx\[.*\][^\n]*: expected"),
    ("batchnorm", "the path through the mean dropped", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dbias = g.sum(axis=axes)
            dweight = (g * xhat).sum(axis=axes)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, dweight, dbias
        """), r"dx\[.*\][^\n]*: expected"),
    ("batchnorm", "the eval-mode formula", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            return dxhat * invstd.reshape(cs), (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """), r"dx\[.*\][^\n]*: expected"),
    ("batchnorm", "g multiplied by the weight in place", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dbias = g.sum(axis=axes)
            dweight = (g * xhat).sum(axis=axes)
            if weight is not None:
                g *= weight.reshape(cs)
            dx = invstd.reshape(cs) * (g - g.mean(axis=axes, keepdims=True)
                                       - xhat * (g * xhat).mean(axis=axes, keepdims=True))
            return dx, dweight, dbias
        """), r"batchnorm_backward writes into g, an input"),
    ("batchnorm", "dweight and dbias swapped", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                       - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, g.sum(axis=axes), (g * xhat).sum(axis=axes)
        """), r"dweight\[.*\][^\n]*: expected"),
    ("batchnorm", "the axes of a 4-D batch only", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0, 2, 3)
            cs = (1, -1, 1, 1)
            dbias = g.sum(axis=axes)
            dweight = (g * xhat).sum(axis=axes)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                       - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, dweight, dbias
        """), r"batchnorm_backward\(g \(6, 3\).*\n\s+line \d+ of ex07_batchnorm.py"),
    ("batchnorm", "a missing weight not handled", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                       - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """), r"weight None\)\n\s+line \d+ of ex07_batchnorm.py \(dxhat = g \* weight.reshape\(cs\)\): AttributeError"),
    ("batchnorm", "the mean over the batch axis only", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=0, keepdims=True)
                                       - xhat * (dxhat * xhat).mean(axis=0, keepdims=True))
            return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """), r"batchnorm_backward\(g \(\d, \d, \d, \d\).*\n\s+dx\[.*\][^\n]*: expected"),
    ("batchnorm", "dweight kept as (1, C, 1, 1)", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                       - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, (g * xhat).sum(axis=axes, keepdims=True), g.sum(axis=axes, keepdims=True)
        """), r"returned dweight of shape \(1, \d+, 1, 1\); it must be \(\d+,\) \(extra size-1 axes\)"),
    ("batchnorm", "sums instead of means", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = invstd.reshape(cs) * (dxhat - dxhat.sum(axis=axes, keepdims=True)
                                       - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
            return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """), r"dx\[.*\][^\n]*: expected"),
    ("batchnorm", "invstd forgotten", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            dxhat = g if weight is None else g * weight.reshape(cs)
            dx = (dxhat - dxhat.mean(axis=axes, keepdims=True)
                  - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
            return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """), r"dx\[.*\][^\n]*: expected"),
    # ----- 8 log_softmax -----------------------------------------------------------------------
    ("log_softmax", "the sum of g missing", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return g - xp.exp(y)
        """), r"dz\[.*\] \(g = .*, y = .*\): expected"),
    ("log_softmax", "softmax times g, not its sum", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return g - xp.exp(y) * g
        """), r"dz\[.*\][^\n]*: expected"),
    ("log_softmax", "exp forgotten", _f("""
        def log_softmax_backward(g, y, axis):
            return g - y * g.sum(axis=axis, keepdims=True)
        """), r"dz\[.*\][^\n]*: expected"),
    ("log_softmax", "the last axis always", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return g - xp.exp(y) * g.sum(axis=-1, keepdims=True)
        """), r"log_softmax_backward\(g .*axis=0\)\n\s+dz\[.*\][^\n]*: expected"),
    ("log_softmax", "keepdims forgotten", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return g - xp.exp(y) * g.sum(axis=axis)
        """), r"log_softmax_backward\(g .*\n\s+(dz\[.*\][^\n]*: expected|line \d+ of ex08_log_softmax.py)"),
    ("log_softmax", "g changed in place", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            g -= xp.exp(y) * g.sum(axis=axis, keepdims=True)
            return g
        """), r"log_softmax_backward writes into g, an input: the caller still uses it"),
    ("log_softmax", "the sign flipped", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return xp.exp(y) * g.sum(axis=axis, keepdims=True) - g
        """), r"yours is minus the expected everywhere: a sign\?"),
    ("log_softmax", "float32 result", _f("""
        from tinyconvmixer.engine import backend

        def log_softmax_backward(g, y, axis):
            xp = backend.get_array_module(g)
            return (g - xp.exp(y) * g.sum(axis=axis, keepdims=True)).astype(xp.float32)
        """), r"returned dz as float32"),
    # ----- 9 cross_entropy ---------------------------------------------------------------------
    ("cross_entropy", "no softmax: -onehot / N", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.zeros_like(logp)
            dz[xp.arange(N), target] -= 1.0
            return dz * (g / N)
        """), r"dz\[.*\] \(logp = .*, row \d+, class \d+: the target is \d+\): expected"),
    ("cross_entropy", "the 1/N forgotten", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp)
            dz[xp.arange(N), target] -= 1.0
            return dz * g
        """), r"yours is \d x the expected everywhere: a factor 1/\d missing\?"),
    ("cross_entropy", "g forgotten", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp)
            dz[xp.arange(N), target] -= 1.0
            return dz / N
        """), r"cross_entropy_backward\(logp .*g = (0.37|2.5|-1.3|0.8)\)\n\s+dz\[.*\][^\n]*: expected"),
    ("cross_entropy", "the one-hot added, not subtracted", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp)
            dz[xp.arange(N), target] += 1.0
            return dz * (g / N)
        """), r"dz\[.*\] \(.*the target\): expected"),
    ("cross_entropy", "the targets' whole columns", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp)
            dz[:, target] -= 1.0
            return dz * (g / N)
        """), r"dz\[.*\][^\n]*: expected"),
    ("cross_entropy", "softmax computed into logp", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp, out=logp)
            dz[xp.arange(N), target] -= 1.0
            return dz * (g / N)
        """), r"cross_entropy_backward writes into logp, an input"),
    ("cross_entropy", "divided by the classes, not the rows", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N, K = logp.shape
            dz = xp.exp(logp)
            dz[xp.arange(N), target] -= 1.0
            return dz * (g / K)
        """), r"dz\[.*\][^\n]*: expected"),
    ("cross_entropy", "float32 result", _f("""
        from tinyconvmixer.engine import backend

        def cross_entropy_backward(logp, target, g):
            xp = backend.get_array_module(logp)
            N = logp.shape[0]
            dz = xp.exp(logp)
            dz[xp.arange(N), target] -= 1.0
            return (dz * (g / N)).astype(xp.float32)
        """), r"returned dz as float32"),
    ("cross_entropy", "PyTorch does the work", _f("""
        import torch

        def cross_entropy_backward(logp, target, g):
            z = torch.tensor(logp, requires_grad=True)
            torch.nn.functional.nll_loss(z, torch.tensor(target)).backward()
            return (z.grad * float(g)).numpy()
        """), r"refused: .*imports torch, which computes gradients for you"),
]

RIGHT = [
    ("unbroadcast", "a loop over the axes, keepdims, then a reshape", _f("""
        def unbroadcast(grad, shape):
            while grad.ndim > len(shape):
                grad = grad.sum(axis=0)
            for i, n in enumerate(shape):
                if n == 1 and grad.shape[i] != 1:
                    grad = grad.sum(axis=i, keepdims=True)
            return grad.reshape(shape)
        """)),
    ("unbroadcast", "np.sum with axes and a final reshape", _f("""
        import numpy as np

        def unbroadcast(grad, shape):
            lead = grad.ndim - len(shape)
            axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1)
            return np.sum(grad, axis=axes).reshape(shape) if axes else grad
        """)),
    ("matmul", "np.einsum", _f("""
        import numpy as np

        def matmul_backward(a, b, g):
            return np.einsum("ij,kj->ik", g, b), np.einsum("ip,ij->pj", a, g)
        """)),
    ("matmul", "np.dot and transposes", _f("""
        import numpy as np

        def matmul_backward(a, b, g):
            return np.dot(b, g.T).T, np.dot(g.T, a).T
        """)),
    ("sum_mean", "np.ones times g, n from the sizes", _f("""
        import numpy as np

        def sum_backward(g, shape, axis, keepdims):
            if axis is None:
                axes = tuple(range(len(shape)))
            elif isinstance(axis, int):
                axes = (axis % len(shape),)
            else:
                axes = tuple(sorted(a % len(shape) for a in axis))
            if not keepdims:
                for a in axes:
                    g = np.expand_dims(g, a)
            return g * np.ones(shape, dtype=g.dtype)

        def mean_backward(g, shape, axis, keepdims):
            n = int(np.prod(shape)) // max(int(np.size(g)), 1)
            return sum_backward(g, shape, axis, keepdims) / n
        """)),
    ("sum_mean", "reshape to the kept shape, then broadcast (a copy)", _f("""
        import numpy as np

        def sum_backward(g, shape, axis, keepdims):
            axes = range(len(shape)) if axis is None else [axis] if isinstance(axis, int) else axis
            axes = {a % len(shape) for a in axes}
            kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
            return np.broadcast_to(np.reshape(g, kept), shape).copy()

        def mean_backward(g, shape, axis, keepdims):
            out = sum_backward(g, shape, axis, keepdims)
            return out * (np.size(g) / out.size)
        """)),
    ("topological_order", "Kahn's algorithm", _f("""
        def topological_order(root):
            def parents(t):
                if t._fn is None:
                    return []
                return [p for p, need in zip(t._fn.inputs, t._fn.needs_grad) if need]
            users, seen, stack = {}, {id(root): root}, [root]
            while stack:
                t = stack.pop()
                for p in parents(t):
                    users[id(p)] = users.get(id(p), 0) + 1
                    if id(p) not in seen:
                        seen[id(p)] = p
                        stack.append(p)
            order, ready = [], [root]
            while ready:
                t = ready.pop()
                order.append(t)
                for p in parents(t):
                    users[id(p)] -= 1
                    if users[id(p)] == 0:
                        ready.append(p)
            return order
        """)),
    ("topological_order", "recursion with a raised limit, a generator", _f("""
        import sys

        sys.setrecursionlimit(100_000)

        def topological_order(root):
            post, visited = [], set()

            def visit(t):
                visited.add(id(t))
                if t._fn is not None:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need and id(p) not in visited:
                            visit(p)
                post.append(t)
            visit(root)
            yield from reversed(post)
        """)),
    ("topological_order", "a list used as the visited set (quadratic, but bounded)", _f("""
        def topological_order(root):
            order, done, stack = [], [], [(root, False)]
            while stack:
                t, inputs_done = stack.pop()
                if inputs_done:
                    order.append(t)
                    continue
                if any(t is d for d in done):
                    continue
                done.append(t)
                stack.append((t, True))
                if not t.is_leaf:
                    for p, need in zip(t._fn.inputs, t._fn.needs_grad):
                        if need:
                            stack.append((p, False))
            return order[::-1]
        """)),
    ("gelu_slope", "scipy.stats.norm", _f("""
        from scipy.stats import norm

        def gelu_slope(x):
            return norm.cdf(x) + x * norm.pdf(x)
        """)),
    ("gelu_slope", "math.erf elementwise, np.vectorize", _f("""
        import math
        import numpy as np

        def _one(v):
            return 0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)

        def gelu_slope(x):
            return np.vectorize(_one, otypes=[x.dtype])(x)
        """)),
    ("gelu_slope", "np.sqrt(2 np.pi), which makes float32 float64", _f("""
        import numpy as np
        from scipy.special import erfc

        def gelu_slope(x):
            return 0.5 * erfc(-x / np.sqrt(2)) + x * np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)
        """)),
    ("col2im", "np.add.at over the windows", _f("""
        import numpy as np

        def col2im(cols, padded_shape, stride):
            N, C, kh, kw, Ho, Wo = cols.shape
            dx = np.zeros(padded_shape)
            rows = stride[0] * np.arange(Ho)[None, :] + np.arange(kh)[:, None]
            columns = stride[1] * np.arange(Wo)[None, :] + np.arange(kw)[:, None]
            for i in range(kh):
                for j in range(kw):
                    np.add.at(dx, (slice(None), slice(None), rows[i][:, None], columns[j][None, :]),
                              cols[:, :, i, j])
            return dx
        """)),
    ("col2im", "a loop over the output pixels", _f("""
        import numpy as np

        def col2im(cols, padded_shape, stride):
            N, C, kh, kw, Ho, Wo = cols.shape
            sh, sw = stride
            dx = np.zeros(padded_shape, dtype=cols.dtype)
            for p in range(Ho):
                for q in range(Wo):
                    dx[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += cols[:, :, :, :, p, q]
            return dx
        """)),
    ("batchnorm", "node by node through the variance and the mean", _f("""
        def batchnorm_backward(g, xhat, invstd, weight):
            axes = (0,) + tuple(range(2, g.ndim))
            cs = (1, -1) + (1,) * (g.ndim - 2)
            M = g.size // g.shape[1]
            r = invstd.reshape(cs)
            d = xhat / r
            dxhat = g if weight is None else g * weight.reshape(cs)
            dr = (dxhat * d).sum(axis=axes, keepdims=True)
            dv = dr * (-0.5 * r ** 3)
            dd = dxhat * r + dv * 2 * d / M
            dmu = -dd.sum(axis=axes, keepdims=True)
            dx = dd + dmu / M
            return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)
        """)),
    ("batchnorm", "channels moved last and flattened to rows", _f("""
        import numpy as np

        def batchnorm_backward(g, xhat, invstd, weight):
            C = g.shape[1]
            order = (0,) + tuple(range(2, g.ndim)) + (1,)
            back = np.argsort(order)
            G = np.moveaxis(g, 1, -1).reshape(-1, C)
            X = np.moveaxis(xhat, 1, -1).reshape(-1, C)
            w = np.ones(C) if weight is None else weight
            D = G * w
            dX = invstd * (D - D.mean(0) - X * (D * X).mean(0))
            dx = dX.reshape([g.shape[i] for i in order]).transpose(back)
            return dx, (G * X).sum(0), G.sum(0)
        """)),
    ("log_softmax", "softmax recomputed from y", _f("""
        import numpy as np

        def log_softmax_backward(g, y, axis):
            p = np.exp(y)
            p = p / p.sum(axis=axis, keepdims=True)
            return g - p * np.sum(g, axis=axis, keepdims=True)
        """)),
    ("cross_entropy", "np.eye for the one-hot, g.item()", _f("""
        import numpy as np

        def cross_entropy_backward(logp, target, g):
            N, K = logp.shape
            onehot = np.eye(K)[target]
            return (np.exp(logp) - onehot) * (g.item() / N)
        """)),
    ("cross_entropy", "a loop over the rows", _f("""
        import numpy as np

        def cross_entropy_backward(logp, target, g):
            dz = np.exp(logp)
            for n in range(len(target)):
                dz[n, target[n]] -= 1
            return dz * g / len(target)
        """)),
]
