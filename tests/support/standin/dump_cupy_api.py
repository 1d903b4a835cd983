"""Write cupy_api.json: the names and signatures of the real CuPy, for the stand-in to enforce.

Run it where the real CuPy wheel is installed (it imports without a GPU):

    python -m venv /tmp/cupyenv && /tmp/cupyenv/bin/pip install cupy-cuda13x==14.2.0
    /tmp/cupyenv/bin/python tests/standin/dump_cupy_api.py > tests/standin/cupy_api.json

What it records, for each module the stand-in models (cupy, its submodules the project
may reach, cupyx) and for the classes it models (cupy.ndarray, Device, MemoryPool, ...):
every public name, its kind (function, ufunc, class, module, constant) and, for
callables, the signature as Python text with every default written `...`:
"(a, dtype=..., order=..., *, copy=..., blocking=...)". Compiled (Cython) functions
carry their signature in the first line of their docstring; it is parsed from there.
A ufunc whose docstring has none gets NumPy's form for its number of inputs:
"(x1, x2, /, out=..., *, casting=..., dtype=...)". A signature that cannot be read
is recorded as null: the stand-in then accepts any arguments for that name.
"""

import ast
import inspect
import json
import os
import re
import sys

# This folder holds the stand-in's own `cupy` and `cupyx`: never let them answer for the real ones.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import cupy  # noqa: E402
import cupyx  # noqa: E402
import cupyx.scipy.special  # noqa: E402
import numpy  # noqa: E402

MODULES = ["cupy", "cupy.lib", "cupy.lib.stride_tricks", "cupy.linalg", "cupy.random", "cupy.fft",
           "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.memory", "cupy.cuda.stream",
           "cupyx", "cupyx.scipy", "cupyx.scipy.special"]
CLASSES = ["cupy.ndarray", "cupy.cuda.Device", "cupy.cuda.MemoryPool", "cupy.cuda.PinnedMemoryPool",
           "cupy.cuda.MemoryPointer", "cupy.cuda.Stream", "cupy.cuda.Event", "cupy.RawModule",
           "cupy.RawKernel", "cupy._core.flags.Flags", "cupy.ufunc"]
KINDS = {inspect.Parameter.POSITIONAL_ONLY: "positional", inspect.Parameter.POSITIONAL_OR_KEYWORD: "either",
         inspect.Parameter.VAR_POSITIONAL: "*args", inspect.Parameter.KEYWORD_ONLY: "keyword",
         inspect.Parameter.VAR_KEYWORD: "**kwargs"}


def resolve(dotted):
    obj = sys.modules.get(dotted)
    if obj is not None:
        return obj
    head, _, tail = dotted.rpartition(".")
    return getattr(resolve(head), tail)


def split_params(text):
    """Split a parameter list at top-level commas (defaults may hold brackets and strings)."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def parse_doc_signature(obj):
    """Parameters from a Cython docstring's first line: `name(str a, b=None, \\*, c=0) -> T`."""
    lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    if not lines:
        return None
    match = re.match(r"^[\w.]*\((.*)\)\s*(->.*)?$", lines[0].strip())
    if not match:
        return None
    cleaned = []
    for p in split_params(match.group(1).replace("\\*", "*")):
        name, eq, default = p.partition("=")
        words = name.split()
        if len(words) == 2:                      # a Cython type before the name: "str code"
            name = words[1]
        cleaned.append(name.strip() + (eq + default if eq else ""))
    try:
        tree = ast.parse(f"def f({', '.join(cleaned)}): pass")
    except SyntaxError:
        return None
    args = tree.body[0].args
    params = []
    n_pos = len(args.posonlyargs) + len(args.args)
    first_default = n_pos - len(args.defaults)
    for i, a in enumerate(args.posonlyargs + args.args):
        params.append([a.arg, "positional" if i < len(args.posonlyargs) else "either", i >= first_default])
    if args.vararg:
        params.append([args.vararg.arg, "*args", False])
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        params.append([a.arg, "keyword", d is not None])
    if args.kwarg:
        params.append([args.kwarg.arg, "**kwargs", False])
    return params


def parameters(obj, drop_self=False):
    try:
        sig = inspect.signature(obj)
        params = [[p.name, KINDS[p.kind], p.default is not inspect.Parameter.empty]
                  for p in sig.parameters.values()]
    except (TypeError, ValueError):
        params = parse_doc_signature(obj)
    if params and drop_self and params[0][0] in ("self", "cls"):
        params = params[1:]
    return signature_text(params)


def signature_text(params):
    """[[name, kind, has_default], ...] as "(a, /, b=..., *args, c=..., **kw)" (None stays None)."""
    if params is None:
        return None
    out, kinds = [], [k for _, k, _ in params]
    for i, (name, kind, has_default) in enumerate(params):
        if kind == "keyword" and "*args" not in kinds and "*" not in out:
            out.append("*")
        out.append({"*args": "*", "**kwargs": "**"}.get(kind, "") + name + ("=..." if has_default else ""))
        if kind == "positional" and (i + 1 == len(params) or params[i + 1][1] != "positional"):
            out.append("/")
    return "(" + ", ".join(out) + ")"


def ufunc_parameters(uf):
    """A ufunc's parameters: from its docstring where it has them, else NumPy's form."""
    text = parameters(uf)
    if text is None:
        inputs = ["x"] if uf.nin == 1 else [f"x{i + 1}" for i in range(uf.nin)]
        text = "(" + ", ".join(inputs) + ", /, out=..., *, casting=..., dtype=...)"
    return text


def describe(obj):
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if isinstance(obj, cupy.ufunc):
        return {"kind": "ufunc", "nin": obj.nin, "nout": obj.nout, "params": ufunc_parameters(obj)}
    if isinstance(obj, type):
        numpy_type = isinstance(obj, type) and obj.__module__.startswith("numpy")
        return {"kind": "numpy type" if numpy_type else "class"}
    if callable(obj):
        return {"kind": "function", "params": parameters(obj)}
    return {"kind": "constant", "type": type(obj).__name__}


def describe_class(cls):
    members = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in ("__init__", "__call__", "__getitem__", "__setitem__",
                                                   "__enter__", "__exit__", "__array__", "__len__",
                                                   "__iter__", "__int__", "__float__", "__bool__",
                                                   "__complex__", "__format__", "__index__",
                                                   "__array_ufunc__", "__array_function__",
                                                   "__array_priority__", "__matmul__", "__rmatmul__",
                                                   "__imatmul__", "__copy__", "__deepcopy__"):
            continue
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if isinstance(attr, (property,)) or type(attr).__name__ in ("getset_descriptor", "member_descriptor"):
            members[name] = {"kind": "attribute"}
        elif callable(attr) or type(attr).__name__ in ("method_descriptor", "wrapper_descriptor"):
            target = getattr(cls, name)
            params = parameters(target, drop_self=True)
            if name == "__init__" and params in (None, "()", "(*args, **kwargs)"):
                params = signature_text(parse_doc_signature(cls))   # Cython classes: the signature heads the class docstring
            members[name] = {"kind": "method", "params": params}
        else:
            members[name] = {"kind": "attribute"}
    return members


def main():
    api = {"cupy": cupy.__version__, "numpy": numpy.__version__,
           "generated_by": "tests/standin/dump_cupy_api.py", "modules": {}, "classes": {}}
    for dotted in MODULES:
        module = resolve(dotted)
        names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
        api["modules"][dotted] = {n: describe(getattr(module, n)) for n in sorted(names) if hasattr(module, n)}
    for dotted in CLASSES:
        api["classes"][dotted] = describe_class(resolve(dotted))
    write(api, sys.stdout)


def write(api, out):
    """JSON with one line per name, so that a new CuPy's dump reads as a short diff."""
    out.write("{\n")
    for key in ("cupy", "numpy", "generated_by"):
        out.write(f" {json.dumps(key)}: {json.dumps(api[key])},\n")
    for i, section in enumerate(("modules", "classes")):
        out.write(f' "{section}": {{\n')
        groups = sorted(api[section].items())
        for j, (group, names) in enumerate(groups):
            out.write(f"  {json.dumps(group)}: {{\n")
            rows = [f"   {json.dumps(n)}: {json.dumps(d, sort_keys=True)}" for n, d in sorted(names.items())]
            out.write(",\n".join(rows) + "\n  }" + ("," if j + 1 < len(groups) else "") + "\n")
        out.write(" }" + ("," if i == 0 else "") + "\n")
    out.write("}\n")


if __name__ == "__main__":
    main()
