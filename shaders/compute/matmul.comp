#version 450
// C = A·B, or A·Bᵀ when transpose_b: A is n×k, B is k×m (m×k transposed), C is n×m; row-major fp32.
// A 16×16 output tile per workgroup of 16×8 threads (two outputs each), K streamed through shared
// memory 16 at a time. Partial tiles (sizes that are not multiples of 16) load zeros and skip writes.
// NaN and ±inf propagate as IEEE arithmetic gives them (no special cases). Bindings: 0 A, 1 B, 2 C.
// One dispatch takes the inner indices [k_begin, k_end) (k_begin a multiple of 16); with
// `accumulate` it adds to C instead of overwriting it. The host splits K into several dispatches
// where the device limits the loop iterations of an invocation (lavapipe: 65535, all loops
// together; see vk::DeviceLimits::max_loop_iterations). The sum runs in the same order either way.

layout(local_size_x = 16, local_size_y = 8) in;
const uint TS = 16;

layout(push_constant) uniform Params {
  uint n;
  uint k;
  uint m;
  uint transpose_b;
  uint k_begin;
  uint k_end;
  uint accumulate;
} pc;

layout(std430, binding = 0) readonly buffer ABuf { float a[]; };
layout(std430, binding = 1) readonly buffer BBuf { float b[]; };
layout(std430, binding = 2) buffer CBuf { float c[]; };

shared float sA[TS][TS + 1];  // sA[row][kk]
shared float sB[TS][TS + 1];  // sB[kk][col]

void main() {
  const uint tx = gl_LocalInvocationID.x;
  const uint ty = gl_LocalInvocationID.y;
  const uint col0 = gl_WorkGroupID.x * TS;
  const uint row0 = gl_WorkGroupID.y * TS;
  const uint col = col0 + tx;
  float acc0 = 0.0;
  float acc1 = 0.0;
  if (pc.accumulate != 0u && col < pc.m) {
    if (row0 + ty < pc.n) acc0 = c[(row0 + ty) * pc.m + col];
    if (row0 + ty + 8u < pc.n) acc1 = c[(row0 + ty + 8u) * pc.m + col];
  }
  for (uint k0 = pc.k_begin; k0 < pc.k_end; k0 += TS) {
    for (uint h = 0u; h < 2u; ++h) {
      const uint rr = ty + h * 8u;
      const uint ar = row0 + rr;
      const uint ac = k0 + tx;
      sA[rr][tx] = (ar < pc.n && ac < pc.k) ? a[ar * pc.k + ac] : 0.0;
      if (pc.transpose_b != 0u) {
        // B is m×k: read along k (contiguous) and store transposed.
        const uint bc = col0 + rr;
        const uint bk = k0 + tx;
        sB[tx][rr] = (bc < pc.m && bk < pc.k) ? b[bc * pc.k + bk] : 0.0;
      } else {
        const uint bk = k0 + rr;
        const uint bc = col0 + tx;
        sB[rr][tx] = (bk < pc.k && bc < pc.m) ? b[bk * pc.m + bc] : 0.0;
      }
    }
    barrier();
    for (uint kk = 0u; kk < TS; ++kk) {
      const float bv = sB[kk][tx];
      acc0 += sA[ty][kk] * bv;
      acc1 += sA[ty + 8u][kk] * bv;
    }
    barrier();
  }
  if (col < pc.m) {
    if (row0 + ty < pc.n) c[(row0 + ty) * pc.m + col] = acc0;
    if (row0 + ty + 8u < pc.n) c[(row0 + ty + 8u) * pc.m + col] = acc1;
  }
}
