"""The real CuPy's names and signatures (cupy_api.json), and the checks made against them.

cupy_api.json is dumped from the real cupy-cuda13x wheel by dump_cupy_api.py. A name
that is not in it does not exist here either (AttributeError, as CuPy would raise),
and a call is bound to the recorded signature before anything runs, so a keyword
argument that CuPy does not take (`as_strided(x, shape, strides, writeable=False)`)
fails with CuPy's TypeError even though NumPy would accept it.
"""

import ast
import functools
import inspect
import json
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cupy_api.json")

with open(PATH) as _f:
    API = json.load(_f)
MODULES, CLASSES = API["modules"], API["classes"]
VERSION = API["cupy"]


@functools.lru_cache(maxsize=None)
def signature(text):
    """inspect.Signature of "(a, /, b=..., *args, c=..., **kw)" (None: unknown, accept anything)."""
    if text is None:
        return None
    tree = ast.parse(f"def f{text}: pass")
    a = tree.body[0].args
    P, params = inspect.Parameter, []
    n_pos = len(a.posonlyargs) + len(a.args)
    first_default = n_pos - len(a.defaults)
    for i, arg in enumerate(a.posonlyargs + a.args):
        kind = P.POSITIONAL_ONLY if i < len(a.posonlyargs) else P.POSITIONAL_OR_KEYWORD
        params.append(P(arg.arg, kind, default=None if i >= first_default else P.empty))
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append(P(arg.arg, P.KEYWORD_ONLY, default=P.empty if d is None else None))
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


def check_call(qualname, text, args, kwargs):
    """Raise TypeError, as CuPy would, when (args, kwargs) do not fit the recorded signature."""
    sig = signature(text)
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{qualname}{text}: {exc} (this is CuPy {VERSION}'s signature; NumPy's may "
                        f"differ: see tests/standin/cupy_api.json)") from None


def module_entry(module, name):
    """The recorded description of module.name, or AttributeError as CuPy would raise."""
    names = MODULES.get(module, {})
    if name not in names:
        raise AttributeError(f"module '{module}' has no attribute '{name}' (not in CuPy {VERSION}; "
                             f"the stand-in knows only what the real CuPy has)")
    return names[name]


def method_entry(cls, name):
    members = CLASSES[cls]
    if name not in members:
        raise AttributeError(f"'{cls}' object has no attribute '{name}' (not in CuPy {VERSION})")
    return members[name]
