// Exact GELU: y = x Phi(x) and, where a backward pass will follow, its slope
// Phi(x) + x phi(x) for that pass (see functional/activation.py: the tape keeps the slope,
// not x). The plain xp path makes about eight passes over memory; here each element is read
// once and written once or twice. The arrays are flat (any dense layout, walked in memory
// order).

__device__ __forceinline__ float normal_cdf(float x) { return normcdff(x); }
__device__ __forceinline__ double normal_cdf(double x) { return normcdf(x); }
__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return exp(x); }

__device__ __forceinline__ T gelu_slope(T v, T cdf)
{
    return cdf + v * exp_(T(-0.5) * v * v) * T(0.39894228040143267794);   // 1/sqrt(2 pi)
}

// grid-stride loop: any grid size covers all n elements.
// want_slope = 0 (under no_grad): y only, slope is not written.
extern "C" __global__ void gelu_forward(const T* __restrict__ x, T* y, T* slope,
                                        long long n, int want_slope)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const T v = x[i], cdf = normal_cdf(v);
        y[i] = v * cdf;
        if (want_slope)
            slope[i] = gelu_slope(v, cdf);
    }
}
