"""Opt-in speed: faster variants of the reference ops, registered against them.

    import tinyconvmixer.fast      # from now on, ops take a faster variant where one applies

The reference ops (functional/, the AdamW update of optim.py) are plain xp code,
written to be read. Each variant here computes the same thing for some inputs
only, and says which (its `when`); engine/dispatch.py runs the first variant
that applies, else the reference. The training command and the benchmarks
import this package; TINYCONVMIXER_REFERENCE=1 (or dispatch.reference_only())
runs everything on the references alone, and every variant is tested against
its reference (tests/test_fast_variants.py).

    op                 GPU (CUDA kernels, cuda/)      CPU (blocks and threads, cpu/)
    DepthwiseConv2d    DepthwiseKernels (stride 1)     DepthwiseBlocked (stride 1)
    GELU               GELUKernel (exact)              GELUChunked
    BatchNorm          BatchNormKernels                BatchNormCPU (channels-last rows)
    adamw_updates      one launch for every parameter  -

The GPU variants come first, so that where both could apply (the CUDA kernels
run on NumPy arrays in the tests' emulator) the kernels are tested.
"""

from ..engine import dispatch
from ..functional.activation import GELU
from ..functional.depthwise import DepthwiseConv2d
from ..functional.normalization import BatchNorm
from ..optim import adamw_updates
from .cpu import depthwise as cpu_depthwise, gelu as cpu_gelu, rowwise as cpu_rowwise
from .cuda import adamw as cuda_adamw, batchnorm as cuda_batchnorm
from .cuda import depthwise as cuda_depthwise, gelu as cuda_gelu

VARIANTS = [
    (DepthwiseConv2d, cuda_depthwise.DepthwiseKernels, cuda_depthwise.supported),
    (DepthwiseConv2d, cpu_depthwise.DepthwiseBlocked, cpu_depthwise.when),
    (GELU, cuda_gelu.GELUKernel, cuda_gelu.when),
    (GELU, cpu_gelu.GELUChunked, cpu_gelu.when),
    (BatchNorm, cuda_batchnorm.BatchNormKernels, cuda_batchnorm.when),
    (BatchNorm, cpu_rowwise.BatchNormCPU, cpu_rowwise.when),
    (adamw_updates, cuda_adamw.fused, cuda_adamw.when),
]

for _reference, _variant, _when in VARIANTS:
    dispatch.register(_reference, _variant, _when)
