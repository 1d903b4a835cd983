"""What this CPU offers: the cores this process may use and the caches of one core.

The blocked loops of fast/cpu/ size their blocks from these numbers instead of
from one processor's: an elementwise chunk whose temporaries fit in one core's
L2 cache (512 KiB on the project's AMD EPYC, 2 MiB on a recent Intel Xeon), a
depthwise block whose tiles fit there too, and one thread per core.

Linux reports the caches in /sys/devices/system/cpu/cpu0/cache/index*/ (glibc
also through os.sysconf); where neither answers (macOS, Windows, a container
that hides /sys) the FALLBACK sizes below are used, those of a small laptop
core. Cores: the process's CPU affinity (`taskset`), further limited by a
cgroup CPU quota (Docker's --cpus, Kubernetes limits) where one is set.
"""

import functools
import os

KIB = 1024
FALLBACK = {1: 32 * KIB, 2: 256 * KIB, 3: 4096 * KIB}      # bytes, per level (L3: the whole cache)
_SYSCONF = {1: "SC_LEVEL1_DCACHE_SIZE", 2: "SC_LEVEL2_CACHE_SIZE", 3: "SC_LEVEL3_CACHE_SIZE"}


def _parse_size(text):
    """'512K' -> 524288, '8M' -> 8388608, '32768' -> 32768 (the forms sysfs uses)."""
    text = text.strip().upper()
    scale = {"K": KIB, "M": KIB * KIB, "G": KIB ** 3}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def _sysfs_caches(folder="/sys/devices/system/cpu/cpu0/cache"):
    """{level: bytes} of the data and unified caches sysfs lists for cpu0 ({} if none)."""
    sizes = {}
    try:
        entries = sorted(e for e in os.listdir(folder) if e.startswith("index"))
    except OSError:
        return sizes
    for entry in entries:
        try:
            with open(os.path.join(folder, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(folder, entry, "level")) as f:
                level = int(f.read())
            with open(os.path.join(folder, entry, "size")) as f:
                size = _parse_size(f.read())
        except (OSError, ValueError):
            continue
        if kind != "Instruction" and size > 0:
            sizes[level] = size
    return sizes


@functools.lru_cache(maxsize=None)
def cache_sizes():
    """{1: L1 data, 2: L2, 3: L3} in bytes: sysfs, else os.sysconf, else FALLBACK, per level."""
    sizes = _sysfs_caches()
    for level, name in _SYSCONF.items():
        if level not in sizes:
            try:
                value = os.sysconf(name)
            except (ValueError, OSError, AttributeError):
                value = 0
            if value > 0:
                sizes[level] = value
    return {level: sizes.get(level, FALLBACK[level]) for level in FALLBACK}


def l2_bytes():
    """One core's L2 cache."""
    return cache_sizes()[2]


def core_cache_bytes():
    """The cache one thread's block may fill: its core's L2 and half of its share of the L3
    (the L3 is shared among the cores; the other half for everything else)."""
    return cache_sizes()[2] + cache_sizes()[3] // (2 * cores())


def _cgroup_cpus(path="/sys/fs/cgroup/cpu.max"):
    """The CPUs a cgroup v2 quota allows ('200000 100000' -> 2), or None where there is none."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else max(1, int(quota) // max(1, int(period)))
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=None)
def cores():
    """The cores this process may run on: its affinity, limited by a cgroup quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(n, quota) if quota else n)
