"""benchmarks/gpu_session.sh, the one prepared command for a GPU machine: it reports every stage
and fails when any stage fails. (CI runs it for real on the CuPy stand-in; these tests only
check its bookkeeping, with stand-in programs for python.)"""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.sh"


def session(tmp_path, *stages, **env):
    out = tmp_path / "out"
    environ = {k: v for k, v in os.environ.items() if k != "TINYCONVMIXER_SIMULATE_GPU"}
    environ.update(OUT=str(out), DATA=str(tmp_path / "missing.tar.gz"), **env)
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
    session(tmp_path, "env", "gradcheck", "tests", "bench", "train", PYTHON="true")
    assert len(list((tmp_path / "out").iterdir())) <= 8
