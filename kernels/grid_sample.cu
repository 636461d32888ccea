// Bilinear grid sampling on an affine grid, as PyTorch's
// grid_sample(x, affine_grid(theta, [N, C, OH, OW]), mode='bilinear',
// padding_mode='zeros', align_corners=False), and its input gradient (the
// transposed scatter). The grid is computed in the kernel from theta [N, 2, 3]
// instead of being read from a [N, OH, OW, 2] buffer: the augment pipeline's
// grid is always affine, and this saves a large host-to-device copy per call.
//
// Launch code: src/backend/cuda/grid_sample.rs; CPU twin:
// src/backend/cpu/grid_sample.rs. Conventions as there: output pixel (oy, ox)
// has normalized base coordinates xn = (2*ox + 1 - OW) / OW (likewise yn), grid
// point g = theta[n] @ (xn, yn, 1), and samples the input at pixel
// coordinates ix = ((gx + 1) * W - 1) / 2, iy = ((gy + 1) * H - 1) / 2; the
// four neighbours outside the plane contribute zero. Taps are summed in the
// order nw, ne, sw, se, as the CPU does.
#include "common.cuh"

struct Bilinear {
  int x0, y0;            // top-left (north-west) neighbour
  float w[4];            // weights of nw, ne, sw, se
};

__device__ __forceinline__ Bilinear bilinear_at(const float* __restrict__ t, int ox, int oy, int oh,
                                                int ow, int h, int w) {
  const float xn = (float)(2 * ox + 1 - ow) / (float)ow;
  const float yn = (float)(2 * oy + 1 - oh) / (float)oh;
  const float gx = t[0] * xn + t[1] * yn + t[2];
  const float gy = t[3] * xn + t[4] * yn + t[5];
  const float ix = ((gx + 1.0f) * (float)w - 1.0f) * 0.5f;
  const float iy = ((gy + 1.0f) * (float)h - 1.0f) * 0.5f;
  const float fx = floorf(ix), fy = floorf(iy);
  Bilinear b;
  // Coordinates far outside the plane are clamped before the int conversion
  // (they contribute nothing either way); this keeps the cast defined.
  b.x0 = (int)fminf(fmaxf(fx, -2.0f), (float)w + 1.0f);
  b.y0 = (int)fminf(fmaxf(fy, -2.0f), (float)h + 1.0f);
  const float ax = ix - fx, ay = iy - fy;  // distances from the nw neighbour
  b.w[0] = (1.0f - ax) * (1.0f - ay);
  b.w[1] = ax * (1.0f - ay);
  b.w[2] = (1.0f - ax) * ay;
  b.w[3] = ax * ay;
  return b;
}

__device__ __forceinline__ bool inside(int x, int y, int h, int w) {
  return x >= 0 && x < w && y >= 0 && y < h;
}

// y[n, c, oy, ox] = sum of the four weighted neighbours of x[n, c]; one thread
// per output element, grid-stride.
extern "C" __global__ void grid_sample_affine_fwd(float* __restrict__ y, const float* __restrict__ x,
                                                  const float* __restrict__ theta, long long total,
                                                  int c, int h, int w, int oh, int ow) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long plane = i / ((long long)oh * ow);
    const int rest = (int)(i - plane * oh * ow);
    const int oy = rest / ow, ox = rest - oy * ow;
    const long long n = plane / c;
    const Bilinear b = bilinear_at(theta + n * 6, ox, oy, oh, ow, h, w);
    const float* xp = x + plane * h * w;
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int px = b.x0 + (k & 1), py = b.y0 + (k >> 1);
      if (inside(px, py, h, w)) acc += xp[(long long)py * w + px] * b.w[k];
    }
    y[i] = acc;
  }
}

// p[0..n) = 0: the accumulation target of grid_sample_affine_input_grad.
extern "C" __global__ void grid_sample_zero(float* __restrict__ p, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    p[i] = 0.0f;
}

// gx[n, c] += the weights of each output pixel's four neighbours times
// g[n, c, oy, ox] (the adjoint of grid_sample_affine_fwd); gx must be zeroed
// first. One thread per element of g; atomics, so the summation order on a
// GPU is not fixed (as in PyTorch's grid_sampler_2d_backward).
extern "C" __global__ void grid_sample_affine_input_grad(float* __restrict__ gx,
                                                         const float* __restrict__ g,
                                                         const float* __restrict__ theta,
                                                         long long total, int c, int h, int w,
                                                         int oh, int ow) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long plane = i / ((long long)oh * ow);
    const int rest = (int)(i - plane * oh * ow);
    const int oy = rest / ow, ox = rest - oy * ow;
    const long long n = plane / c;
    const Bilinear b = bilinear_at(theta + n * 6, ox, oy, oh, ow, h, w);
    float* gp = gx + plane * h * w;
    const float gi = g[i];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int px = b.x0 + (k & 1), py = b.y0 + (k >> 1);
      if (inside(px, py, h, w)) atomicAdd(&gp[(long long)py * w + px], gi * b.w[k]);
    }
  }
}
