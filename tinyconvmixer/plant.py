"""Planting a bug: swap one piece of the engine for a buggy version, for a while.

The engine looks most things up by name when it runs: `Tensor.backward` calls
`fn.backward(g)`, a method of the op's Function class; `Conv2dIm2col.backward`
calls `col2im`, a name in functional/conv.py's namespace. Rebinding such a
name changes what the engine does, without touching a source file:

    from tinyconvmixer.functional import conv

    def col2im_overwrite(cols, padded_shape, stride):
        ...                                   # the buggy version

    with planted((conv, "col2im", col2im_overwrite)):
        ...                                   # every conv2d now uses the buggy col2im
    # here the original is back, even if the block raised

Two rules make this safe:

* Swap the name where it is *looked up*. conv.py did `from .im2col import col2im`,
  so it has a name `col2im` of its own; rebinding `im2col.col2im` would not
  change what conv.py calls.
* Swap only names that exist (a typo would otherwise add a new, unused
  attribute and plant nothing): `planted` refuses a name that the owner does
  not define itself.

This is what `python -m tinyconvmixer.gradcheck --inject NAME` and the
exercises (`python -m tinyconvmixer.exercises`) use; the bugs are in bugs.py.
"""

import contextlib


@contextlib.contextmanager
def planted(*swaps):
    """Rebind each (owner, name, replacement) for the duration of the `with` block.

    owner is a module or a class that defines `name` itself (a class's own
    method, not one it inherits). Every original comes back on exit, in reverse
    order, also when the block raises.
    """
    saved = []
    try:
        for owner, name, replacement in swaps:
            if name not in vars(owner):
                raise AttributeError(f"planted: {getattr(owner, '__name__', owner)!s} defines no "
                                     f"{name!r} of its own, so there is nothing to swap")
            saved.append((owner, name, vars(owner)[name]))
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
