"""fast/cpu/machine.py (the cores and caches that block sizes follow) and threads.py (blocks
handed out one at a time, the calling thread working too)."""

import numpy as np

from tinyconvmixer.fast.cpu import machine, threads


# ----- machine.py -------------------------------------------------------------------------------
def test_cache_sizes_are_read_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "2048K"), (3, "Unified", "105M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert machine._sysfs_caches(str(tmp_path)) == {1: 48 * 1024, 2: 2 * 1024 ** 2, 3: 105 * 1024 ** 2}
    assert machine._sysfs_caches(str(tmp_path / "missing")) == {}


def test_cache_sizes_fall_back_level_by_level(monkeypatch):
    monkeypatch.setattr(machine, "_sysfs_caches", lambda: {2: 1 << 20})
    monkeypatch.setattr(machine.os, "sysconf", lambda name: 0)          # glibc knows nothing either
    machine.cache_sizes.cache_clear()
    try:
        assert machine.cache_sizes() == {1: machine.FALLBACK[1], 2: 1 << 20, 3: machine.FALLBACK[3]}
    finally:
        machine.cache_sizes.cache_clear()


def test_this_machine_reports_sensible_caches():
    sizes = machine.cache_sizes()
    assert 8 * 1024 <= sizes[1] <= sizes[2] <= sizes[3] + sizes[2]
    assert machine.core_cache_bytes() >= sizes[2]


def test_a_cgroup_quota_limits_the_cores(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert machine._cgroup_cpus(str(quota)) == 1
    quota.write_text("max 100000\n")
    assert machine._cgroup_cpus(str(quota)) is None
    assert machine._cgroup_cpus(str(tmp_path / "none")) is None


def test_threads_follow_the_environment(monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "3")
    assert threads.cpu_threads() == 3
    monkeypatch.delenv("TINYCONVMIXER_THREADS")
    assert threads.cpu_threads() == machine.cores() >= 1


def test_the_calling_thread_works_too_and_slow_threads_leave_blocks_to_others(monkeypatch):
    import threading
    import time
    monkeypatch.setenv("TINYCONVMIXER_THREADS", "2")
    main, who = threading.get_ident(), []

    def fn(a, b):
        if threading.get_ident() != main:
            time.sleep(0.2)                       # the helper is held back
        who.append(threading.get_ident() == main)
        return a
    assert threads.run_blocks(fn, 8, 1, np) == list(range(8))   # results in block order
    assert who.count(True) >= 6                   # the calling thread took most blocks meanwhile
