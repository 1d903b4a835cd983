"""The house: the layout by audience holds (issue 17), checked from the package's own imports.

* No import circles anywhere in the package (module level imports and imports inside
  functions alike).
* The reference ops (functional/) and the rest of the student's core import nothing of
  fast/, train/, gradcheck/ or exercises/: a reference reads alone.
* The line budget of the student's core is enforced by tools/line_budget.py (run by CI);
  here, that it fails above its budget.
"""

import ast
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "tinyconvmixer"
CORE = ("engine", "functional", "nn", "optim")


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The tinyconvmixer modules that the file at `path` imports (resolved to files that exist)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t.startswith("tinyconvmixer") and (t in MODULES):
                found.add(t)
    found.discard(name)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def graph():
    return {name: imports(path) for name, path in MODULES.items()}


def test_no_import_circles():
    g = graph()
    # a package's __init__ importing its own submodules is how packages work, not a circle back
    edges = {a: {b for b in bs if not (MODULES[a].name == "__init__.py" and b.startswith(a + "."))}
             for a, bs in g.items()}
    state, circles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"
    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, circles


def test_the_core_imports_nothing_above_it():
    """Above: anything outside the core that imports the package. A leaf that imports none of
    it (util/gpu_doctor.py, which engine/backend.py calls when CuPy fails) sits below the core."""
    g = graph()
    leaves = {name for name, deps in g.items() if not deps - {"tinyconvmixer", "tinyconvmixer.util"}}
    assert "tinyconvmixer.util.gpu_doctor" in leaves
    for name, deps in g.items():
        if name.split(".")[1:2] and name.split(".")[1] in CORE:
            above = [d for d in deps if d not in ("tinyconvmixer", "tinyconvmixer.util")
                     and d.split(".")[1] not in CORE and d not in leaves]
            assert not above, f"{name} imports {above}"


def test_the_reference_ops_contain_no_dispatch_to_kernels():
    for path in (PACKAGE / "functional").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("launch", "cuda", "run_blocks", "chunked", "rowwise"):
            assert word not in text.split('"""', 2)[-1], f"{path.name} mentions {word!r} in its code"


def test_the_line_budget_fails_above_its_budget(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("line_budget", REPO / "tools" / "line_budget.py")
    budget = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(budget)
    assert budget.main() == 0
    total = int(capsys.readouterr().out.split("student's core: ")[1].split()[0])
    assert 1000 < total <= budget.BUDGET
    monkeypatch.setattr(budget, "BUDGET", total - 1)
    assert budget.main() == 1
    assert "1 lines over its budget" in capsys.readouterr().err
