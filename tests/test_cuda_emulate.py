"""The CUDA-on-CPU emulator: kernels give the right answers, and argument mistakes raise."""


import numpy as np
import pytest

import cuda_emulator as emulate

pytestmark = pytest.mark.skipif(not emulate.available(),
                                reason="no C++20 compiler (g++ 11+) for the CUDA emulator")

# One source for most tests: a single compile (about a second; cached afterwards).
SOURCE = r"""
typedef float T;

extern "C" __global__ void saxpy(T a, const T* __restrict__ x, T* __restrict__ y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

extern "C" __global__ void __launch_bounds__(64)
index2d(long long* out, int height, int width) {   // out[r, c] = 1000 * r + c on a 2-D grid of 2-D blocks
    int r = blockIdx.y * blockDim.y + threadIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= height || c >= width) return;           // early return: still fine at the end of the block
    out[r * width + c] = 1000LL * r + c;
}

template <bool SYNC> __device__ void block_sum(const float* x, float* sums) {
    __shared__ float partial[256];
    unsigned t = threadIdx.x;
    partial[t] = x[blockIdx.x * 256 + t];
    __syncthreads();
    for (unsigned s = 128; s > 0; s >>= 1) {
        if (t < s) partial[t] += partial[t + s];
        if (SYNC) __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = partial[0];
}
extern "C" __global__ void reduce(const float* x, float* sums) { block_sum<true>(x, sums); }
extern "C" __global__ void reduce_racy(const float* x, float* sums) { block_sum<false>(x, sums); }

extern "C" __global__ void count(float* counter, unsigned long long* total) {
    atomicAdd(counter, 1.0f);
    atomicAdd(total, 2ull);
}

extern "C" __global__ void scale_all(const long long* tables, const int* lengths, int k, float factor) {
    for (int j = 0; j < k; ++j) {                    // tables[j] is the address of array j
        float* a = (float*)tables[j];
        for (int i = threadIdx.x; i < lengths[j]; i += blockDim.x) a[i] *= factor;
    }
}

extern "C" __global__ void reverse_blocks(const float* x, float* y) {   // dynamic shared memory
    extern __shared__ float buf[];
    unsigned t = threadIdx.x, base = blockIdx.x * blockDim.x;
    buf[t] = x[base + t];
    __syncthreads();
    y[base + t] = buf[blockDim.x - 1 - t];
}

extern "C" __global__ void divergent(float* x) {
    if (threadIdx.x == 0) return;
    __syncthreads();                                 // thread 0 never gets here: a bug on the GPU too
    x[threadIdx.x] = 1.0f;
}
"""


@pytest.fixture(scope="module")
def mod():
    return emulate.RawModule(code=SOURCE)


def test_saxpy_grid_stride(mod, rng):
    n = 10_000
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    expected = np.float32(2.5) * x + y
    mod.get_function("saxpy")((3,), (128,), (np.float32(2.5), x, y, np.int32(n)))
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_2d_grid_of_2d_blocks(mod):
    height, width = 37, 45
    out = np.full((height, width), -1, np.int64)
    grid = ((width + 7) // 8, (height + 7) // 8)
    mod.get_function("index2d")(grid, (8, 8), (out, np.int32(height), np.int32(width)))
    rows, cols = np.indices((height, width))
    np.testing.assert_array_equal(out, 1000 * rows + cols)


def test_shared_memory_reduction(mod, rng):
    x = rng.standard_normal(256 * 5).astype(np.float32)
    sums = np.zeros(5, np.float32)
    mod.get_function("reduce")(5, 256, (x, sums))
    np.testing.assert_allclose(sums, x.reshape(5, 256).sum(axis=1), rtol=1e-5, atol=1e-5)


def test_racy_reduction_runs(mod, rng):
    # Without __syncthreads() in the loop the result depends on thread timing: often wrong, but not
    # always, so nothing is asserted about the values; only that a racy kernel finishes.
    x = np.ones(256 * 4, np.float32)
    for _ in range(3):
        sums = np.zeros(4, np.float32)
        mod.get_function("reduce_racy")(4, 256, (x, sums))
        assert np.all(np.isfinite(sums))


def test_atomic_add_counts_exactly(mod):
    counter, total = np.zeros(1, np.float32), np.zeros(1, np.uint64)
    mod.get_function("count")((7, 3), (16, 8), (counter, total))
    assert counter[0] == 7 * 3 * 16 * 8            # integers below 2**24 are exact in float32
    assert total[0] == 2 * 7 * 3 * 16 * 8


def test_pointer_table(mod):
    arrays = [np.arange(n, dtype=np.float32) for n in (5, 300, 1)]
    tables = np.array([a.ctypes.data for a in arrays], np.int64)
    lengths = np.array([a.size for a in arrays], np.int32)
    mod.get_function("scale_all")(1, 64, (tables, lengths, np.int32(3), np.float32(3.0)))
    for a in arrays:
        np.testing.assert_array_equal(a, 3 * np.arange(a.size, dtype=np.float32))


def test_dynamic_shared_memory(mod):
    x = np.arange(3 * 32, dtype=np.float32)
    y = np.zeros_like(x)
    mod.get_function("reverse_blocks")(3, 32, (x, y), shared_mem=32 * 4)
    np.testing.assert_array_equal(y, x.reshape(3, 32)[:, ::-1].ravel())


def test_divergent_syncthreads_raises(mod):
    with pytest.raises(RuntimeError, match="__syncthreads"):
        mod.get_function("divergent")(2, 32, (np.zeros(32, np.float32),))


def test_argument_types_are_checked(mod):
    saxpy = mod.get_function("saxpy")
    x, y, n = np.zeros(4, np.float32), np.zeros(4, np.float32), np.int32(4)
    with pytest.raises(TypeError, match=r"saxpy.*'x'.*float32.*float64"):
        saxpy(1, 4, (np.float32(1), x.astype(np.float64), y, n))
    with pytest.raises(TypeError, match=r"'a'.*float32 scalar.*Python float"):
        saxpy(1, 4, (1.0, x, y, n))
    with pytest.raises(TypeError, match=r"'n' \(int\).*int32.*Python int"):
        saxpy(1, 4, (np.float32(1), x, y, 4))
    with pytest.raises(TypeError, match=r"'n' \(int\).*int32.*int64"):
        saxpy(1, 4, (np.float32(1), x, y, np.int64(4)))
    with pytest.raises(TypeError, match="takes 4 arguments"):
        saxpy(1, 4, (np.float32(1), x, y))
    with pytest.raises(TypeError, match="non-contiguous"):
        saxpy(1, 4, (np.float32(1), x, np.zeros(8, np.float32)[::2], n))
    with pytest.raises(ValueError, match="1024"):
        saxpy(1, (64, 32), (np.float32(1), x, y, n))
    with pytest.raises(ValueError, match="65535"):                      # grid.y and grid.z limits
        saxpy((1, 70000), 4, (np.float32(1), x, y, n))
    with pytest.raises(ValueError, match="positive"):                   # CuPy would run 1 block
        saxpy((0,), 4, (np.float32(1), x, y, n))
    with pytest.raises(ValueError, match="no kernel 'saxpi'"):
        mod.get_function("saxpi")


def test_typedef_double():
    source = r"""typedef double T;   // the wrappers prepend this line to pick the precision
extern "C" __global__ void axpy(T a, const T* x, T* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i] + normcdf(0.0) - 0.5;
}
"""
    axpy = emulate.RawModule(code=source).get_function("axpy")
    x, y = np.linspace(0, 1, 100), np.ones(100)
    axpy(4, 32, (np.float64(3.0), x, y, np.int64(100)))
    np.testing.assert_allclose(y, 3 * x + 1, rtol=1e-15)
    with pytest.raises(TypeError, match="float64"):
        axpy(4, 32, (np.float64(3.0), x.astype(np.float32), y, np.int64(100)))


def test_compile_error_shows_gxx_message_and_source_line():
    source = 'extern "C" __global__ void broken(float* x) {\n    x[0] = undeclared_name;\n}\n'
    with pytest.raises(RuntimeError, match=r"(?s)kernel\.cu:2:.*undeclared_name"):
        emulate.RawModule(code=source).get_function("broken")



def test_which_kernels_run_without_barriers():
    # Threads that never meet (no __syncthreads, no __shared__) may run on a few host threads.
    source = r"""
    __device__ float twice(float v) { return 2 * v; }
    extern "C" __global__ void scale(float* x, int n) {
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) x[i] = twice(x[i]);
    }
    extern "C" __global__ void shift(float* x) { __shared__ float s[32]; s[threadIdx.x] = x[threadIdx.x];
        __syncthreads(); x[threadIdx.x] = s[31 - threadIdx.x]; }
    """
    assert emulate._independent_kernels(source) == {"scale"}
    # A helper outside the kernels that synchronises: no kernel is trusted to run without barriers.
    assert emulate._independent_kernels(source + "__device__ void wait() { __syncthreads(); }") == set()
    assert emulate._independent_kernels(SOURCE) == set()          # its block_sum template meets


def test_independent_kernel_covers_every_thread(rng):
    mod = emulate.RawModule(code=r"""
    extern "C" __global__ void ids(long long* out) {          // every (block, thread) writes its slot once
        long long t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
        long long b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
        long long n = blockDim.x * blockDim.y * blockDim.z;
        out[b * n + t] += b * n + t + 1;
    }""")
    out = np.zeros(3 * 2 * 2 * (7 * 3 * 2), np.int64)
    mod.get_function("ids")((3, 2, 2), (7, 3, 2), (out,))
    np.testing.assert_array_equal(out, np.arange(1, out.size + 1))


def test_the_road_setting_is_checked(mod, monkeypatch):
    monkeypatch.setenv("TINYCONVMIXER_EMULATOR", "thread")          # a typo is an error, not fibers
    with pytest.raises(ValueError, match="'fibers'.*'threads'"):
        mod.get_function("reduce")(1, 256, (np.ones(256, np.float32), np.zeros(1, np.float32)))


def test_a_thread_may_use_half_a_megabyte_of_local_memory():
    """A GPU thread may hold 512 KiB of local memory; the fibers' stacks are large enough for it."""
    mod = emulate.RawModule(code=r"""
    extern "C" __global__ void big_local(double* out) {
        __shared__ double total;
        volatile double local[60000];                  // 480 KB in this thread's frame
        for (int i = 0; i < 60000; ++i) local[i] = i;
        if (threadIdx.x == 0) total = 0;
        __syncthreads();
        if (threadIdx.x == 1) total = local[59999];
        __syncthreads();
        out[threadIdx.x] = total;
    }""")
    out = np.zeros(4)
    mod.get_function("big_local")(1, 4, (out,))
    np.testing.assert_array_equal(out, 59999.0)
