// Batch normalisation in training mode on an (M, C) array: M = N*H*W rows of C channels
// (channels-last memory), in three kernels (see functional/normalization.py for the math):
//   channel_sums   per channel sum(a) and sum(a * b), accumulated in double:
//                  (x, x) gives the batch mean and variance, (g, x) the weight and bias gradients
//   bn_normalize   y = (x - mean[c]) * scale[c] + shift[c]
//   bn_backward    dx = kg[c] * g - kx[c] * (x - mean[c]) - k0[c]
// RY (= blockDim.y) is set by launch.module; blockDim.x is 32 channels.

// grid (ceil(C / 32), S), block (32, RY). Thread (tx, ty) of block row s adds rows
// s*RY + ty, then every S*RY-th row; the RY partial sums of a channel meet in shared memory,
// and the block writes partial[s, 0, c] = sum(a), partial[s, 1, c] = sum(a * b). The caller
// adds the S rows of partial: a fixed order, so the sums do not depend on thread timing.
extern "C" __global__ void channel_sums(const T* __restrict__ a, const T* __restrict__ b,
                                        double* __restrict__ partial, long long M, int C)
{
    __shared__ double s1[RY][32], s2[RY][32];
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    double acc1 = 0, acc2 = 0;
    if (c < C)
        for (long long m = blockIdx.y * (long long)RY + ty; m < M; m += (long long)gridDim.y * RY) {
            const double va = a[m * C + c];
            acc1 += va;
            acc2 += va * (double)b[m * C + c];
        }
    s1[ty][tx] = acc1;
    s2[ty][tx] = acc2;
    __syncthreads();
    if (ty == 0 && c < C) {
        double t1 = 0, t2 = 0;
        for (int r = 0; r < RY; r++) { t1 += s1[r][tx]; t2 += s2[r][tx]; }
        partial[2LL * blockIdx.y * C + c] = t1;
        partial[(2LL * blockIdx.y + 1) * C + c] = t2;
    }
}

// Elementwise over the n = M*C values, channel c = i % C; grid-stride loops.
extern "C" __global__ void bn_normalize(const T* __restrict__ x, const T* __restrict__ mean,
                                        const T* __restrict__ scale, const T* __restrict__ shift,
                                        T* __restrict__ y, long long n, int C)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)(i % C);
        y[i] = (x[i] - mean[c]) * scale[c] + shift[c];
    }
}

extern "C" __global__ void bn_backward(const T* __restrict__ g, const T* __restrict__ x,
                                       const T* __restrict__ mean, const T* __restrict__ kg,
                                       const T* __restrict__ kx, const T* __restrict__ k0,
                                       T* __restrict__ dx, long long n, int C)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)(i % C);
        dx[i] = kg[c] * g[i] - kx[c] * (x[i] - mean[c]) - k0[c];
    }
}
