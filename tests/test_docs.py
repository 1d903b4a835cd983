"""The guides in docs/*.md are executable too: every code block runs and prints what is shown.

The rules are walkthrough.md's (tests/test_walkthrough.py: its parser and its comparison of
outputs are used here), with these differences:

* EVERY ```bash block runs, not only marked ones: the guides show only cheap commands.
  Each line is one command. All blocks of a guide run in order in ONE fresh temporary
  folder (files a command writes, such as a student's exercises/, stay for the next).
  `python -m tinyconvmixer.X ARGS` runs in this process, as X's main(ARGS) (the same
  code as the command, without a new interpreter and imports each time); any other
  command runs in bash.
* ```python blocks run in one namespace per guide, in that folder.
* A hidden directive `<!-- docs: solutions into DIR -->` before a block copies the
  reference solutions of the exercises into DIR first: it stands for the student
  writing their code, which no command can show.
* Relative links must name files that exist.
"""

import contextlib
import importlib
import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from test_walkthrough import first_difference, output_matches, parse

REPO = Path(__file__).resolve().parents[1]
GUIDES = sorted((REPO / "docs").glob("*.md"))
SOLUTIONS_INTO = re.compile(r"<!-- docs: solutions into (\S+) -->")


@contextlib.contextmanager
def working_directory(path):
    """contextlib.chdir, which needs Python 3.11."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_command(command, cwd):
    """The combined stdout and stderr of one command line."""
    argv = shlex.split(command)
    shell = {"|", ">", ">>", "<", "&&", "||", ";"} & set(argv)    # a redirection or a pipe: bash's job
    if argv[:2] == ["python", "-m"] and argv[2].startswith("tinyconvmixer") and not shell:
        module = importlib.import_module(argv[2])
        if not hasattr(module, "main"):                       # a package: its __main__.py
            module = importlib.import_module(argv[2] + ".__main__")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), working_directory(cwd):
            try:
                module.main(argv[3:])
            except SystemExit:                               # argparse's own errors
                pass
        return out.getvalue()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)
    return proc.stdout + proc.stderr


def directive_before(lines, block):
    """The DIR of a `solutions into DIR` directive between the previous block and this one."""
    k = block.line - 2
    while k >= 0 and not lines[k].startswith("```"):
        m = SOLUTIONS_INTO.search(lines[k])
        if m:
            return m.group(1)
        k -= 1
    return None


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_blocks(guide, tmp_path, monkeypatch):
    from tinyconvmixer.exercises.checker import SOLUTIONS

    monkeypatch.setenv("TINYCONVMIXER_THREADS", "1")             # tiny shapes: threads only cost
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("COLUMNS", "80")                            # outputs as an 80-column terminal shows them
    text = guide.read_text(encoding="utf-8")
    lines = text.split("\n")
    namespace, problems, ran = {"__name__": "__docs__"}, [], 0
    for block in parse(text):
        if block.lang not in ("bash", "python"):
            continue
        target = directive_before(lines, block)
        if target:
            for path in SOLUTIONS.glob("*.py"):
                shutil.copyfile(path, tmp_path / target / path.name)
        if block.lang == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out), working_directory(tmp_path):
                exec(compile("\n" * block.line + block.code, str(guide), "exec"), namespace)
            got = out.getvalue()
        else:
            commands = [c for c in block.code.split("\n") if c.strip() and not c.lstrip().startswith("#")]
            got = "".join(run_command(c, tmp_path) for c in commands)
        ran += 1
        expected = block.expected.code if block.expected else ""
        if not output_matches(expected, got):
            problems.append(f"{guide.name} line {block.line}: {first_difference(expected, got)}\n"
                            f"--- expected ---\n{expected.rstrip()}\n--- got ---\n{got.rstrip()}\n")
    assert ran, f"{guide.name} has no code block"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("guide", GUIDES, ids=[g.name for g in GUIDES])
def test_guide_links(guide):
    text = re.sub(r"```.*?```", "", guide.read_text(encoding="utf-8"), flags=re.S)
    missing = [t for t in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
               if not re.match(r"^[a-z]+://", t) and not (guide.parent / t).exists()]
    assert not missing, f"{guide.name} links to files that do not exist: {missing}"
