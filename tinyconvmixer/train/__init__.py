"""Training ConvMixer on CIFAR-10: `python -m tinyconvmixer.train --help`.

    loop.py          the loop: forward, backward, step; evaluate (start here)
    run.py           a run: data, model, optimiser, resuming, the files of each epoch
    cli.py           the command: arguments, starting, stopping, exit codes
    args.py          the arguments and their checks; cpu_estimate.py: time and memory on a CPU
    progress.py      where a run stands, and the loss sums kept on the device
    checkpoint.py    checkpoints: atomic, no pickle, every header checked on reading
    runid.py         the settings that define a run, and may not change on resume
    files/           the run folder and its lock, metrics.csv and summary.json, signals
    report/          curves.png and filters.png, --diagnostics
"""

from .cli import main

__all__ = ["main"]
