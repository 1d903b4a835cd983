"""Memory a training step keeps for its backward pass: tinyconvmixer beside PyTorch.

    python benchmarks/memory.py                        # CPU: fast variants on and off
    python tests/support/simulate_gpu.py benchmarks/memory.py --device gpu
                                                       # the CuPy stand-in: CUDA kernels on and off,
                                                       # and its memory pool's high-water mark

For ConvMixer-256/8 with k=5, p=2 (the CIFAR-10 recipe) and k=9, p=1, on a
random batch, three counts, each per image (the difference between two batch
sizes, divided by the difference: parameters and other fixed costs cancel):

* tape: after the forward pass, every array the tape keeps alive for the
  backward pass, counted by memory, not by name: each node's leaf inputs, the
  data its input Stubs kept (not what they would compute again) and whatever
  its Function saved, each allocation once however many names and views point
  into it (a view keeps its whole allocation alive);
* high-water (GPU only): the most bytes the device pool held during a whole
  training step (forward, backward, AdamW), as a T4 would have to hold them;
* PyTorch: the tensors its autograd saves during the same model's forward pass
  (torch.autograd.graph.saved_tensors_hooks), each storage once.

Results go to benchmarks/results/memory-DEVICE.json.
"""

import argparse
import contextlib
import json
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # for torch_convmixer

import tinyconvmixer.fast  # noqa: E402,F401  (the fast variants)
import tinyconvmixer.functional as F  # noqa: E402
from tinyconvmixer import Tensor, nn, optim  # noqa: E402
from tinyconvmixer.engine import backend, dispatch  # noqa: E402
from tinyconvmixer.engine.tensor import Stub, topological_order  # noqa: E402
from tinyconvmixer.fast.cuda import launch  # noqa: E402

try:
    import torch
    from torch_convmixer import torch_convmixer
except ImportError:                                   # torch is optional here
    torch = None

DIM, DEPTH, CLASSES = 256, 8, 10
RECIPES = ((5, 2), (9, 1))
MiB = 2 ** 20
T4_BYTES = 15 * 2 ** 30
T4_BATCH = 512


# ----- counting by memory -------------------------------------------------------------------
def allocation(a):
    """(start, stop) addresses of the allocation that array `a` keeps alive (a view: its base's)."""
    owner = a
    while getattr(owner, "base", None) is not None and hasattr(owner.base, "shape"):
        owner = owner.base
    if backend.get_array_module(owner) is np:
        start = owner.__array_interface__["data"][0]
        return start, start + owner.nbytes
    mem = getattr(owner.data, "mem", None)            # CuPy: the pool's block behind the array
    if mem is not None:
        return mem.ptr, mem.ptr + mem.size
    return owner.data.ptr, owner.data.ptr + owner.nbytes


def arrays_in(value, found, depth=0):
    """Every array reachable from a Function's saved value (lists, tuples, dicts, namespaces)."""
    if depth > 4 or isinstance(value, Tensor):
        if isinstance(value, Stub):
            value = value._data                       # what it kept; None: it keeps no data
        elif isinstance(value, Tensor):
            value = value.data
        if value is not None:
            found.append(value)
        return
    if hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "strides"):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            arrays_in(v, found, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            arrays_in(v, found, depth + 1)


def union_bytes(ranges):
    """Bytes covered by a set of [start, stop) address ranges, overlaps counted once."""
    total, end = 0, None
    for start, stop in sorted(ranges):
        if end is None or start >= end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def tape_bytes(root):
    """Bytes the tape behind `root` keeps alive: every node's inputs and saved arrays, by memory.

    The nodes are those backward() would visit; for each, the arrays of its inputs (leaves,
    constants and parameters included, and the data a Stub kept) and every array in its
    Function's attributes. Each allocation counts once."""
    found = [root.data]
    for node in topological_order(root):
        fn = node._fn
        if fn is None or fn.inputs is None:
            continue
        arrays_in(fn.inputs, found)
        arrays_in({k: v for k, v in vars(fn).items() if k != "inputs"}, found)
    return union_bytes({allocation(a) for a in found if a.size})


# ----- the steps --------------------------------------------------------------------------
def batch(N, xp, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, CLASSES, N)
    return x, y


def ours(k, p, N, device):
    """(tape bytes after the forward pass, pool high-water of a step or None) at batch N."""
    xp = backend.xp_for(device)
    nn.init.manual_seed(0)
    model = nn.ConvMixer(DIM, DEPTH, kernel_size=k, patch_size=p, n_classes=CLASSES).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-3)
    x, y = batch(N, xp)
    x, y = Tensor(xp.asarray(x)), xp.asarray(y)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        kept = tape_bytes(loss)
        loss.backward()
        opt.step()
        return kept
    step()                                            # AdamW's moments exist from here on
    pool = xp.get_default_memory_pool() if device == "gpu" else None
    if pool is not None:
        pool.free_all_blocks()
    kept = step()
    return kept, (pool.total_bytes() if pool is not None else None)


def pytorch(k, p, N):
    """Bytes of the tensors PyTorch's autograd saves in the forward pass, each storage once."""
    torch.manual_seed(0)
    model = torch_convmixer(DIM, DEPTH, k, p, CLASSES).train()
    x, y = (torch.tensor(a) for a in batch(N, np))
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.nn.functional.cross_entropy(model(x), y)
    return sum(storages.values())


def per_image(b1, b2, sizes):
    """(bytes per image, fixed bytes) from the bytes b1, b2 measured at two batch sizes."""
    (n1, n2) = sizes
    if b1 is None:
        return None, None
    slope = (b2 - b1) / (n2 - n1)
    return slope, b1 - slope * n1


# ----- output -------------------------------------------------------------------------------
def mib(b):
    return "      -" if b is None else f"{b / MiB:7.2f}"


def print_table(rows, device):
    hw = "high-water" if device == "gpu" else ""
    print(f"\nper image, MiB     {'variants':<9} {'tape':>7} {'PyTorch':>8} {'ratio':>6} {hw:>11}")
    for r in rows:
        ratio = f"{r['tape'] / r['torch']:6.2f}" if r.get("torch") else "     -"
        high = mib(r.get("high_water")) if device == "gpu" else ""
        print(f"k={r['k']} p={r['p']}            {r['variants']:<9} {mib(r['tape'])} "
              f"{mib(r.get('torch')):>8} {ratio} {high:>11}")


def t4_lines(rows):
    """Does the default recipe (k=5, p=2) at batch 512 fit a T4, from the measured high-water?"""
    lines = []
    for r in rows:
        if (r["k"], r["p"]) == (5, 2) and r.get("high_water"):
            need = r["high_water"] * T4_BATCH + r["high_water_fixed"]
            verdict = "fits" if need < T4_BYTES else "does not fit"
            lines.append(f"k=5 p=2, kernels {r['variants']}: {need / 2**30:.1f} GiB of pool at batch "
                         f"{T4_BATCH}: {verdict} a T4's 15 GiB")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--sizes", type=int, nargs=2, default=(2, 4), metavar=("N1", "N2"),
                        help="the two batch sizes (default 2 4)")
    parser.add_argument("--only", help="only this recipe, as k,p (e.g. 5,2)")
    parser.add_argument("--json", help="where to write results (default benchmarks/results/memory-DEVICE.json)")
    args = parser.parse_args(argv)
    try:
        backend.check_device(args.device)
    except backend.DeviceError as exc:
        sys.exit(f"error: {exc}")
    recipes = [r for r in RECIPES if args.only is None or args.only == f"{r[0]},{r[1]}"]
    rows = []
    for k, p in recipes:
        theirs = None
        if torch is not None:
            theirs = per_image(*[pytorch(k, p, N) for N in args.sizes], args.sizes)[0]
        for on in (True, False):
            with variants(args.device, on):
                (t1, h1), (t2, h2) = [ours(k, p, N, args.device) for N in args.sizes]
            tape = per_image(t1, t2, args.sizes)[0]
            high, fixed = per_image(h1, h2, args.sizes)
            rows.append(dict(k=k, p=p, variants="on" if on else "off", tape=tape, torch=theirs,
                             high_water=high, high_water_fixed=fixed))
            print(f"  done: k={k} p={p} {'on' if on else 'off'}", file=sys.stderr)
    print_table(rows, args.device)
    for line in t4_lines(rows):
        print(line)
    machine = {"platform": platform.platform(), "numpy": np.__version__,
               "torch": torch.__version__ if torch is not None else None}
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                    f"memory-{args.device}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"args": vars(args), "machine": machine, "rows": rows}, f, indent=1)
    print(f"\nwrote {out}")


@contextlib.contextmanager
def variants(device, on):
    """The fast variants on or off: on the CPU all of them (dispatch), on the GPU the CUDA kernels."""
    if device == "cpu":
        with (contextlib.nullcontext() if on else dispatch.reference_only()):
            yield
        return
    old = launch.set_enabled(on)
    try:
        yield
    finally:
        launch.set_enabled(old)


if __name__ == "__main__":
    main()
