"""Refusing a student file that uses the engine's own answer instead of its own code.

The exercises replace parts of the engine; a file that imports the part it must
write (`from tinyconvmixer.engine.ops import unbroadcast`) would pass every check
while the student wrote nothing. So, before anything runs, the file's source is
read (never executed) and refused when it

  * imports anything of tinyconvmixer but the array backend and normal_cdf, under
    any spelling: `from tinyconvmixer.engine import ops`, `import tinyconvmixer.engine.ops
    as o`, `import tinyconvmixer`, the reference solutions;
  * imports a library that computes gradients for it (torch, jax, autograd, tensorflow);
  * reaches for modules or functions by name at run time: __import__, importlib,
    sys.modules, eval/exec, a string that names a tinyconvmixer module, or attributes such
    as __globals__, __wrapped__ or __module__ (getattr tricks within reason).

After loading, the module's names are checked too: none may be a function, class or
module of tinyconvmixer other than those allowed (whatever route brought it there).
The message names the line and what to do instead.
"""

import ast
import re
import types

ALLOWED_MODULES = {"tinyconvmixer.engine.backend"}
ALLOWED_NAMES = {("tinyconvmixer.functional.activation", "normal_cdf")}
AUTOGRAD_LIBRARIES = {"torch", "jax", "autograd", "tensorflow", "mxnet", "chainer"}
DYNAMIC_CALLS = {"__import__", "eval", "exec", "compile", "globals", "vars"}
DUNDERS = {"__globals__", "__wrapped__", "__module__", "__closure__", "__code__", "__builtins__",
           "__subclasses__", "__loader__", "__spec__", "__self__", "__func__"}
MODULE_PATH = re.compile(r"tinyconvmixer(\.\w+)*|.*exercises\.solutions.*")
ALLOWED_TEXT = ("from tinyconvmixer.engine import backend, and normal_cdf from "
                "tinyconvmixer.functional.activation")


class Refused(Exception):
    """The file uses the engine's own code (or a way around these checks); the message says where."""


def _allowed_import(module, names=None):
    """Whether `from module import names` (or `import module` when names is None) is allowed."""
    if module in ALLOWED_MODULES:
        return True
    if names is None:
        return False
    return all(f"{module}.{n}" in ALLOWED_MODULES or (module, n) in ALLOWED_NAMES for n in names)


def _top(module):
    return (module or "").split(".")[0]


def _refuse(path, node, what):
    raise Refused(f"{path.name}, line {node.lineno}: {what}")


def check_source(path):
    """Refused (with the first reason) if the file's source uses the engine's own code."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return                      # loading reports it, with its line
    engine = ("imports {}, the engine's own code: the exercise is to write it yourself (allowed: "
              + ALLOWED_TEXT + ")")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _top(alias.name) == "tinyconvmixer" and not _allowed_import(alias.name):
                    _refuse(path, node, engine.format(alias.name))
                if _top(alias.name) in AUTOGRAD_LIBRARIES:
                    _refuse(path, node, f"imports {alias.name}, which computes gradients for you: write the "
                                        "backward pass with array operations (NumPy)")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                _refuse(path, node, "a relative import: the exercises are files of their own, not a package")
            names = [alias.name for alias in node.names]
            if _top(node.module) == "tinyconvmixer" and not _allowed_import(node.module, names):
                _refuse(path, node, engine.format(f"{', '.join(names)} from {node.module}"))
            if _top(node.module) in AUTOGRAD_LIBRARIES:
                _refuse(path, node, f"imports from {node.module}, which computes gradients for you: write "
                                    "the backward pass with array operations (NumPy)")
            if node.module in ("importlib", "sys") and set(names) & {"import_module", "modules"}:
                _refuse(path, node, "imports modules by name at run time; use import statements")
        elif isinstance(node, ast.Name) and node.id in DYNAMIC_CALLS | {"importlib"}:
            _refuse(path, node, f"uses {node.id}: the exercises need no code built or modules found at run time")
        elif isinstance(node, ast.Attribute):
            if node.attr in DUNDERS or node.attr == "modules" and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys":
                _refuse(path, node, f"reads {node.attr}: reaching into modules and functions that way is "
                                    "not needed here, and is how the engine's own code could be fetched")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in DUNDERS or MODULE_PATH.fullmatch(text) and text not in ALLOWED_MODULES:
                _refuse(path, node, f"names {text!r}: fetching the engine's code by name is refused "
                                    f"(allowed: {ALLOWED_TEXT})")


def _origin(value):
    """The module that a function, class or module comes from (None for anything else)."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        return getattr(value, "__module__", None)
    return None


def check_module(module, path):
    """Refused if a name of the loaded module is a tinyconvmixer function, class or module that
    is not allowed (however it got there)."""
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        origin = _origin(value)
        if not origin or _top(origin) != "tinyconvmixer":
            continue
        if isinstance(value, types.ModuleType):
            ok = origin in ALLOWED_MODULES
        else:
            ok = (origin, getattr(value, "__name__", "")) in ALLOWED_NAMES or origin in ALLOWED_MODULES
        if not ok:
            what = f"{origin}.{getattr(value, '__name__', name)}" if not isinstance(value, types.ModuleType) else origin
            raise Refused(f"{path.name}: its name {name!r} is {what}, the engine's own code: the exercise is "
                          f"to write it yourself (allowed: {ALLOWED_TEXT})")
