"""GPU kernels written in CUDA C and launched with CuPy, for the ops where CuPy's
whole-array calls make too many passes over memory.

    depthwise.cu / .py   direct depthwise conv (forward, input and weight gradient), input tile in shared memory
    gelu.cu / .py        exact GELU and its slope in one pass
    batchnorm.cu / .py   per-channel sums, normalisation, and BatchNorm's input gradient
    adamw.cu / .py       AdamW over every parameter in one launch
    launch.py            compile (once per type and size), cache, and decide when a kernel applies
    emulate.py           run the same kernels on the CPU with g++, so tests need no GPU

Each op keeps its plain xp code (in functional/ and optim.py) as the reference the
kernels are tested against (tests/test_cuda_kernels.py, tests/test_cuda_adamw.py).
"""
