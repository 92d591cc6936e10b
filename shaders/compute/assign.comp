#version 450
// Per-row argmax assignment, one workgroup per row of X (N×d), fp32. Two operations by define:
//   (default)  hash_rotations:   angular LSH, bucket_i = argmax over [x_i·R, −x_i·R] (R is d×count);
//              candidates in the order x·R_0, −x·R_0, x·R_1, …; −x·R_j is bucket count + j.
//   CENTROID   nearest_centroid: argmin_c ‖C_c‖² − 2·x_i·C_c over the rows of C (count×d).
// As attn::CpuBackend: strict comparisons in candidate order (the first of equal values wins), NaN
// and −inf scores never win, and a row where nothing wins gets 0.
// Bindings: 0 X, 1 P (R or C), 2 OUT (N, int).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

layout(local_size_x = 64) in;
const uint WG = 64;
const uint NONE = 0xffffffffu;

layout(push_constant) uniform Params {
  uint n;
  uint d;
  uint count;  // hash: buckets/2 (columns of R); centroid: centroids
  uint groups_x;
} pc;

layout(std430, binding = 0) readonly buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly buffer PBuf { float p[]; };
layout(std430, binding = 2) writeonly buffer OutBuf { int result[]; };

shared float sVal[WG];
shared uint sPos[WG];

void main() {
  const uint row = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  if (row >= pc.n) return;  // uniform
  const uint t = gl_LocalInvocationID.x;
  float best = negInf();
  uint pos = NONE;
  for (uint j = t; j < pc.count; j += WG) {
#ifdef CENTROID
    float dist = 0.0;
    [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) {
      const float cc = p[j * pc.d + c];
      dist += cc * cc - 2.0 * x[row * pc.d + c] * cc;
    }
    const float score = -dist;
    if (score > best) { best = score; pos = j; }
#else
    float proj = 0.0;
    [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) proj += x[row * pc.d + c] * p[c * pc.count + j];
    if (proj > best) { best = proj; pos = 2u * j; }
    if (-proj > best) { best = -proj; pos = 2u * j + 1u; }
#endif
  }
  sVal[t] = best;
  sPos[t] = pos;
  barrier();
  if (t != 0u) return;
  [[dont_unroll]] for (uint u = 1u; u < WG; ++u) {
    const float v = sVal[u];
    const uint q = sPos[u];
    if (q == NONE) continue;
    if (pos == NONE || v > best || (v == best && q < pos)) { best = v; pos = q; }
  }
#ifdef CENTROID
  result[row] = pos == NONE ? 0 : int(pos);
#else
  result[row] = pos == NONE ? 0 : int((pos & 1u) == 0u ? pos / 2u : pc.count + pos / 2u);
#endif
}
