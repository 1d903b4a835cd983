// Depthwise convolution on channels-last (NHWC) arrays, stride 1, by direct summation.
//
//   out[n, y, x, c] = bias[c] + sum over i < KH, j < KW of  w[i, j, c] * in[n, y + i - PH, x + j - PW, c]
//
// (pixels outside the image count as zero: that is the padding). Set by launch.module:
// T (float or double), KH x KW the kernel, TH x TW the output tile of one block, CT the
// channels of one block. A block has CT x TH threads: threadIdx.x picks the channel
// (neighbouring threads read neighbouring addresses: coalesced loads), threadIdx.y the
// output row of the tile. Each block first copies the input tile it needs, with a halo
// of KH-1 rows and KW-1 columns, into shared memory; every input value is then read
// from global memory once instead of KH*KW times.
//
// The input gradient of a stride-1 convolution is itself such a convolution: of the
// upstream gradient, with the kernel flipped and padding KH-1-PH (see depthwise.py),
// so dw_conv_nhwc serves the forward and the backward pass.

#define IH (TH + KH - 1)        // input rows that TH output rows need
#define IW (TW + KW - 1)        // input columns that TW output columns need

// Copy the (IH, IW) input tile whose output tile starts at (y0, x0) into shared memory.
__device__ __forceinline__ void load_tile(T (*tile)[IW][CT], const T* __restrict__ in,
                                          int n, int c, int H, int W, int C,
                                          int y0, int x0, int PH, int PW)
{
    for (int p = threadIdx.y; p < IH * IW; p += TH) {
        int r = p / IW, q = p % IW;
        int y = y0 + r - PH, x = x0 + q - PW;
        T v = 0;
        if (c < C && y >= 0 && y < H && x >= 0 && x < W)
            v = in[(((long long)n * H + y) * W + x) * C + c];
        tile[r][q][threadIdx.x] = v;
    }
}

// grid (ceil(C / CT), tiles_h * tiles_w, N), block (CT, TH). out: (N, Ho, Wo, C).
extern "C" __global__ void dw_conv_nhwc(const T* __restrict__ in, const T* __restrict__ w,
                                        const T* __restrict__ bias, T* __restrict__ out,
                                        int H, int W, int C, int Ho, int Wo, int PH, int PW,
                                        int tiles_w, int has_bias)
{
    __shared__ T tile[IH][IW][CT];
    const int c = blockIdx.x * CT + threadIdx.x, n = blockIdx.z, ty = threadIdx.y;
    const int y0 = (blockIdx.y / tiles_w) * TH, x0 = (blockIdx.y % tiles_w) * TW;
    load_tile(tile, in, n, c, H, W, C, y0, x0, PH, PW);
    __syncthreads();
    if (c >= C) return;                       // past the last channel: this thread only helped load

    T acc[TW];                                // one output row of the tile, in registers
    const T b = has_bias ? bias[c] : T(0);
#pragma unroll
    for (int q = 0; q < TW; q++) acc[q] = b;
#pragma unroll
    for (int i = 0; i < KH; i++) {
        T row[IW];                            // input row ty + i: read once, used by all KW taps
#pragma unroll
        for (int q = 0; q < IW; q++) row[q] = tile[ty + i][q][threadIdx.x];
#pragma unroll
        for (int j = 0; j < KW; j++) {
            const T wij = w[(i * KW + j) * C + c];
#pragma unroll
            for (int q = 0; q < TW; q++) acc[q] += wij * row[q + j];
        }
    }
    const int y = y0 + ty;
    if (y >= Ho) return;
#pragma unroll
    for (int q = 0; q < TW; q++)
        if (x0 + q < Wo) out[(((long long)n * Ho + y) * Wo + x0 + q) * C + c] = acc[q];
}

// Weight gradient: dw[i, j, c] = sum over n, y, x of  g[n, y, x, c] * in[n, y + i - PH, x + j - PW, c].
// grid (ceil(C / CT), S), block (CT, TH). Block row s walks the (image, tile) items s, s + S, ...
// keeping KH*KW sums per thread in registers; the TH threads of a channel then add theirs, and
// the block writes partial[s, i, j, c]. The caller adds the S partials (a fixed order: the
// result does not depend on thread timing, unlike atomicAdd).
extern "C" __global__ void dw_wgrad_nhwc(const T* __restrict__ in, const T* __restrict__ g,
                                         T* __restrict__ partial,
                                         int N, int H, int W, int C, int Ho, int Wo, int PH, int PW,
                                         int tiles_h, int tiles_w)
{
    __shared__ T tile[IH][IW][CT];
    __shared__ T gtile[TH][TW][CT];
    __shared__ T red[TH][CT];
    const int c = blockIdx.x * CT + threadIdx.x, ty = threadIdx.y;
    T acc[KH][KW];
#pragma unroll
    for (int i = 0; i < KH; i++)
#pragma unroll
        for (int j = 0; j < KW; j++) acc[i][j] = 0;

    const int items = N * tiles_h * tiles_w;
    for (int t = blockIdx.y; t < items; t += gridDim.y) {
        const int n = t / (tiles_h * tiles_w), k = t % (tiles_h * tiles_w);
        const int y0 = (k / tiles_w) * TH, x0 = (k % tiles_w) * TW;
        __syncthreads();                      // everyone is done reading the previous item's tiles
        load_tile(tile, in, n, c, H, W, C, y0, x0, PH, PW);
        for (int p = ty; p < TH * TW; p += TH) {
            const int r = p / TW, q = p % TW, y = y0 + r, x = x0 + q;
            gtile[r][q][threadIdx.x] = (c < C && y < Ho && x < Wo)
                ? g[(((long long)n * Ho + y) * Wo + x) * C + c] : T(0);
        }
        __syncthreads();
        T grow[TW];                           // upstream gradient row ty of the tile
#pragma unroll
        for (int q = 0; q < TW; q++) grow[q] = gtile[ty][q][threadIdx.x];
#pragma unroll
        for (int i = 0; i < KH; i++) {
            T row[IW];
#pragma unroll
            for (int q = 0; q < IW; q++) row[q] = tile[ty + i][q][threadIdx.x];
#pragma unroll
            for (int j = 0; j < KW; j++)
#pragma unroll
                for (int q = 0; q < TW; q++) acc[i][j] += grow[q] * row[q + j];
        }
    }
    // Add up the TH threads of each channel, one tap at a time, through shared memory.
#pragma unroll
    for (int i = 0; i < KH; i++)
#pragma unroll
        for (int j = 0; j < KW; j++) {
            red[ty][threadIdx.x] = acc[i][j];
            __syncthreads();
            if (ty == 0 && c < C) {
                T s = 0;
                for (int r = 0; r < TH; r++) s += red[r][threadIdx.x];
                partial[((long long)blockIdx.y * KH * KW + i * KW + j) * C + c] = s;
            }
            __syncthreads();
        }
}
