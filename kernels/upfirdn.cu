// upfirdn2d: upsample by zero insertion, pad (negative crops), FIR filter,
// downsample, on each [H, W] plane of x.
//
// Launch code: src/backend/cuda/upfirdn.rs; CPU twin: src/backend/cpu/upfirdn.rs.
// Conventions as there: output t of an axis reads the upsampled, padded signal
// at t*down + j - p0 for filter position j (0 <= j < k); that is input pixel i
// when t*down + j - p0 == i*up. Correlation uses tap j (flip_filter),
// convolution tap k-1-j. Taps are summed in ascending j, rows then columns, as
// the CPU does, in fp32.
//
// - upfirdn2d_general: any up/down/pad/filter size; one thread per output
//   pixel, grid-stride. The fallback, and the oracle of the fast paths.
// - upfirdn2d_up2_k4 / upfirdn2d_down_k4: the StyleGAN2 hot cases (4x4
//   filter, any padding; up 2, or down 2 or 1 on both axes: the
//   discriminator's filter before its stride-2 conv): one block per output
//   tile of one plane, the input tile and its halo staged in shared memory
//   (zeros where the padded signal has no input pixel), the 16 taps passed by
//   value (already flipped as needed and scaled by the gain) so they sit in
//   registers with compile-time indices.
#include "common.cuh"

// The first filter position j >= 0 at which output coordinate c = t*down - p0
// meets a real (not inserted) pixel: c + j >= 0 and (c + j) % up == 0.
__device__ __forceinline__ int first_tap(int c, int up) {
  int j = c < 0 ? -c : 0;
  const int r = (c + j) % up;
  return r == 0 ? j : j + up - r;
}

extern "C" __global__ void upfirdn2d_general(float* __restrict__ y, const float* __restrict__ x,
                                             const float* __restrict__ f, long long planes, int h,
                                             int w, int oh, int ow, int fh, int fw, int upx,
                                             int upy, int downx, int downy, int padx0, int pady0,
                                             int flip, float gain) {
  const long long n = planes * oh * ow;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    const long long plane = i / ((long long)oh * ow);
    const int rest = (int)(i - plane * oh * ow);
    const int ty = rest / ow, tx = rest - ty * ow;
    const float* xp = x + plane * h * w;
    const int cy = ty * downy - pady0, cx = tx * downx - padx0;
    const int jx0 = first_tap(cx, upx);
    float acc = 0.0f;
    for (int jy = first_tap(cy, upy); jy < fh; jy += upy) {
      const int iy = (cy + jy) / upy;
      if (iy >= h) break;
      const float* frow = f + (flip ? jy : fh - 1 - jy) * fw;
      const float* xrow = xp + (long long)iy * w;
      for (int jx = jx0; jx < fw; jx += upx) {
        const int ix = (cx + jx) / upx;
        if (ix >= w) break;
        acc += xrow[ix] * (frow[flip ? jx : fw - 1 - jx] * gain);
      }
    }
    y[i] = acc;
  }
}

// The 16 taps of a 4x4 filter as correlation weights: t[jy*4 + jx] multiplies
// the padded signal at (c_y + jy, c_x + jx); flipped and scaled by the host.
struct Taps16 {
  float t[16];
};

// Tile sizes of the fast paths (must match src/backend/cuda/upfirdn.rs).
#define UP2_T 16   // input pixels per block and axis: 32x32 outputs, 16x16 threads
#define DOWN_T 16 // outputs per block and axis: 16x16 threads, up to 34x34 inputs

// Loads rows [r0, r0 + th) x cols [c0, c0 + tw) of the plane into tile[th][tw],
// zero outside the plane. Every thread of the block calls it.
__device__ __forceinline__ void stage_tile(float* tile, const float* __restrict__ xp, int h, int w,
                                           int r0, int c0, int th, int tw) {
  const int tid = threadIdx.x + blockDim.x * threadIdx.y, nt = blockDim.x * blockDim.y;
  for (int k = tid; k < th * tw; k += nt) {
    const int r = k / tw, c = k - r * tw;
    const int iy = r0 + r, ix = c0 + c;
    tile[k] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? xp[(long long)iy * w + ix] : 0.0f;
  }
}

// up = 2, down = 1, 4x4 filter, any padding. Per axis, with u = t - p0, output
// t reads input pixels i0 = floor((u + 1) / 2) and i0 + 1: with taps (0, 2)
// when u is even, (1, 3) when odd. So the two outputs t = 2*i0 - 1 + p0 and
// 2*i0 + p0 share the inputs (i0, i0 + 1): each thread takes one input pixel
// i0 per axis and writes the 2x2 outputs that share it (16 MACs from 4 shared
// loads). Block (UP2_T, UP2_T) covers i0 in [i00, i00 + UP2_T) on each axis,
// needing UP2_T + 1 inputs per axis. blockIdx.z walks the planes.
extern "C" __global__ void upfirdn2d_up2_k4(float* __restrict__ y, const float* __restrict__ x,
                                            long long planes, int h, int w, int oh, int ow,
                                            int padx0, int pady0, int i0x_min, int i0y_min,
                                            Taps16 taps) {
  __shared__ float tile[(UP2_T + 1) * (UP2_T + 1)];
  const int i00x = i0x_min + blockIdx.x * UP2_T, i00y = i0y_min + blockIdx.y * UP2_T;
  const int i0x = i00x + threadIdx.x, i0y = i00y + threadIdx.y;
  for (long long plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    __syncthreads();  // the previous plane may still be reading the tile
    stage_tile(tile, x + plane * h * w, h, w, i00y, i00x, UP2_T + 1, UP2_T + 1);
    __syncthreads();
    const float* s = tile + threadIdx.y * (UP2_T + 1) + threadIdx.x;
    const float a00 = s[0], a01 = s[1], a10 = s[UP2_T + 1], a11 = s[UP2_T + 2];
    float* yp = y + plane * oh * ow;
    // Output row/col of the odd (taps 1, 3) and even (taps 0, 2) member.
    const int ty[2] = {2 * i0y - 1 + pady0, 2 * i0y + pady0};
    const int tx[2] = {2 * i0x - 1 + padx0, 2 * i0x + padx0};
#pragma unroll
    for (int py = 0; py < 2; ++py) {
      if (ty[py] < 0 || ty[py] >= oh) continue;
      const int jy = py == 0 ? 1 : 0;  // first tap row; the second is jy + 2
#pragma unroll
      for (int px = 0; px < 2; ++px) {
        if (tx[px] < 0 || tx[px] >= ow) continue;
        const int jx = px == 0 ? 1 : 0;
        float acc = 0.0f;
        acc += a00 * taps.t[jy * 4 + jx];
        acc += a01 * taps.t[jy * 4 + jx + 2];
        acc += a10 * taps.t[(jy + 2) * 4 + jx];
        acc += a11 * taps.t[(jy + 2) * 4 + jx + 2];
        yp[(long long)ty[py] * ow + tx[px]] = acc;
      }
    }
  }
}

// up = 1, down = 1 or 2 (`down`, both axes), 4x4 filter, any padding.
// Output t reads input pixels down*t - p0 + j, j = 0..3. Block
// (DOWN_T, DOWN_T) writes a DOWN_T^2 output tile from an input tile of
// (DOWN_T - 1)*down + 4 pixels per axis (34 for down 2, 19 for down 1); the
// row stride is odd so the stride-2 reads of a warp fall into distinct banks.
#define DOWN_IN (2 * DOWN_T + 2)
#define DOWN_LD (DOWN_IN + 1)
extern "C" __global__ void upfirdn2d_down_k4(float* __restrict__ y, const float* __restrict__ x,
                                             long long planes, int h, int w, int oh, int ow,
                                             int padx0, int pady0, int down, Taps16 taps) {
  __shared__ float tile[DOWN_IN * DOWN_LD];
  const int t0x = blockIdx.x * DOWN_T, t0y = blockIdx.y * DOWN_T;
  const int tx = t0x + threadIdx.x, ty = t0y + threadIdx.y;
  const int r0 = down * t0y - pady0, c0 = down * t0x - padx0;
  const int in = (DOWN_T - 1) * down + 4;  // tile extent per axis, <= DOWN_IN
  const int tid = threadIdx.x + blockDim.x * threadIdx.y, nt = blockDim.x * blockDim.y;
  for (long long plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    __syncthreads();  // the previous plane may still be reading the tile
    const float* xp = x + plane * h * w;
    for (int k = tid; k < in * in; k += nt) {
      const int r = k / in, c = k - r * in;
      const int iy = r0 + r, ix = c0 + c;
      tile[r * DOWN_LD + c] =
          (iy >= 0 && iy < h && ix >= 0 && ix < w) ? xp[(long long)iy * w + ix] : 0.0f;
    }
    __syncthreads();
    if (ty < oh && tx < ow) {
      const float* s = tile + down * (threadIdx.y * DOWN_LD + threadIdx.x);
      float acc = 0.0f;
#pragma unroll
      for (int jy = 0; jy < 4; ++jy)
#pragma unroll
        for (int jx = 0; jx < 4; ++jx) acc += s[jy * DOWN_LD + jx] * taps.t[jy * 4 + jx];
      y[plane * oh * ow + (long long)ty * ow + tx] = acc;
    }
  }
}
