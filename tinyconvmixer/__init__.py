"""tinyconvmixer: a from-scratch autograd engine on NumPy/CuPy that trains ConvMixer."""

import os as _os

# Must happen before NumPy loads OpenBLAS. After every matrix product OpenBLAS's
# idle threads busy-wait for about 2^28 cycles (a tenth of a second) in case
# another product follows; meanwhile they hold the cores that our own threads
# need for the elementwise work in between (measured: GELU ran 1.8x slower right
# after a GEMM). With 2^8 cycles they go to sleep almost at once. A value the
# user set is kept. (See backend.py, "CPU tuning".)
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")

from .tensor import Tensor, no_grad, is_grad_enabled  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "is_grad_enabled"]
