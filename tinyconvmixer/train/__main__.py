"""python -m tinyconvmixer.train: see cli.py."""

import sys

from ..fast.cpu import tuning

if __name__ == "__main__":
    tuning.relaunch_with_blas_timeout()      # OpenBLAS's setting, which counts only as it loads

from .cli import main  # noqa: E402  (after the relaunch: nothing more is loaded twice)

if __name__ == "__main__":
    sys.exit(main())
