"""tinyconvmixer: a from-scratch autograd engine on NumPy/CuPy that trains ConvMixer.

Where to start reading (the student's core, about 2,000 lines):

    engine/        Tensor, Function, backward(); the elementary ops; NumPy or CuPy
    functional/    the reference ops, plain xp code: conv2d (im2col), depthwise conv,
                   GELU, batch norm, pooling, linear, log-softmax and cross-entropy
    nn/            Module, Conv2d, BatchNorm2d, GELU, ..., ConvMixer
    optim.py       AdamW, the triangular learning-rate schedule, gradient clipping

Then the parts built on them:

    data/          CIFAR-10: reading, downloading, caching, augmenting, batching
    train/         python -m tinyconvmixer.train (the loop is train/loop.py)
    gradcheck/     python -m tinyconvmixer.gradcheck: backward against finite differences
    exercises/     python -m tinyconvmixer.exercises: write the backward passes yourself
    viz.py         draw the tape behind a tensor
    fast/          opt-in speed: faster variants of the reference ops (CPU blocks and
                   threads, CUDA kernels), registered against them (engine/dispatch.py)
    util/          atomic file writes, the console's status line, CuPy diagnosis
"""

from .engine import Function, Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"
__all__ = ["Tensor", "Function", "no_grad", "is_grad_enabled"]
