"""Generate walkthrough.ipynb from walkthrough.md: the same course as a Jupyter notebook.

    python docs/make_notebook.py            # writes walkthrough.ipynb beside walkthrough.md
    python docs/make_notebook.py --check    # exit code 1 if walkthrough.ipynb is out of date

Every ```python block becomes a code cell, in the same order; everything between
two of them (prose, figures, the expected output shown as a ```text block, the
shell commands) becomes markdown, cut into one cell per section heading. No
outputs are saved: run the cells yourself, top to bottom. The file is nbformat
4.5 JSON written with the standard library, so neither Jupyter nor nbformat is
needed to make it (only to open it). Cell ids are numbered, so the same
walkthrough.md always gives the same bytes, and tests/test_walkthrough.py fails
when the notebook is older than the markdown (or its figures).

The notebook is also read where the repository is not: on Colab, or downloaded
alone. So it opens with a set-up cell (SETUP) that checks for the package and, where
it is missing, says in one line how to install it on Colab and that the runtime must
then be restarted; and each figure that the markdown shows from the repository
(![...](docs/figures/x.png)) is embedded in its cell as an attachment
(![...](attachment:x.png)), so it shows wherever the notebook is opened.
"""

import argparse
import base64
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = REPO / "walkthrough.md"
NOTEBOOK = REPO / "walkthrough.ipynb"
FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s:]+\.(png|jpg|jpeg|gif|svg))\)")
MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "svg": "image/svg+xml"}
SETUP = """\
# Set-up: run this cell first. It checks that the tinyconvmixer package is installed, works in
# its checkout (where the cells write their files), and says whether the cells can use a GPU.
import os, pathlib
try:
    import tinyconvmixer
except ImportError:
    raise SystemExit("tinyconvmixer is not installed: on Colab, run `!pip install -e /content/tinyconvmixer` "
                     "(your clone of the repository; keep Colab's CuPy, add no extra), then Runtime > "
                     "Restart session, and run this cell again") from None
root = pathlib.Path(tinyconvmixer.__file__).resolve().parents[1]
if (root / "walkthrough.md").exists():
    os.chdir(root)
from tinyconvmixer.engine import backend
try:
    backend.check_device("gpu")
    print(f"tinyconvmixer {tinyconvmixer.__version__} in {os.getcwd()}: a GPU is here (device='gpu')")
except backend.DeviceError as exc:
    print(f"tinyconvmixer {tinyconvmixer.__version__} in {os.getcwd()}: CPU only; {exc}")"""


def cells_of(text):
    """[(kind, source)] with kind 'markdown' or 'code', in the order of the markdown file."""
    cells, prose, lines, i = [], [], text.split("\n"), 0

    def flush_prose():
        body = "\n".join(prose).strip("\n")
        if body.strip():
            cells.append(("markdown", body))
        prose.clear()

    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m and m.group(3).lower() == "python":
            indent, fence = m.group(1), m.group(2)
            body, i = [], i + 1
            while i < len(lines) and lines[i].strip() != fence:
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            flush_prose()
            cells.append(("code", "\n".join(body).rstrip("\n")))
            i += 1
            continue
        if m:                                   # another fenced block: copy it whole into the prose
            fence = m.group(2)
            prose.append(line)
            i += 1
            while i < len(lines) and lines[i].strip() != fence:
                prose.append(lines[i])
                i += 1
            if i < len(lines):
                prose.append(lines[i])
            i += 1
            continue
        if line.startswith("## ") or line.startswith("### "):
            flush_prose()                       # one markdown cell per section
        prose.append(line)
        i += 1
    flush_prose()
    return cells


def _source(text):
    """nbformat stores a cell's text as a list of lines, each but the last ending in a newline."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def embed_figures(body, base=REPO):
    """(markdown, attachments): each local image the markdown shows, as an attachment of its cell."""
    attachments = {}

    def attach(m):
        path = base / m.group(2)
        if not path.is_file():
            raise FileNotFoundError(f"walkthrough.md shows {m.group(2)}, which does not exist")
        name, data = path.name, {MIME[m.group(3).lower()]: _b64(path)}
        if attachments.setdefault(name, data) != data:
            raise ValueError(f"two different figures named {name} in one cell of walkthrough.md")
        return f"![{m.group(1)}](attachment:{name})"
    return IMAGE.sub(attach, body), attachments


def _b64(path):
    return base64.b64encode(path.read_bytes()).decode("ascii")


def notebook_json(text, base=REPO):
    """The notebook (a JSON string) for the markdown text; figures are read relative to `base`."""
    cells = [{"cell_type": "code", "id": "setup", "metadata": {"tags": ["setup"]}, "source": _source(SETUP),
              "execution_count": None, "outputs": []}]
    for n, (kind, body) in enumerate(cells_of(text), start=1):
        cell = {"cell_type": kind, "id": f"cell-{n:03d}", "metadata": {}}
        if kind == "markdown":
            body, attachments = embed_figures(body, base)
            if attachments:
                cell["attachments"] = attachments
        cell["source"] = _source(body)
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "source": "generated from walkthrough.md by docs/make_notebook.py: edit the markdown, not this file",
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that walkthrough.ipynb is up to date")
    args = parser.parse_args(argv)
    wanted = notebook_json(MARKDOWN.read_text(encoding="utf-8"))
    current = NOTEBOOK.read_text(encoding="utf-8") if NOTEBOOK.exists() else None
    if args.check:
        if current != wanted:
            print(f"{NOTEBOOK.name} is out of date: run python docs/make_notebook.py", file=sys.stderr)
            return 1
        print(f"{NOTEBOOK.name} is up to date")
        return 0
    if current != wanted:
        tmp = NOTEBOOK.with_suffix(".ipynb.tmp")
        tmp.write_text(wanted, encoding="utf-8")
        tmp.replace(NOTEBOOK)                   # atomic: never a half-written notebook
    n_code = sum(kind == "code" for kind, _ in cells_of(MARKDOWN.read_text(encoding="utf-8")))
    n_figures = len(IMAGE.findall(MARKDOWN.read_text(encoding="utf-8")))
    print(f"wrote {NOTEBOOK.name}: a set-up cell, {n_code} code cells, {n_figures} figures embedded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
