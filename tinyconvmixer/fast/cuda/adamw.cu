// AdamW for every parameter of the model in ONE kernel launch ("multi-tensor apply").
//
// Why: the plain update (optim.py) runs about ten whole-array CuPy operations per
// parameter. ConvMixer has ~70 parameter tensors, most of them tiny (a bias, a
// BatchNorm scale), so one optimiser step costs ~700 kernel launches that each do
// almost nothing: the GPU waits on Python and on launch overhead. PyTorch's
// fused/foreach AdamW does what this file does: a table of addresses lists every
// parameter's four arrays, the work is cut into equal chunks, and one launch of
// one block per chunk updates everything. Each element is read and written once.
//
// Tables (built by adamw.py; T is float or double, prepended by launch.module):
//   ptrs[4k .. 4k+3]  addresses of tensor k's p, grad, exp_avg (m), exp_avg_sq (v),
//                     C-contiguous arrays of sizes[k] elements of T
//   hyper[6k .. 6k+5] tensor k's decay = 1 - lr*wd, beta1, beta2, eps,
//                     step_size = lr / (1 - beta1^t), sqrt_bc2 = sqrt(1 - beta2^t)
//                     (per tensor: groups differ in settings, tensors in their step t)
//   chunk_tensor[b], chunk_start[b]   block b updates tensor chunk_tensor[b], elements
//                     [chunk_start[b], chunk_start[b] + CHUNK) clipped to its size
// CHUNK is #define'd by the wrapper (e.g. 2048: a few elements per thread).

extern "C" __global__ void adamw_multi(const long long* ptrs, const long long* sizes, const double* hyper,
                                       const int* chunk_tensor, const long long* chunk_start) {
    const int k = chunk_tensor[blockIdx.x];
    T* p = (T*)ptrs[4 * k];
    const T* g = (const T*)ptrs[4 * k + 1];
    T* m = (T*)ptrs[4 * k + 2];
    T* v = (T*)ptrs[4 * k + 3];

    // Rounded to T once, as NumPy/CuPy round a Python float that meets a float32 array;
    // 1 - beta is taken in double first, as Python does in the reference.
    const double* h = hyper + 6 * k;
    const T decay = (T)h[0], one_minus_beta1 = (T)(1.0 - h[1]);
    const T beta2 = (T)h[2], one_minus_beta2 = (T)(1.0 - h[2]);
    const T eps = (T)h[3], step_size = (T)h[4], sqrt_bc2 = (T)h[5];

    const long long start = chunk_start[blockIdx.x];
    const long long end = min(start + CHUNK, sizes[k]);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {   // block-stride loop
        const T gi = g[i];
        T mi = m[i], vi = v[i], pi = p[i];
        pi = pi * decay;                                  // decoupled weight decay, first
        mi = mi + one_minus_beta1 * (gi - mi);            // first moment
        vi = vi * beta2 + one_minus_beta2 * (gi * gi);    // second moment
        pi = pi - step_size * (mi / (sqrt(vi) / sqrt_bc2 + eps));
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}
