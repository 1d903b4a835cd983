"""GPU kernels written in CUDA C and launched with CuPy; emulate.py runs them on the CPU for tests."""
