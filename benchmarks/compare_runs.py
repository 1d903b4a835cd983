"""Put a finished tinyconvmixer run beside finished PyTorch reference runs, for the README.

    python benchmarks/compare_runs.py runs/ours runs/torch --out docs/results
    python benchmarks/compare_runs.py runs/ours runs/torch runs/torch-tv --out docs/results

OURS_DIR is a run folder of `python -m tinyconvmixer.train`, each TORCH_DIR
one of `benchmarks/torch_reference.py` (the first is the main comparison;
more, such as a --torchvision-transforms run, become extra rows). Into --out
it writes:

    <name>_metrics.csv, <name>_args.json, <name>_summary.json   copies, one set per run
    filters.png          tinyconvmixer's learned filters (copied)
    comparison.png       test accuracy and seconds per epoch of all runs, one figure
    summary.json         GPU model, versions, final/best accuracies, median epoch
                         times and the ratio tinyconvmixer / PyTorch
    table.md             the Markdown table that is also printed

It refuses (exit code 2, nothing written) a run that is not finished (fewer
rows in metrics.csv than its args.json asks for epochs, or no summary.json)
and runs given in the wrong order. Unless --allow-mismatch is given, it also
refuses runs whose recipes differ (model size, epochs, schedule, augmentation
settings, subsets, seed, kind of data, CPU vs GPU) and a first PyTorch run
with --amp, --tf32 or --torchvision-transforms (those belong in later rows):
only real, finished, comparable runs get published.

Making the two runs on a GPU machine whose commands stop after 10 minutes:
copy the data into the checkout once (`mkdir -p .data && cp
../shared/data/cifar10-jpeg.tar.gz .data/`; .data/ is git-ignored), then run,
as often as needed, from the repository root (both scripts resume from their
checkpoints, bash's $SECONDS keeps the whole inside the limit):

    export PYTHONUNBUFFERED=1 D=.data/cifar10-jpeg.tar.gz; mkdir -p runs
    if [ -f runs/torch/summary.json ]; then :
    elif [ -f runs/torch/last.pt ]; then python3 benchmarks/torch_reference.py --resume runs/torch/last.pt --time-limit 300
    else python3 benchmarks/torch_reference.py --device gpu --data $D --out runs/torch --time-limit 300; fi
    L=$((550 - SECONDS))
    if [ ! -f runs/ours/summary.json ] && [ $L -gt 60 ]; then
      if [ -f runs/ours/last.npz ]; then R="--resume runs/ours/last.npz"; else R="--data $D --out runs/ours"; fi
      timeout -s INT $L python3 -m tinyconvmixer.train --device gpu $R; fi
    tar czf $OUT/torch.tgz -C runs torch; tar czf $OUT/ours.tgz --exclude best.npz -C runs ours

carrying .data/cifar10-jpeg.tar.gz and the runs/torch and runs/ours folders
unpacked from the last call's tarballs (`tar xzf .../ours.tgz -C runs`).
tinyconvmixer.train saves an exact mid-epoch checkpoint on the SIGINT that
`timeout -s INT` sends; torch_reference.py stops between epochs (exit 3).
Then, here: python benchmarks/compare_runs.py runs/ours runs/torch --out docs/results
"""

import argparse
import json
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tinyconvmixer.train.files.runlog import (METRIC_FIELDS, OPTIONAL_FIELDS, read_metrics,  # noqa: E402
                                              short_number, significant, write_json)

# Settings that must agree for the two runs to differ only in the engine.
RECIPE = ("hdim", "depth", "kernel_size", "patch_size", "epochs", "batch_size", "lr_max", "wd", "clip_norm",
          "ra_n", "ra_m", "scale", "jitter", "reprob", "train_subset", "test_subset", "val_split", "seed")
DEFAULTS = dict(val_split=0)        # what a run written before a setting existed did


class RunError(RuntimeError):
    """A run folder that cannot be published."""


def read_json(path):
    with open(path) as f:
        return json.load(f)


def load_run(folder, engine):
    """metrics rows, args and summary of a finished run; RunError when it is not one."""
    what = "tinyconvmixer" if engine == "tinyconvmixer" else "PyTorch reference"
    if not os.path.isdir(folder):
        raise RunError(f"{folder}: no such run folder")
    files = {name: os.path.join(folder, name) for name in ("metrics.csv", "args.json", "summary.json")}
    for name in ("metrics.csv", "args.json"):
        if not os.path.isfile(files[name]):
            raise RunError(f"{folder} is not a {what} run folder: it has no {name}")
    args = read_json(files["args.json"])
    with open(files["metrics.csv"], newline="") as f:
        header = f.readline().strip().split(",")
    before_validation = [f for f in METRIC_FIELDS if f not in OPTIONAL_FIELDS]   # (runs made before --val-split)
    if header not in (METRIC_FIELDS, before_validation):
        raise RunError(f"{files['metrics.csv']} has columns {header}, expected {METRIC_FIELDS}")
    rows = read_metrics(files["metrics.csv"])
    epochs = int(args["epochs"])
    resume = ("python -m tinyconvmixer.train --resume " + os.path.join(folder, "last.npz")
              if engine == "tinyconvmixer" else
              "python benchmarks/torch_reference.py --resume " + os.path.join(folder, "last.pt"))
    if len(rows) < epochs:
        raise RunError(f"{folder} is not finished: {len(rows)} of {epochs} epochs in metrics.csv. "
                       f"Continue it with: {resume}")
    if [r["epoch"] for r in rows] != list(range(1, epochs + 1)):
        raise RunError(f"{files['metrics.csv']} does not hold epochs 1..{epochs} once each, in order")
    if not os.path.isfile(files["summary.json"]):
        raise RunError(f"{folder} has all {epochs} epochs but no summary.json: it did not finish "
                       f"(run {resume} to write it)")
    summary = read_json(files["summary.json"])
    if (summary.get("engine") == "pytorch") != (engine == "pytorch"):
        raise RunError(f"{folder} is not a {what} run (is the order OURS_DIR TORCH_DIR...?)")
    return dict(folder=folder, engine=engine, rows=rows, args=args, summary=summary, files=files)


def run_label(run):
    """A file-name-safe name: tinyconvmixer, pytorch, pytorch-torchvision, pytorch-amp, ..."""
    if run["engine"] == "tinyconvmixer":
        return "tinyconvmixer"
    a = run["args"]
    parts = ["pytorch"] + [flag for flag, on in (("torchvision", a.get("torchvision_transforms")),
                                                 ("amp", a.get("amp")), ("tf32", a.get("tf32"))) if on]
    return "-".join(parts)


def data_kind(source):
    """What data a run read, from its summary's "data" ("CIFAR-10 image folder: /path (...)"):
    the kind before the path, since the same archive may sit at different paths."""
    return source.split(":")[0].strip() if isinstance(source, str) else source


def check_comparable(runs):
    """RunError listing the recipe settings and data sizes that differ from the tinyconvmixer run."""
    ours, problems = runs[0], []
    for run in runs[1:]:
        for key in RECIPE:
            a, b = (r["args"].get(key, DEFAULTS.get(key)) for r in (ours, run))
            if a != b:
                problems.append(f"{key}: {a!r} in {ours['folder']}, {b!r} in {run['folder']}")
        for key in ("train_images", "val_images", "test_images", "data"):
            a, b = (r["summary"].get(key, 0 if key == "val_images" else None) for r in (ours, run))
            if key == "data":
                a, b = data_kind(a), data_kind(b)
            if a != b:
                problems.append(f"{key}: {a!r} in {ours['folder']}, {b!r} in {run['folder']}")
        kinds = [{"cuda": "gpu"}.get(r["args"].get("resolved_device"), r["args"].get("resolved_device"))
                 for r in (ours, run)]
        if kinds[0] != kinds[1]:
            problems.append(f"device: {kinds[0]} in {ours['folder']}, {kinds[1]} in {run['folder']}")
    main_row = runs[1]["args"]
    for flag in ("amp", "tf32", "torchvision_transforms"):
        if main_row.get(flag):
            problems.append(f"{flag} is on in {runs[1]['folder']}, the main PyTorch row: give first the run "
                            "that computes like tinyconvmixer (float32, its transforms), variants after it")
    if problems:
        raise RunError("the runs do not use the same recipe, so the engine would not be the only "
                       "difference:\n  " + "\n  ".join(problems) + "\n(--allow-mismatch publishes them anyway)")


def best_by_validation(rows):
    """(epoch, val_acc, test_acc) of the best validation accuracy (the first of equals), or None
    for a run without a validation set: test accuracy never chooses an epoch."""
    if any(r.get("val_acc") is None for r in rows):
        return None
    best = max(rows, key=lambda r: (r["val_acc"], -r["epoch"]))
    return best["epoch"], best["val_acc"], best["test_acc"]


def run_stats(run):
    rows, s = run["rows"], run["summary"]
    best = best_by_validation(rows)
    return dict(name=run["name"], folder=os.path.abspath(run["folder"]), engine=run["engine"],
                device=run["args"].get("resolved_device", s.get("device")), device_name=s.get("device_name"),
                final_test_acc=rows[-1]["test_acc"], best_epoch=best and best[0], best_val_acc=best and best[1],
                test_acc_at_best=best and best[2], epochs=len(rows),
                median_epoch_seconds=significant(statistics.median(r["seconds"] for r in rows)),
                median_images_per_s=significant(statistics.median(r["images_per_s"] for r in rows)),
                total_seconds=significant(sum(r["seconds"] for r in rows)),
                transforms=s.get("transforms", "tinyconvmixer"), amp=bool(run["args"].get("amp", False)),
                tf32=bool(run["args"].get("tf32", False)), versions=s.get("versions", {}))


def gpu_model(runs):
    """The device name the runs report (tinyconvmixer's summary may not name it; PyTorch's does)."""
    names = {r["summary"]["device_name"] for r in runs if r["summary"].get("device_name")}
    if len(names) > 1:
        raise RunError(f"the runs ran on different devices: {sorted(names)}")
    return names.pop() if names else None


def plot(runs, path):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_acc, ax_time = fig.subplots(1, 2)
    for run in runs:
        ep = [r["epoch"] for r in run["rows"]]
        ax_acc.plot(ep, [r["test_acc"] for r in run["rows"]], "o-", ms=3, label=run["name"])
        ax_time.plot(ep, [r["seconds"] for r in run["rows"]], "o-", ms=3, label=run["name"])
    ax_acc.set_title("test accuracy (%)")
    ax_time.set_title("seconds per epoch (training + evaluation)")
    ax_time.set_ylim(bottom=0)
    for ax in (ax_acc, ax_time):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110)


def markdown_table(stats):
    """One row per run; the last column is its median epoch time over the (first) PyTorch run's.
    With a validation set, the epoch it chooses and that epoch's test accuracy; never the best test
    accuracy, which would choose on the test set."""
    reference = stats[1]["median_epoch_seconds"]
    chosen = any(s["best_epoch"] for s in stats)
    lines = ["| run | final test acc | " + ("best val acc (epoch): test acc | " if chosen else "")
             + "median s / epoch | median img/s | time / PyTorch's |",
             "| --- | ---: | " + ("---: | " if chosen else "") + "---: | ---: | ---: |"]
    for s in stats:
        best = (f"{s['best_val_acc']:.2f}% ({s['best_epoch']}): {s['test_acc_at_best']:.2f}% | "
                if s["best_epoch"] else "- | " if chosen else "")
        lines.append(f"| {s['name']} | {s['final_test_acc']:.2f}% | {best}{short_number(s['median_epoch_seconds'])} | "
                     f"{short_number(s['median_images_per_s'])} | {_ratio(s['median_epoch_seconds'], reference)} |")
    return "\n".join(lines) + "\n"


def _ratio(a, b):
    return f"{a / b:.2f}x" if b else "?"


def compare(ours_dir, torch_dirs, out, allow_mismatch=False):
    """Check, copy, plot and summarise; returns the summary dict. Raises RunError before writing anything."""
    runs = [load_run(ours_dir, "tinyconvmixer")] + [load_run(d, "pytorch") for d in torch_dirs]
    if not os.path.isfile(os.path.join(ours_dir, "filters.png")):
        raise RunError(f"{ours_dir} has no filters.png (written when a tinyconvmixer run finishes)")
    if not allow_mismatch:
        check_comparable(runs)
    gpu = gpu_model(runs)
    seen = set()
    for run in runs:
        name, i = run_label(run), 2
        while name in seen:
            name, i = f"{run_label(run)}-{i}", i + 1
        seen.add(name)
        run["name"] = name

    os.makedirs(out, exist_ok=True)
    for run in runs:
        for kind, path in run["files"].items():
            stem, ext = os.path.splitext(kind)
            shutil.copyfile(path, os.path.join(out, f"{run['name']}_{stem}{ext}"))
    shutil.copyfile(os.path.join(ours_dir, "filters.png"), os.path.join(out, "filters.png"))
    plot(runs, os.path.join(out, "comparison.png"))

    stats = [run_stats(r) for r in runs]
    ours, reference = stats[0], stats[1]
    versions = {"tinyconvmixer": ours["versions"]}
    for s in stats[1:]:
        versions[s["name"]] = s["versions"]
    summary = dict(
        gpu=gpu, devices={s["name"]: s["device"] for s in stats}, versions=versions,
        recipe={k: runs[0]["args"].get(k) for k in RECIPE},
        final_test_acc={s["name"]: s["final_test_acc"] for s in stats},
        best_by_validation={s["name"]: s["best_epoch"] and dict(epoch=s["best_epoch"], val_acc=s["best_val_acc"],
                                                               test_acc=s["test_acc_at_best"]) for s in stats},
        median_epoch_seconds={s["name"]: s["median_epoch_seconds"] for s in stats},
        epoch_time_ratio=(ours["median_epoch_seconds"] / reference["median_epoch_seconds"]
                          if reference["median_epoch_seconds"] else None),
        epoch_time_ratio_means=f"median seconds per epoch, {ours['name']} / {reference['name']}",
        runs=[{k: v for k, v in s.items() if k != "versions"} for s in stats])
    write_json(os.path.join(out, "summary.json"), summary)
    table = markdown_table(stats)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    return summary, table


def main(argv=None):
    p = argparse.ArgumentParser(prog="python benchmarks/compare_runs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("ours_dir", metavar="OURS_DIR", help="a finished python -m tinyconvmixer.train run folder")
    p.add_argument("torch_dirs", metavar="TORCH_DIR", nargs="+",
                   help="finished benchmarks/torch_reference.py run folders (the first is the main row)")
    p.add_argument("--out", default="docs/results", metavar="DIR")
    p.add_argument("--allow-mismatch", action="store_true", help="publish runs whose recipes differ")
    args = p.parse_args(argv)
    try:
        summary, table = compare(args.ours_dir, args.torch_dirs, args.out, args.allow_mismatch)
    except (RunError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ratio = summary["epoch_time_ratio"]
    print(f"GPU: {summary['gpu']}; tinyconvmixer takes {'?' if ratio is None else f'{ratio:.2f}'}x PyTorch's "
          f"median epoch time; files in {args.out}\n")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
