"""What a run keeps on disk and how it stops: the run folder and its lock (runfolder.py),
metrics.csv, summary.json and the progress bar (runlog.py), signals held back during a
step (interrupts.py)."""
