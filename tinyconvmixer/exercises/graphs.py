"""The direct checks of exercise 4: the student's topological order, on graphs built to find each mistake.

    a residual block    x reaches the output in one step and in four: breadth-first order fails
    random graphs       tensors used several times, constants, leaves (drawn from the seed)
    a chain of 5,000    a recursive search needs one Python call per op and stops at Python's
                        recursion limit (about 1,000): RecursionError
    a ladder            x = x * x, 60 times: every tensor is used twice, so a search without a set
                        of visited tensors walks 2^60 paths. The work is counted (every read of
                        t._fn and of fn.inputs) and stopped at 50 reads per tensor, with a reason
    a fan               one tensor used by 1,000 ops
    a leaf              backward() from a tensor that no op computed

`check_order` says which rule an order breaks: root first, each tensor once, only tensors
that need a gradient, every input of a listed op listed, and after the op that uses it.
"""

import numpy as np

from ..engine import Tensor
from .outcome import ExerciseError, Line

WORK_PER_TENSOR = 50


def _describe(t):
    fn = t.__dict__.get("_fn")
    return f"the {type(fn).__name__.replace('Counted', '')} output {tuple(t.shape)}" if fn else \
        f"a leaf {tuple(t.shape)}"


def _needed_inputs(t):
    fn = t.__dict__.get("_fn", t._fn)
    if fn is None or fn.__dict__.get("inputs") is None:
        return []
    return [p for p, need in zip(fn.__dict__["inputs"], fn.needs_grad) if need]


def check_order(order, root):
    """The order as a list; ExerciseError naming the first tensor that it puts in the wrong place."""
    try:
        order = list(order)
    except TypeError:
        raise ExerciseError(f"topological_order must return a list of tensors, not {type(order).__name__}") \
            from None
    position = {}
    for k, t in enumerate(order):
        if not isinstance(t, Tensor):
            raise ExerciseError(f"topological_order lists a {type(t).__name__} at {k}: it must list tensors")
        if id(t) in position:
            raise ExerciseError(f"topological_order lists {_describe(t)} twice (at {position[id(t)]} and {k}): "
                                "keep a set of the tensors already visited")
        position[id(t)] = k
    if not order or order[0] is not root:
        raise ExerciseError("topological_order must start with the root (the tensor backward starts from)")
    for t in order:
        if not t.requires_grad:
            raise ExerciseError(f"topological_order lists {_describe(t)}, which needs no gradient (a "
                                "constant): follow only the inputs whose needs_grad is True")
    for t in order:
        for parent in _needed_inputs(t):
            if id(parent) not in position:
                raise ExerciseError(f"topological_order misses {_describe(parent)}, an input of {_describe(t)}")
            if position[id(parent)] < position[id(t)]:
                raise ExerciseError(
                    f"topological_order puts {_describe(parent)} (at {position[id(parent)]}) before "
                    f"{_describe(t)} (at {position[id(t)]}), which uses it: its gradient would be "
                    f"passed on before that op added its part")
    return order


# ----- counting the work ------------------------------------------------------------------------

class TooMuchWork(BaseException):
    """Raised inside the student's code when it has read the graph too often (a BaseException,
    so that an `except Exception` in their code does not swallow it)."""


class _Counter:
    reads, limit, active = 0, None, False

    @classmethod
    def tick(cls):
        if cls.active:
            cls.reads += 1
            if cls.reads > cls.limit:
                cls.active = False
                raise TooMuchWork()


class _CountedTensor(Tensor):
    @property
    def _fn(self):
        _Counter.tick()
        return self.__dict__["_fn"]

    @_fn.setter
    def _fn(self, value):
        self.__dict__["_fn"] = value


_counted_classes = {}


def _counted_function_class(cls):
    if cls not in _counted_classes:
        def inputs(self):
            _Counter.tick()
            return self.__dict__.get("inputs")
        _counted_classes[cls] = type("Counted" + cls.__name__, (cls,), {"inputs": property(inputs)})
    return _counted_classes[cls]


def _reachable(root):
    seen, stack, out = {id(root)}, [root], []
    while stack:
        t = stack.pop()
        out.append(t)
        fn = t.__dict__.get("_fn")
        for p in (fn.__dict__.get("inputs") or []) if fn is not None else []:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return out


def count_reads(root):
    """Make every read of t._fn and fn.inputs in root's graph count (for _Counter); returns the
    number of tensors that need a gradient."""
    tensors = _reachable(root)
    for t in tensors:
        fn = t.__dict__.get("_fn")
        t.__class__ = _CountedTensor
        if fn is not None:
            fn.__class__ = _counted_function_class(type(fn))
    return sum(t.requires_grad for t in tensors)


# ----- the graphs --------------------------------------------------------------------------------

def _leaf(rng, n=2, grad=True):
    return Tensor(rng.standard_normal(n), requires_grad=grad)


def _chain(rng):
    x, c = _leaf(rng), Tensor(np.full(2, 1.0001))          # c: a constant, shared by every op
    for _ in range(5000):
        x = x * c
    return x


def _ladder(rng):
    x = _leaf(rng)
    for _ in range(60):
        x = x * x
    return x


def _fan(rng):
    h = _leaf(rng) * 1.0
    total = h * 0.5
    for k in range(999):
        total = total + h * float(k)
    return total


def _residual(rng):
    x = _leaf(rng)
    h = x
    for _ in range(3):
        h = (h * 0.5).exp()
    return x + h


def _random_graph(rng, n_ops=30):
    nodes = [_leaf(rng) for _ in range(int(rng.integers(2, 5)))] + [_leaf(rng, grad=False) for _ in range(2)]
    for _ in range(n_ops):
        a, b = (nodes[int(k)] for k in rng.integers(max(0, len(nodes) - 8), len(nodes), 2))
        op = int(rng.integers(0, 4))
        if op == 0:
            nodes.append(a + b)
        elif op == 1:
            nodes.append(a * b)
        elif op == 2:
            nodes.append(a - b * 0.5)
        else:
            nodes.append(-a)
    needed = [t for t in nodes if t.requires_grad]
    root = needed[-1]
    for t in needed[-6:-1]:                                  # tie the last few in: more sharing
        root = root + t
    return root


GRAPHS = [("a residual block: x + f(f(f(x)))", _residual), ("a random graph of 30 ops", _random_graph),
          ("another random graph of 30 ops", _random_graph), ("a leaf (no op at all)", lambda rng: _leaf(rng)),
          ("one tensor used by 1,000 ops", _fan), ("a chain of 5,000 ops", _chain),
          ("a ladder: x = x * x, 60 times", _ladder)]


def run(name, build, fn, rng):
    """Check the student's topological_order on one graph: a list with one Line."""
    label = f"topological_order on {name}"
    root = build(rng)
    n = count_reads(root)
    _Counter.reads, _Counter.limit, _Counter.active = 0, WORK_PER_TENSOR * n + 1000, True
    try:
        order = fn(root)
        if not isinstance(order, (list, tuple)):
            order = list(order)                                # a generator: count its work too
    except TooMuchWork:
        return [Line("order", label, status="FAIL", message=(
            f"topological_order was stopped after reading t._fn or its inputs {_Counter.limit:,} times for "
            f"{n:,} tensors: it visits tensors again and again. On this graph each tensor is used twice, so "
            "a search without a set of visited tensors walks every path, and their number doubles with every "
            "step (2^60 here). Keep a set of visited ids, and visit each tensor once"))]
    except RecursionError:
        return [Line("order", label, status="ERROR", message=(
            f"RecursionError on {name}: a recursive search needs one Python call per op, and Python stops "
            "at about 1,000 (real graphs get that deep). Walk the graph with a loop and a stack (a list) "
            "instead of recursion"))]
    finally:
        _Counter.active = False
    check_order(order, root)
    return [Line("order", label)]
