"""walkthrough.ipynb works where the repository is not: on Colab, or downloaded alone.

It opens with a set-up cell that checks for the package and, where it is missing, says in
one line how to install it on Colab and that the runtime must then be restarted; and every
figure is embedded in its cell as an attachment, so it shows wherever the notebook is opened.
(tests/test_walkthrough.py::test_notebook_is_in_sync checks that the notebook is what
docs/make_notebook.py makes of walkthrough.md and its figures.)
"""

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = json.loads((REPO / "walkthrough.ipynb").read_text(encoding="utf-8"))


def make_notebook():
    spec = importlib.util.spec_from_file_location("make_notebook", REPO / "docs" / "make_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup_code():
    first = NOTEBOOK["cells"][0]
    assert first["cell_type"] == "code" and first["id"] == "setup" and first["metadata"]["tags"] == ["setup"]
    return "".join(first["source"])


def run_setup(tmp_path, *python_flags, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINYCONVMIXER_SIMULATE_GPU")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, *python_flags, "-c", setup_code()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_without_the_package_the_setup_cell_says_in_one_line_how_to_install_it_on_colab(tmp_path):
    proc = run_setup(tmp_path, "-S")          # -S: no site-packages, so no installed tinyconvmixer
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tinyconvmixer is not installed: on Colab, run `!pip install -e ")
    assert "add no extra" in lines[0] and "Restart session" in lines[0]


def test_with_the_package_the_setup_cell_works_in_its_checkout_and_names_the_device(tmp_path):
    proc = run_setup(tmp_path, pythonpath=str(REPO))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tinyconvmixer 0.1.0 in {REPO}: ")
    assert "a GPU is here" in lines[0] or "CPU only; device 'gpu' is not available: " in lines[0]


def test_every_figure_is_embedded_with_its_bytes():
    text = (REPO / "walkthrough.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\((docs/figures/[\w.-]+\.png)\)", text)
    assert len(shown) >= 10
    attached = {}
    for cell in NOTEBOOK["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        assert not re.search(r"!\[[^\]]*\]\((?!attachment:)", source)   # no picture by a path
        for name in re.findall(r"!\[[^\]]*\]\(attachment:([\w.-]+)\)", source):
            attached[name] = base64.b64decode(cell["attachments"][name]["image/png"])
    for path in shown:
        assert attached[Path(path).name] == (REPO / path).read_bytes(), path


def test_a_figure_that_does_not_exist_stops_the_generator(tmp_path):
    module = make_notebook()
    with pytest.raises(FileNotFoundError, match="docs/figures/none.png"):
        module.notebook_json("# t\n\n![nothing](docs/figures/none.png)\n")
    (tmp_path / "a.png").write_bytes(b"\x89PNG one")
    body, attachments = module.embed_figures("![a](a.png) and ![again](a.png) and ![web](https://x/y.png)",
                                             tmp_path)
    assert body == "![a](attachment:a.png) and ![again](attachment:a.png) and ![web](https://x/y.png)"
    assert attachments == {"a.png": {"image/png": base64.b64encode(b"\x89PNG one").decode()}}
