"""Speed and memory of tinyconvmixer beside PyTorch, in one process, on the same shapes.

    python benchmarks/bench.py --device cpu            # batch 32, all cores for both
    python benchmarks/bench.py --device gpu            # batch 512, TF32 off on both
    python benchmarks/bench.py --device gpu --tf32     # an extra row set with TF32 matmuls
    python benchmarks/bench.py --device gpu --no-kernels   # our plain xp paths, without the CUDA kernels

Each row times forward + backward of one op at ConvMixer-256's real shapes (or
a whole AdamW training step of ConvMixer-256/8), for tinyconvmixer and for
PyTorch with identical weights, inputs and upstream gradients. It warms up,
synchronises the GPU, times the two sides in turns (ours, theirs, ours, ...: a
shared machine's speed drifts, and both should see the same drift), and reports
the median time of each side, the median of the per-pair ratios
tinyconvmixer / PyTorch, and peak memory (NumPy allocations via tracemalloc on
the CPU, where PyTorch's are not visible to it; memory-pool bytes on the GPU).
For the training steps it also reports achieved FLOP/s and bytes/s against the
device's measured peaks (a large matrix product, a large copy). Results go to
a JSON file, rewritten after every row, so that a run stopped half-way keeps what it
measured. Between rows both sides' cached device memory is freed (CuPy's pools,
torch's cache), so that one row does not run beside the blocks the last one kept;
a row that runs out of memory is recorded as such, and the next row runs.
`--memory-limit` caps CuPy's pool (as a smaller GPU would: 15GiB for a T4).
Without torch installed, only tinyconvmixer is timed.
"""

import os

# Before NumPy loads OpenBLAS (fast/cpu/tuning.py says why): for both sides, as every setting here.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")

import argparse
import functools
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # for torch_convmixer

import tinyconvmixer.fast                                           # noqa: E402,F401  (the fast variants)
import tinyconvmixer.functional as F                                # noqa: E402
from tinyconvmixer import Tensor, nn, optim                         # noqa: E402
from tinyconvmixer.engine import backend                            # noqa: E402
from tinyconvmixer.fast.cpu import tuning                           # noqa: E402
from tinyconvmixer.fast.cuda import launch                          # noqa: E402
from tinyconvmixer.util.atomic import atomic_write                  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
    from torch_convmixer import load_from_tinyconvmixer, torch_convmixer
except ImportError:                                                  # torch is optional here
    torch = None
    print("no torch installed: timing tinyconvmixer alone", file=sys.stderr)

DIM, DEPTH, CLASSES = 256, 8, 10


# ----- timing and memory ------------------------------------------------------------------
def synchronize(device):
    if device == "gpu":
        backend.xp_for("gpu").cuda.Device().synchronize()
        if torch is not None:
            torch.cuda.synchronize()


def one_time(fn, device):
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median_time(fn, device, warmup, repeats):
    """Median seconds of fn() over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    return statistics.median(one_time(fn, device) for _ in range(repeats))


SETTLE_BELOW_S = 0.5          # rows whose runs take less get an untimed run before each timed one


def paired_times(ours, theirs, device, warmup, repeats):
    """(our median, their median, median of the per-pair ratios), timing the two in turns.

    A shared machine changes speed from second to second (on the 2-core CI machine, two
    threads sometimes run at the speed of one). Timing ours, then theirs, then ours...
    puts both under the same conditions, and each pair's ratio cancels the drift.
    """
    warm = [one_time(fn, device) for _ in range(warmup) for fn in (ours, theirs)]
    # On the CPU, PyTorch's OpenMP threads spin for milliseconds after each parallel region
    # (libgomp's default), taking a core from whatever runs next: our GELU row ran in 15.4 ms
    # after one of its own runs, 19.5 ms straight after PyTorch's. Where a run is short
    # enough for that to matter, each timed run follows an untimed run of the same side,
    # so that each side is timed on cores the other has let go of, as in a script of its own.
    # (Judged by the last warm-up round: a side's first run may pay for its start, as PyTorch's
    # first CPU op did, 0.54 s, when GELU was the only row run.)
    settle = device == "cpu" and max(warm[-2:], default=1.0) < SETTLE_BELOW_S
    pairs = []

    def timed(fn):
        if settle:
            fn()
        return one_time(fn, device)
    for i in range(repeats):                  # alternate who goes first, so order effects cancel too
        if i % 2 == 0:
            a = timed(ours)
            pairs.append((a, timed(theirs)))
        else:
            b = timed(theirs)
            pairs.append((timed(ours), b))
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(a / b for a, b in pairs))


def time_row(row, ours, theirs, device, args):
    """Fill the row's times (and ratio) for our step fn and, where torch is here, theirs."""
    if theirs is None:
        row["ours_s"] = median_time(ours, device, args.warmup, args.repeats)
    else:
        row["ours_s"], row["torch_s"], row["ratio"] = paired_times(ours, theirs, device,
                                                                   args.warmup, args.repeats)


def peak_memory(fn, device, side):
    """Peak bytes allocated while fn() runs once (None where it cannot be seen)."""
    if device == "cpu":
        if side == "torch":
            return None                      # torch's CPU allocator is invisible to tracemalloc
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    if side == "torch":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_reserved()
    pool = backend.xp_for("gpu").get_default_memory_pool()
    pool.free_all_blocks()
    fn()
    synchronize(device)
    return pool.total_bytes()


def free_device_memory(device):
    """Give back the memory that the last row's arrays held: CuPy's pools keep freed blocks
    for reuse (and so does torch's caching allocator), which the next row could not use."""
    gc.collect()                                     # the last row's model, optimiser and tape
    if device == "gpu":
        cp = backend.xp_for("gpu")
        cp.get_default_memory_pool().free_all_blocks()
        cp.get_default_pinned_memory_pool().free_all_blocks()
        if torch is not None:
            torch.cuda.empty_cache()


def out_of_memory(exc):
    """True for CuPy's OutOfMemoryError (a MemoryError), torch's, and NumPy's MemoryError."""
    torch_oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return isinstance(exc, MemoryError) or (torch_oom is not None and isinstance(exc, torch_oom))


def parse_bytes(text):
    """'15GiB', '512MiB', '2e9' -> bytes (for --memory-limit)."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9, "b": 1}
    low = text.strip().lower()
    for unit, size in units.items():
        if low.endswith(unit):
            return int(float(low[:-len(unit)]) * size)
    return int(float(low))


# ----- the rows -----------------------------------------------------------------------------
def op_rows(N, device):
    """(name, our fn, torch fn, input shapes) for each op at ConvMixer's shapes."""
    h, s16, s32 = DIM, (N, DIM, 16, 16), (N, DIM, 32, 32)
    y = np.arange(N) % CLASSES
    labels = backend.to_device(y, device)
    torch_labels = torch.tensor(y, device="cuda" if device == "gpu" else "cpu") if torch else None

    def conv(**kw):
        return (lambda x, w, b: F.conv2d(x, w, b, **kw)), (lambda x, w, b: TF.conv2d(x, w, b, **kw))
    rows = [
        ("patch embedding p=2", *conv(stride=2), [(N, 3, 32, 32), (h, 3, 2, 2), (h,)]),
        ("depthwise k=5 (16x16)", *conv(padding="same", groups=h), [s16, (h, 1, 5, 5), (h,)]),
        ("depthwise k=9 (32x32)", *conv(padding="same", groups=h), [s32, (h, 1, 9, 9), (h,)]),
        ("pointwise 1x1 (16x16)", *conv(), [s16, (h, h, 1, 1), (h,)]),
        ("GELU (16x16)", F.gelu, (lambda x: TF.gelu(x)), [s16]),
        ("BatchNorm train (16x16)",
         lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), [s16, (h,), (h,)]),
        ("pool + linear + cross-entropy",
         lambda x, w, b: F.cross_entropy(F.linear(F.global_avg_pool2d(x), w, b), labels),
         lambda x, w, b: TF.cross_entropy(TF.linear(x.mean(dim=(2, 3)), w, b), torch_labels),
         [s16, (CLASSES, h), (CLASSES,)]),
    ]
    return rows


def run_op(name, ours, theirs, shapes, device, args, rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    xp = backend.xp_for(device)
    # Our activations after the patch embedding are channels-last (NHWC memory, NCHW shape),
    # as inside the model; PyTorch gets its own default layout.
    first = arrays[0]                         # the activation; the rest are weights
    our_in = [Tensor(backend.channels_last(xp.asarray(first)) if first.shape[1] == DIM else xp.asarray(first),
                     requires_grad=True)] + [Tensor(xp.asarray(a), requires_grad=True) for a in arrays[1:]]
    out_shape = ours(*our_in).shape
    g = rng.standard_normal(out_shape).astype(np.float32)
    g_ours = Tensor(backend.channels_last(xp.asarray(g)) if g.ndim == 4 and g.shape[1] == DIM else xp.asarray(g))

    def step_ours():
        for t in our_in:
            t.grad = None
        ours(*our_in).backward(g_ours)
    step_torch = None
    if torch is not None:
        dev = "cuda" if device == "gpu" else "cpu"
        their_in = [torch.tensor(a, device=dev, requires_grad=True) for a in arrays]
        g_t = torch.tensor(g, device=dev)

        def step_torch():
            for t in their_in:
                t.grad = None
            theirs(*their_in).backward(g_t)
    return measure({"name": name}, step_ours, step_torch, device, args)


def measure(row, step_ours, step_torch, device, args):
    """Times (in turns, see paired_times) and peak memory of both sides."""
    time_row(row, step_ours, step_torch, device, args)
    row["ours_bytes"] = peak_memory(step_ours, device, "ours")
    if step_torch is not None:
        row["torch_bytes"] = peak_memory(step_torch, device, "torch")
    return row


def step_flops_and_bytes(N, k, p):
    """FLOPs (multiply-adds x 2) and a lower bound on bytes moved for one training step.

    Convolutions: 2 * N * Ho * Wo * C_out * (C_in/groups) * kh * kw forward, twice
    that backward (input and weight gradients). Bytes: every activation written
    once and read once forward, and about twice that backward, in float32
    (elementwise layers included), plus AdamW reading and writing 4 arrays per parameter.
    """
    s = 32 // p
    act = N * DIM * s * s                       # elements of one (N, 256, s, s) activation
    conv = (2 * N * s * s * DIM * 3 * p * p
            + DEPTH * (2 * N * s * s * DIM * k * k + 2 * N * s * s * DIM * DIM))
    flops = 3 * conv
    layers = 3 + DEPTH * 7                      # conv/gelu/bn (+residual add) outputs per step
    params = 3 * DIM * p * p + DIM + 4 * DIM + DEPTH * (DIM * k * k + DIM * DIM + 2 * DIM + 4 * DIM) + DIM * 11
    bytes_moved = 4 * (3 * 2 * act * layers) + 4 * params * 4 * 2
    return flops, bytes_moved


def run_step(k, p, device, args, rng):
    """One AdamW training step of ConvMixer-256/8 (k, p) on a random CIFAR-sized batch."""
    N = args.batch_size
    nn.init.manual_seed(0)
    model = nn.ConvMixer(DIM, DEPTH, kernel_size=k, patch_size=p, n_classes=CLASSES).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-3)
    xp = backend.xp_for(device)
    x = rng.standard_normal((N, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, CLASSES, N)
    x_ours, y_ours = Tensor(xp.asarray(x)), xp.asarray(y)

    def step_ours():
        opt.zero_grad()
        F.cross_entropy(model(x_ours), y_ours).backward()
        opt.step()
    step_torch = None
    if torch is not None:                     # the same weights, before either side trains
        dev = "cuda" if device == "gpu" else "cpu"
        tmodel = torch_convmixer(DIM, DEPTH, k, p, CLASSES)
        load_from_tinyconvmixer(tmodel, {kk: backend.to_numpy(v) for kk, v in model.state_dict().items()})
        tmodel = tmodel.to(dev).train()
        topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3, weight_decay=5e-3)
        x_t, y_t = torch.tensor(x, device=dev), torch.tensor(y, device=dev)

        def step_torch():
            topt.zero_grad()
            TF.cross_entropy(tmodel(x_t), y_t).backward()
            topt.step()
    row = measure({"name": f"train step ConvMixer-256/8 k={k} p={p}"}, step_ours, step_torch, device, args)
    row["flops"], row["bytes"] = step_flops_and_bytes(N, k, p)
    return row


def device_peaks(device, args):
    """Measured peak matmul FLOP/s and copy bandwidth (bytes read + written per second)."""
    xp = backend.xp_for(device)
    n = 4096 if device == "gpu" else 2048
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    t_mm = median_time(lambda: a @ a, device, 2, 5)
    big = xp.zeros(64 * 1024 * 1024 if device == "gpu" else 32 * 1024 * 1024, dtype=xp.float32)
    dst = xp.empty_like(big)
    t_cp = median_time(lambda: xp.copyto(dst, big), device, 2, 5)
    return {"matmul_flops": 2 * n ** 3 / t_mm, "copy_bytes_per_s": 2 * big.nbytes / t_cp}


# ----- output -------------------------------------------------------------------------------
def fmt_bytes(b):
    return "-" if b is None else f"{b / 2**20:8.1f} MiB"


def print_table(rows, peaks):
    print(f"\n{'row':<40} {'tinyconvmixer':>13} {'PyTorch':>10} {'ratio':>6}  {'mem ours':>12} {'mem torch':>12}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<40} {r['error']}")
            continue
        t = r.get("torch_s")
        ratio = f"{r['ratio']:6.2f}" if t else "     -"
        theirs = f"{t * 1e3:7.1f} ms" if t else f"{'-':>10}"
        print(f"{r['name']:<40} {r['ours_s'] * 1e3:10.1f} ms {theirs} {ratio}  "
              f"{fmt_bytes(r['ours_bytes']):>12} {fmt_bytes(r.get('torch_bytes')):>12}")
    if not peaks:
        return
    print(f"\ndevice peaks: matmul {peaks['matmul_flops'] / 1e9:.1f} GFLOP/s, "
          f"copy {peaks['copy_bytes_per_s'] / 1e9:.1f} GB/s")
    for r in rows:
        if "flops" in r and "error" not in r:
            for side in ("ours", "torch"):
                if r.get(f"{side}_s"):
                    fl, by = r["flops"] / r[f"{side}_s"], r["bytes"] / r[f"{side}_s"]
                    print(f"{r['name']} [{side}]: {fl / 1e9:.1f} GFLOP/s "
                          f"({100 * fl / peaks['matmul_flops']:.0f}% of matmul peak), "
                          f"{by / 1e9:.1f} GB/s ({100 * by / peaks['copy_bytes_per_s']:.0f}% of copy peak)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batch-size", type=int, help="default: 32 on the CPU, 512 on the GPU")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch CPU threads (ours: $TINYCONVMIXER_THREADS, OpenBLAS: all cores)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on both sides (GPU)")
    parser.add_argument("--no-kernels", action="store_true",
                        help="GPU: time tinyconvmixer's plain xp paths instead of its CUDA kernels")
    parser.add_argument("--only", help="only rows whose name contains this text (or one of several, "
                                       "comma-separated)")
    parser.add_argument("--json", help="where to write results (default benchmarks/results/bench-DEVICE.json)")
    parser.add_argument("--memory-limit", type=parse_bytes, metavar="BYTES",
                        help="GPU: cap CuPy's memory pool (15GiB: what a T4 holds) to see which rows fit")
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (512 if args.device == "gpu" else 32)
    if args.device == "gpu" and args.tf32:
        os.environ["CUPY_TF32"] = "1"          # read when CuPy loads, i.e. in check_device below
    if args.no_kernels:
        launch.set_enabled(False)              # every op on its plain xp path
    try:
        backend.check_device(args.device)
    except backend.DeviceError as exc:
        sys.exit(f"error: {exc}")
    global torch
    if torch is not None and args.device == "gpu" and not torch.cuda.is_available():
        print("this torch has no CUDA: timing tinyconvmixer alone", file=sys.stderr)
        torch = None                           # (a CPU build of torch beside CuPy, or the CuPy stand-in)
    if torch is not None:
        torch.set_num_threads(args.threads)
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    # The CPU settings of fast/cpu/tuning.py apply to the whole process, PyTorch included.
    settings = {"OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                "keep_freed_memory": tuning.keep_freed_memory() if args.device == "cpu" else None}

    if args.memory_limit and args.device == "gpu":
        backend.xp_for("gpu").get_default_memory_pool().set_limit(size=args.memory_limit)
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                    f"bench-{args.device}{'-tf32' if args.tf32 else ''}{'-plain' if args.no_kernels else ''}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    result = {"args": vars(args), "machine": machine_info(args, settings), "peaks": None, "rows": [],
              "complete": False}

    def save():                                # after every row: a run stopped later keeps these
        atomic_write(out, lambda tmp: write_json(tmp, result))

    rng = np.random.default_rng(0)
    for name, run in planned_rows(args, rng):
        row = run_row(name, run, args.device)
        result["rows"].append(row)
        save()
        print(f"  {row.get('error', 'done')}: {name}", file=sys.stderr)
    result["peaks"] = run_row("device peaks", lambda: device_peaks(args.device, args), args.device)
    if "error" in result["peaks"]:
        print(f"  {result['peaks']['error']}: device peaks", file=sys.stderr)
        result["peaks"] = None
    result["complete"] = True
    save()
    print_table(result["rows"], result["peaks"])
    print(f"\nwrote {out}")
    failed = [r["name"] for r in result["rows"] if "error" in r]
    if failed:
        print(f"{len(failed)} row(s) ran out of memory, recorded as such: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def planned_rows(args, rng):
    """(name, fn) for each row that --only lets through, in order: fn() measures the row."""
    def wanted(name):
        return args.only is None or any(part and part in name for part in args.only.split(","))
    for name, ours, theirs, shapes in op_rows(args.batch_size, args.device):
        if wanted(name):
            yield name, functools.partial(run_op, name, ours, theirs, shapes, args.device, args, rng)
    for k, p in ((5, 2), (9, 1)):
        name = f"train step ConvMixer-256/8 k={k} p={p}"
        if wanted(name):
            yield name, functools.partial(run_step, k, p, args.device, args, rng)


def run_row(name, run, device):
    """run(), or {"name", "error"} where it ran out of memory; either way the memory it held
    is given back before the next row (free_device_memory)."""
    try:
        return run()
    except Exception as exc:                   # (MemoryError included: it is an Exception)
        if not out_of_memory(exc):
            raise
        return {"name": name, "error": f"out of memory ({str(exc).splitlines()[0][:160]})"}
    finally:
        free_device_memory(device)


def machine_info(args, settings):
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "numpy": np.__version__,
               "torch": torch.__version__ if torch is not None else None, "cpu_tuning": settings}
    if args.device == "gpu":
        cp = backend.xp_for("gpu")
        machine["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        machine["cupy"] = cp.__version__
        machine["memory_limit"] = cp.get_default_memory_pool().get_limit() or None
    return machine


def write_json(path, result):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
