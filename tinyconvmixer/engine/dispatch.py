"""Which code runs an op: its reference, a registered faster variant, or a stand-in.

Every op has one reference: the plain xp code in functional/ (or ops.py,
optim.py), written to be read, and the truth that everything else is tested
against. A faster variant computes the same thing for some inputs only (CPU
arrays in channels-last memory, float32 CuPy arrays, ...), so it is registered
against its reference with a test that says when it applies:

    dispatch.register(BatchNorm, BatchNormRows, when=lambda x, *rest, **s: is_rows(x))

`Function.apply` then asks `pick(BatchNorm, *arrays, **settings)`, which gives
the first registered variant whose test holds, or else the reference. Nothing
is registered until `import tinyconvmixer.fast`; the training command and the
benchmarks import it, and TINYCONVMIXER_REFERENCE=1 (or `reference_only()`)
runs everything on the references alone.

A reference can also be *stood in for* for a while, by a planted bug or by a
student's exercise: inside `with stand_in(reference, replacement):` every call
takes the replacement, whatever variants are registered. Functions (helpers
such as unbroadcast or col2im) take part when they are marked `@replaceable`;
Function classes always do.
"""

import contextlib
import functools
import os
from typing import Callable

_variants: dict = {}          # reference -> [(name, variant, when)], in the order registered
_stand_ins: dict = {}         # reference -> the replacement in force (planted bugs, exercises)
_references: set = set()      # every reference that a variant or a stand-in was given
_fast = os.environ.get("TINYCONVMIXER_REFERENCE", "0") in ("", "0")


def register(reference, variant, when: Callable[..., bool], name: str = "") -> None:
    """Make `variant` run in place of `reference` wherever when(*arrays, **settings) holds."""
    _references.add(reference)
    entries = _variants.setdefault(reference, [])
    name = name or getattr(variant, "__name__", repr(variant))
    entries[:] = [e for e in entries if e[0] != name] + [(name, variant, when)]   # once per name


def variants(reference) -> list:
    """[(name, variant)] registered for `reference`, in the order they are tried."""
    return [(name, variant) for name, variant, _ in _variants.get(reference, [])]


def pick(reference, *arrays, **settings):
    """The code that runs `reference` on these arrays: a stand-in, else the first variant
    whose test holds (when fast variants are on), else the reference itself."""
    if reference in _stand_ins:
        return _stand_ins[reference]
    if _fast:
        for _, variant, when in _variants.get(reference, ()):
            if when(*arrays, **settings):
                return variant
    return reference


def standing_in(reference):
    """The replacement standing in for `reference` now (stand_in), or None."""
    return _stand_ins.get(reference)


def reference_of(cls: type) -> type:
    """The reference op that a Function class runs for (itself, unless it is a variant or a
    stand-in subclassing one): the name to show for a node of the tape."""
    return next((c for c in cls.__mro__ if c in _references), cls)


def fast_enabled() -> bool:
    return _fast


def set_fast(flag: bool) -> bool:
    """Use the registered variants (True) or the references alone (False); returns the old value."""
    global _fast
    old, _fast = _fast, bool(flag)
    return old


@contextlib.contextmanager
def reference_only():
    """Run every op on its reference inside the block."""
    old = set_fast(False)
    try:
        yield
    finally:
        set_fast(old)


@contextlib.contextmanager
def only(reference, name: str):
    """Inside the block, `reference` runs on the variant `name` wherever its test holds, and on
    the reference elsewhere ("reference" names the reference itself): for comparing them."""
    saved = _variants.get(reference, [])
    chosen = [e for e in saved if e[0] == name]
    if name != "reference" and not chosen:
        raise KeyError(f"no variant {name!r} registered for {_describe(reference)}")
    _variants[reference] = chosen
    old = set_fast(True)
    try:
        yield
    finally:
        _variants[reference] = saved
        set_fast(old)


@contextlib.contextmanager
def stand_in(*pairs):
    """Inside the block, each (reference, replacement) of `pairs` runs the replacement.

    The reference is a Function class or a function marked @replaceable; anything
    else is refused, since nothing would ever call the replacement. Every original
    comes back on exit, also when the block raises."""
    saved = []
    try:
        for reference, replacement in pairs:
            if not (isinstance(reference, type) or hasattr(reference, "__wrapped__")
                    and getattr(reference, "replaceable", False)):
                raise TypeError(f"stand_in: {_describe(reference)} is neither a Function class nor "
                                "marked @replaceable, so nothing would call its replacement")
            saved.append((reference, _stand_ins.get(reference)))
            _references.add(reference)
            _stand_ins[reference] = replacement
        yield
    finally:
        for reference, old in reversed(saved):
            if old is None:
                _stand_ins.pop(reference, None)
            else:
                _stand_ins[reference] = old


def replaceable(fn: Callable) -> Callable:
    """Mark a helper as a part that a planted bug or an exercise may stand in for.

    The function is called as usual; inside `stand_in(fn, other)` calls go to `other`."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _stand_ins.get(call, fn)(*args, **kwargs)
    call.replaceable = True
    return call


def _describe(reference) -> str:
    return getattr(reference, "__qualname__", repr(reference))
