"""benchmarks/gpu_session.sh, the one prepared command for a GPU machine: it reports every stage
and fails when any stage fails. (CI runs it for real on the CuPy stand-in; these tests only
check its bookkeeping, with stand-in programs for python.)"""

import os
import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.sh"


def session(tmp_path, *stages, **env):
    out = tmp_path / "out"
    environ = {k: v for k, v in os.environ.items() if k not in ("TINYCONVMIXER_SIMULATE_GPU", "SESSION_SECONDS")}
    environ.update(OUT=str(out), DATA=str(tmp_path / "missing.tar.gz"))
    environ.update(env)
    proc = subprocess.run(["bash", str(SCRIPT), *stages], env=environ, capture_output=True, text=True,
                          timeout=60)
    summary = (out / "session.txt").read_text() if (out / "session.txt").exists() else ""
    return proc, summary


def test_a_passing_stage_and_a_failing_one_make_a_failed_session(tmp_path):
    proc, summary = session(tmp_path, "gradcheck", "bench", PYTHON="true")
    assert "gradcheck: passed" in summary and "bench: passed" in summary
    assert proc.returncode == 0
    proc, summary = session(tmp_path, "gradcheck", "tests", PYTHON="false")
    assert "gradcheck: FAILED (exit 1)" in summary and "tests: FAILED (exit 1)" in summary
    assert proc.returncode == 1 and "SOME STAGES FAILED" in proc.stdout


def test_missing_data_fails_the_training_stage_with_the_way_to_fix_it(tmp_path):
    proc, summary = session(tmp_path, "train", PYTHON="true")
    assert proc.returncode == 1 and "no data at" in summary and ".data/" in summary


def test_stages_past_the_deadline_are_skipped_and_counted_as_failures(tmp_path):
    proc, summary = session(tmp_path, "gradcheck", PYTHON="true", SESSION_SECONDS="0")
    assert proc.returncode == 1 and "gradcheck: SKIPPED" in summary


def test_a_stage_that_hangs_is_stopped_at_its_limit(tmp_path):
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    proc, summary = session(tmp_path, "gradcheck", PYTHON=str(hang), SESSION_SECONDS="7")
    assert proc.returncode == 1 and "gradcheck: STOPPED" in summary


def test_an_unknown_stage_is_refused_before_any_stage_runs(tmp_path):
    proc, summary = session(tmp_path, "gradcheck", "trian", PYTHON="true")
    assert proc.returncode == 2 and "unknown stage 'trian'" in proc.stderr and "gradcheck" not in summary


def test_at_most_eight_result_files(tmp_path):
    """The device tool brings back at most 8 files; every stage's file, all at once."""
    (tmp_path / "data.tar.gz").write_bytes(b"")
    train = tmp_path / "fake-python"         # writes what the real commands write: --out DIR, --json FILE
    train.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in\n'
                     '  --out) mkdir -p "$2" && touch "$2/metrics.csv";;\n  --json) touch "$2";;\n'
                     'esac; shift; done\n')
    train.chmod(0o755)
    session(tmp_path, "env", "compile", "gradcheck", "tests", "bench", "train", PYTHON=str(train),
            DATA=str(tmp_path / "data.tar.gz"))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["bench-gpu.json", "bench.txt", "compile.txt", "gradcheck.txt", "pytest.txt", "run.tar.gz",
                     "session.txt", "train.txt"]


def plan(tmp_path, *stages, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("TINYCONVMIXER_SIMULATE_GPU", "SESSION_SECONDS")}
    environ.update(OUT=str(tmp_path / "out"), **env)
    return subprocess.run(["bash", str(SCRIPT), "--plan", *stages], env=environ, capture_output=True, text=True,
                          timeout=60)


def planned_limits(out):
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.endswith(" s")
            and len(line.split()) == 3}


def test_the_stage_limits_fit_the_deadline_and_the_deadline_fits_the_lease(tmp_path):
    """15 minutes of device time: the machine's start (up to 2 minutes), then one command of at
    most 10 minutes; the stages' limits, with the seconds `timeout` may take to kill each, add
    up to no more than the session's deadline, which leaves a minute of that command to spare."""
    proc = plan(tmp_path)
    assert proc.returncode == 0, proc.stderr
    limits = planned_limits(proc.stdout)
    assert list(limits) == ["env", "compile", "gradcheck", "tests", "bench", "train"]
    total, with_kills, deadline = (int(n) for n in
                                   re.search(r"limits: (\d+) s; with 10 s to kill each stage: (\d+) s; "
                                             r"deadline: (\d+) s", proc.stdout).groups())
    assert total == sum(limits.values()) and with_kills == total + 10 * len(limits)
    assert total < deadline and with_kills <= deadline
    assert deadline <= 600 - 60 and 120 + deadline <= 900
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80


def test_a_deadline_too_short_for_the_limits_is_refused_by_the_plan_and_warned_of(tmp_path):
    proc = plan(tmp_path, SESSION_SECONDS="300")
    assert proc.returncode == 1 and "do not fit the session's 300 s" in proc.stderr
    assert plan(tmp_path, "bench", SESSION_SECONDS="300").returncode == 0     # one stage fits
    proc, summary = session(tmp_path, "gradcheck", "tests", "bench", "train", PYTHON="true",
                            SESSION_SECONDS="200")
    assert "warning: the stages' limits add up to" in proc.stderr


def test_every_stage_runs_under_the_limit_the_plan_gives(tmp_path):
    limits = planned_limits(plan(tmp_path).stdout)
    session(tmp_path, "compile", "gradcheck", "tests", "bench", PYTHON="true")
    logs = {"compile": "compile.txt", "gradcheck": "gradcheck.txt", "tests": "pytest.txt", "bench": "bench.txt"}
    for stage, log in logs.items():
        head = (tmp_path / "out" / log).read_text().splitlines()[0]
        assert head.startswith(f"== {stage}: ") and head.endswith(f"(at most {limits[stage]} s)"), head


def test_the_kernels_are_compiled_first_as_a_timed_stage_of_their_own(tmp_path):
    """The default order compiles right after reading the machine, before anything is timed; on
    the stand-in (CI) with tiny models."""
    record = tmp_path / "calls.txt"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    fake.chmod(0o755)
    proc, summary = session(tmp_path, PYTHON=str(fake))
    stages = [line.split(":")[0] for line in summary.splitlines()
              if re.match(r"^(env|compile|gradcheck|tests|bench|train): ", line)]
    assert stages == ["env", "compile", "gradcheck", "tests", "bench", "train"]
    assert re.search(r"^compile: passed in \d+ s$", summary, re.M)
    calls = record.read_text().splitlines()
    assert calls[1] == "benchmarks/compile_kernels.py" and "gradcheck" in calls[2]
    record.unlink()
    session(tmp_path, "compile", PYTHON=str(fake), TINYCONVMIXER_SIMULATE_GPU="1")
    assert record.read_text().split() == ["tests/support/simulate_gpu.py", "benchmarks/compile_kernels.py", "--tiny"]


def test_the_machine_goes_into_the_session_file(tmp_path):
    proc, summary = session(tmp_path, "env", PYTHON="true")
    assert summary.startswith("date: ") and "env: FAILED (tinyconvmixer sees no GPU)" in summary
    assert not (tmp_path / "out" / "env.txt").exists() and not (tmp_path / "out" / "env.tmp").exists()


def test_on_the_standin_every_limit_is_scaled_and_the_plan_still_fits(tmp_path):
    """CI runs the script on the CuPy stand-in, on a shared 2-core CPU: 4 x each limit and the deadline."""
    gpu = planned_limits(plan(tmp_path).stdout)
    proc = plan(tmp_path, TINYCONVMIXER_SIMULATE_GPU="1")
    assert proc.returncode == 0 and planned_limits(proc.stdout) == {k: 4 * v for k, v in gpu.items()}
    assert "deadline: 2160 s" in proc.stdout and "stand-in" in proc.stdout
