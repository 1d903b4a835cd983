"""The training command and its console: closed and broken streams, any encoding, flags far out of
range, and a progress line that fits the terminal and never leaves stale copies of itself.

Streams are tested on real processes (a descriptor closed before the command starts, a pipe whose
reader goes away, a pseudo-terminal 40 columns wide), the rest in this process.
"""

import io
import json
import os
import re
import subprocess
import sys

import pytest

from tinyconvmixer import train
from tinyconvmixer.train import args as train_args
from tinyconvmixer.train.files.runlog import ProgressBar, read_metrics
from tinyconvmixer.util.statusline import StatusLine

from trainkit import FastClock, process_env, rewrite_checkpoint, train_command, wait_for_file, without_plots

# one epoch of 2 batches, plots left out: a complete run in a second or two
QUICK = ["--data", "sample", "--train-subset", "80", "--test-subset", "40", "--hdim", "8", "--depth", "1",
         "--kernel-size", "3", "--patch-size", "4", "--batch-size", "40", "--epochs", "1", "--ra-n", "0",
         "--device", "cpu"]


def quick_process(*argv, env=None, **popen):
    """A QUICK run in another process (plots as empty files); returns (exit code, stdout, stderr)."""
    proc = subprocess.run(train_command(*QUICK, *argv), env=env or process_env(FAULT_STUB_PLOTS=1),
                          capture_output="stdout" not in popen and "stderr" not in popen, timeout=600, **popen)
    decode = (lambda b: b.decode("utf-8", "backslashreplace") if isinstance(b, bytes) else b or "")
    return proc.returncode, decode(proc.stdout), decode(proc.stderr)


def finished(folder):
    return json.loads((folder / "summary.json").read_text())["finished"] is True


# ------------------------------------------------------------------------- closed streams

@pytest.mark.slow
@pytest.mark.parametrize("closed", [(2,), (1,), (0,), (0, 1, 2)], ids=["stderr", "stdout", "stdin", "all"])
def test_a_closed_stream_is_no_reason_to_stop(tmp_path, closed):
    """`2>&-` (as some job schedulers start jobs): the run trains and writes its files, exit code 0."""
    def close():
        for fd in closed:
            os.close(fd)
    out = tmp_path / "run"
    keep = {n: subprocess.PIPE for n, fd in (("stdout", 1), ("stderr", 2)) if fd not in closed}
    proc = subprocess.run(train_command(*QUICK, "--out", out), env=process_env(FAULT_STUB_PLOTS=1), timeout=600,
                          preexec_fn=close, **keep)
    assert proc.returncode == 0, proc.stderr
    assert finished(out) and (out / "last.npz").exists()
    assert b"Traceback" not in (proc.stderr or b"")
    # the run's own files never took the place of a closed descriptor
    assert not os.path.exists(out / "0") and sorted(os.listdir(out)) == sorted(
        ["args.json", "curves.png", "filters.png", "last.npz", "metrics.csv", "summary.json"])


@pytest.mark.slow
def test_bad_input_with_stderr_closed_still_exits_2(tmp_path):
    proc = subprocess.run(train_command(*QUICK, "--epochs", "0"), env=process_env(), timeout=600,
                          preexec_fn=lambda: os.close(2), stdout=subprocess.PIPE)
    assert proc.returncode == 2


@pytest.mark.slow
@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_output_into_a_reader_that_stops_reading(tmp_path, both):
    """`python -m tinyconvmixer.train ... | head -1` (with 2>&1 too): the reader goes away after one
    line; training goes on to the end (exit code 0), the rest of the output is dropped."""
    out = tmp_path / "run"
    # The run holds still after its first step until the reader has gone (on a fast machine it
    # would otherwise write everything into the pipe's buffer before the reader closes it).
    env = process_env(FAULT_STUB_PLOTS=1, FAULT_PAUSE_AT="step:1", FAULT_PAUSED=tmp_path / "paused",
                      FAULT_GO=tmp_path / "go")
    proc = subprocess.Popen(train_command(*QUICK, "--epochs", "2", "--out", out), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if both else subprocess.PIPE)
    first = proc.stdout.readline()
    wait_for_file(tmp_path / "paused", proc)
    proc.stdout.close()                                   # what head -1 does after its line
    (tmp_path / "go").touch()
    err = b"" if both else proc.stderr.read()
    assert proc.wait(timeout=600) == 0, err
    assert first.startswith(b"ConvMixer") or first.startswith(b"first use") or both
    assert finished(out) and len(read_metrics(out / "metrics.csv")) == 2
    assert b"Traceback" not in err and b"Broken pipe" not in err and b"Exception ignored" not in err


# ------------------------------------------------------------------------- names and encodings

@pytest.mark.slow
def test_a_folder_name_that_is_not_utf8_with_a_strict_console(tmp_path):
    """Bytes that are not UTF-8 in --out (Python keeps them as surrogates) printed on a UTF-8 console
    with errors=strict, Python's default: escaped, not a UnicodeEncodeError."""
    out = os.fsencode(tmp_path) + b"/run-\xff\xfe"
    env = process_env(FAULT_STUB_PLOTS=1, PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8")
    proc = subprocess.run(train_command(*QUICK) + [b"--out", out], env=env, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"\\udcff\\udcfe" in proc.stdout     # written as escapes
    assert os.path.isfile(out + b"/summary.json")


CONSOLES = {"ascii": dict(PYTHONIOENCODING="ascii"), "latin-1": dict(PYTHONIOENCODING="latin-1"),
            "C locale, no UTF-8 mode": dict(LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")}


@pytest.mark.slow
@pytest.mark.parametrize("console", sorted(CONSOLES))
def test_a_console_that_cannot_show_the_name(tmp_path, console):
    """(In the C locale without UTF-8 mode even the file system's encoding is ASCII: the name's bytes
    are kept as surrogates, and the folder is still made and named right.)"""
    out = tmp_path / "résumé-試験"
    code, stdout, err = quick_process("--out", out, env=process_env(FAULT_STUB_PLOTS=1, **CONSOLES[console]))
    assert code == 0 and "Traceback" not in err, err
    assert finished(out)
    assert "\\u8a66\\u9a13" in stdout or "\\udce8\\udca9\\udca6" in stdout      # escaped, as it could


@pytest.mark.slow
def test_a_missing_path_with_a_newline_is_one_quoted_line(tmp_path):
    code, _, err = quick_process("--data", f"{tmp_path}/two\nlines.tar.gz", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: '") and "two\\nlines.tar.gz' does not exist" in lines[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------- flags out of range

INT_FLAGS = ("hdim", "depth", "kernel-size", "patch-size", "epochs", "batch-size", "eval-batch-size",
             "train-subset", "test-subset", "val-split", "seed", "ra-n", "ra-m")
FLOAT_FLAGS = ("lr-max", "wd", "clip-norm", "scale", "jitter", "reprob")
HUGE = "1" + "0" * 400                     # 10**400: far beyond float range


def test_every_numeric_flag_is_one_of_the_parsers_flags():
    numeric = {a.option_strings[0][2:] for a in train_args.build_parser()._actions if a.type in (int, float)}
    assert numeric == set(INT_FLAGS) | set(FLOAT_FLAGS)


@pytest.mark.parametrize("flag", INT_FLAGS + FLOAT_FLAGS)
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1e400", "-1e400", "nan", "inf", "9" * 5000])
def test_every_numeric_flag_has_a_bound_with_a_one_line_error(flag, value, capsys):
    with pytest.raises(SystemExit) as stop:
        train_args.parse_args(QUICK + [f"--{flag}", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"--{flag}" in lines[0], err
    assert len(lines[0]) < 400 and "Traceback" not in err                 # a long number is shortened


def test_huge_flags_in_a_crafted_checkpoint_are_refused_too(tmp_path, capsys, monkeypatch):
    without_plots(monkeypatch)
    assert train.main(QUICK + ["--out", str(tmp_path / "run")]) == 0

    def huge(meta):
        meta["args"]["epochs"] = 10 ** 400
    rewrite_checkpoint(tmp_path / "run" / "last.npz", tmp_path / "huge.npz", edit_meta=huge)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train.main(["--resume", str(tmp_path / "huge.npz"), "--device", "cpu", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()
    assert len(line) == 1 and "--epochs must be at most 100,000" in line[0] and "(401 digits)" in line[0]


def test_the_cpu_estimate_of_the_largest_settings_does_not_overflow():
    from tinyconvmixer.train import cpu_estimate
    args, _ = train_args.parse_args([f"--{name.replace('_', '-')}={high}" for name, (_, high)
                                     in train_args.BOUNDS.items() if name not in ("patch_size", "kernel_size")]
                                    + ["--kernel-size", "63", "--patch-size", "1"])
    assert "hours" in cpu_estimate.warning(args, 10 ** 8, 10 ** 8)


# ------------------------------------------------------------------------- the progress line

class Terminal:
    """A terminal `width` columns wide, enough of one to see stale lines: printable characters,
    carriage return and newline; the cursor wraps to the next line after the last column."""

    def __init__(self, width):
        self.width, self.rows, self.row, self.col = width, [[]], 0, 0

    def feed(self, text):
        for c in text:
            if c == "\r":
                self.col = 0
            elif c == "\n":
                self.row, self.col = self.row + 1, 0
            else:
                if self.col == self.width:                # no room left: wrap first
                    self.row, self.col = self.row + 1, 0
                while len(self.rows) <= self.row:
                    self.rows.append([])
                line = self.rows[self.row]
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = c
                self.col += 1
            while len(self.rows) <= self.row:
                self.rows.append([])

    def lines(self):
        return ["".join(r).rstrip() for r in self.rows]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def draw(width, updates, monkeypatch, label="epoch 12/25", total=1563, later=13):
    """Every redraw of a progress bar on a terminal of `width` columns; returns the Terminal and the
    screens seen after each redraw."""
    monkeypatch.setenv("COLUMNS", str(width))
    stream, term, screens = FakeTTY(), Terminal(width), []
    bar = ProgressBar(label, total, stream=stream, min_interval=0, later_epochs=later, epoch_seconds=812.0)
    for done, loss, acc, rate in updates:
        before = len(stream.getvalue())
        bar.update(done, loss, acc, rate, force=True)
        term.feed(stream.getvalue()[before:])
        screens.append(term.lines())
    before = len(stream.getvalue())
    bar.close()
    term.feed(stream.getvalue()[before:])
    return term, screens


UPDATES = [(done, 2.3 / (1 + done), 100 * done / 1563, rate)
           for done, rate in [(1, 3.2), (9, 95.0), (10, 1234.5), (99, 12345.6), (100, 9.0), (999, 123456.0),
                              (1000, 7.0), (1562, 99999.0), (1563, 1.0)]]


@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 200])
def test_the_progress_line_fits_and_leaves_no_stale_copies(width, monkeypatch):
    term, screens = draw(width, UPDATES, monkeypatch)
    for screen in screens:                          # one line on screen at every moment, within the width
        drawn = [line for line in screen if line]
        assert len(drawn) == 1 and len(drawn[0]) < width, (width, screen)
        assert drawn[0].startswith("epoch 12/25")
    assert not [line for line in term.lines() if line]          # erased at the end


def test_the_progress_line_says_more_on_a_wider_terminal(monkeypatch):
    shown = {w: draw(w, UPDATES[3:4], monkeypatch)[1][0][0] for w in (40, 80, 200)}
    assert len(shown[40]) < len(shown[80]) < len(shown[200])
    assert "ETA epoch" in shown[80] and "run" in shown[80]
    assert "img/s" in shown[200] and "[" in shown[200] and "loss 0.0230" in shown[40]


def test_the_progress_line_in_a_log_is_a_line_of_at_most_79_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    stream = io.StringIO()                                    # not a terminal, no COLUMNS: 80 columns
    bar = ProgressBar("epoch 1/100", 100000, stream=stream, min_interval=0, later_epochs=99)
    bar.update(5000, 1.23456, 45.6, 12345.6, force=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 79 and "\r" not in lines[0] and "ETA epoch" in lines[0]


def test_a_status_line_is_cut_to_the_width_and_kept_on_one_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    stream = FakeTTY()
    line = StatusLine(stream, min_interval=0)
    line.show("first use: decoding CIFAR-10 from a very\nlong name with 試験 in it.tar.gz: 10%", force=True)
    text = stream.getvalue()
    assert text.startswith("\r") and "\n" not in text and text.endswith("...")
    term = Terminal(40)
    term.feed(text)
    assert len([ln for ln in term.lines() if ln]) == 1


@pytest.mark.slow
def test_the_progress_line_on_a_real_terminal_40_columns_wide(tmp_path):
    """A pseudo-terminal of 40 columns (no $COLUMNS): the run asks the terminal, and every redraw
    replaces the last one: at the end, no copy of the bar is on the screen."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    proc = subprocess.Popen(train_command(*QUICK, "--epochs", "2", "--batch-size", "8", "--out", tmp_path / "run"),
                            env=process_env(FAULT_STUB_PLOTS=1), stdin=slave, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:                                       # the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    assert text.count("\r") > 4                                # it did redraw in place
    term = Terminal(40)
    term.feed(text)
    assert not [line for line in term.lines() if re.match(r"epoch \d/2 ", line)], term.lines()


# ------------------------------------------------------------------------- times of fast epochs

def test_significant_digits():
    from tinyconvmixer.train.files.runlog import short_number, significant
    assert [significant(x) for x in (0.0123456, 0.0004321, 12.3456, 1234.56, 123456.7, 0.0)] == \
        [0.01235, 0.0004321, 12.35, 1234.6, 123456.7, 0.0]
    assert [short_number(x) for x in (0.0123456, 8.3, 306.4, 12345.6)] == ["0.0123", "8.3", "306", "12346"]


def test_epochs_far_under_50_ms_are_written_with_their_digits(tmp_path, monkeypatch, capsys):
    """The issue: a fast machine's epochs were written as 0.0 s. Every clock read here is 0.1 ms after
    the last, so the epochs take well under 0.05 s; the files keep their digits, never 0."""
    without_plots(monkeypatch)
    from tinyconvmixer.train import loop
    monkeypatch.setattr(loop.time, "perf_counter", FastClock())
    assert train.main(QUICK + ["--epochs", "2", "--out", str(tmp_path)]) == 0
    rows = read_metrics(tmp_path / "metrics.csv")
    assert all(0 < r["seconds"] < 0.05 and r["images_per_s"] > 1000 for r in rows), rows
    assert 0 < json.loads((tmp_path / "summary.json").read_text())["total_seconds"] < 0.1
    out = capsys.readouterr().out
    assert re.search(r"\| 0\.0\d*[1-9]\d* s \(\d+ img/s\)", out) and "| 0.0 s" not in out


# ------------------------------------------------------------------------- no traceback, ever

@pytest.mark.slow
def test_help_into_a_closed_pipe(tmp_path):
    proc = subprocess.Popen(train_command("--help"), env=process_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and b"Traceback" not in err and b"Exception ignored" not in err


def test_streams_are_given_back_after_a_run(tmp_path, monkeypatch):
    without_plots(monkeypatch)
    before = sys.stdout, sys.stderr
    assert train.main(QUICK + ["--out", str(tmp_path)]) == 0
    assert (sys.stdout, sys.stderr) == before
