"""GPU kernels written in CUDA C and launched with CuPy, for the ops where CuPy's
whole-array calls make too many passes over memory.

    depthwise.cu / .py   direct depthwise conv (forward, input and weight gradient), input tile in shared memory
    gelu.cu / .py        exact GELU and its slope in one pass
    batchnorm.cu / .py   per-channel sums, normalisation, and BatchNorm's input gradient
    adamw.cu / .py       AdamW over every parameter in one launch
    launch.py            compile (once per type and size), cache, and decide when a kernel applies
    nvrtc.py             compile every kernel configuration for the GPU without one (CI)

Each .py file holds a variant of a reference op (functional/, optim.py), which
fast/__init__.py registers; the reference is what the kernels are tested against
(tests/test_cuda_kernels.py, tests/test_cuda_adamw.py), on a GPU or, without one,
in the tests' CPU emulator (tests/support/cuda_emulator.py).
"""
