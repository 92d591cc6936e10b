#version 450
// A pooled tile of implied weights in factored form (attn::WeightKernel, attention/explanation.h):
//   W_ij = exp(scale·a_i·b_j + t_i)   (kind 0, Softmax)   or   (a_i·b_j)·t_i   (kind 1, Linear)
// for the visible pairs, 0 for hidden ones (causal: j > i + causal_offset; mask_self: j = i +
// causal_offset when the row has another visible key) and for rows whose t_i is not finite.
// Pixel (p, q) of the output is the max (pooling 0) or mean (pooling 1) of the entries in rows
// RSPAN[p] × cols CSPAN[q] (absolute [begin, end) pairs computed by the host with the spans of
// ImpliedWeights::tile). The full matrix is never formed.
//
// One workgroup per pixel; its threads share the pixel's entries (flattened row-major), each
// entry an r-long dot product. One dispatch takes the entries [entry_begin, entry_end) of every
// pixel; where the device limits loop iterations the host splits them across dispatches, the
// partial max / sum carried in OUT (PHASE_FIRST starts afresh, PHASE_LAST divides the mean).
// Bindings: 0 A (N×r), 1 B (M×r), 2 T (N), 3 RSPAN (2·out_rows, uint), 4 CSPAN (2·out_cols, uint),
// 5 OUT (out_rows×out_cols).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

layout(local_size_x = 64) in;
const uint WG = 64;

layout(push_constant) uniform Params {
  uint r;
  uint m;
  uint kind;
  float scale;
  uint causal;
  int causal_offset;
  uint mask_self;
  uint pooling;
  uint out_rows;
  uint out_cols;
  uint groups_x;
  uint entry_begin;
  uint entry_end;
  uint phase;
} pc;
const uint PHASE_FIRST = 1u;
const uint PHASE_LAST = 2u;

layout(std430, binding = 0) readonly buffer ABuf { float a[]; };
layout(std430, binding = 1) readonly buffer BBuf { float b[]; };
layout(std430, binding = 2) readonly buffer TBuf { float row_term[]; };
layout(std430, binding = 3) readonly buffer RSpanBuf { uint rspan[]; };
layout(std430, binding = 4) readonly buffer CSpanBuf { uint cspan[]; };
layout(std430, binding = 5) buffer OutBuf { float tile[]; };

shared float sAcc[WG];

float entry(uint i, uint j) {
  const float t = row_term[i];
  if (bitsIsNan(t) || bitsIsPosInf(t) || bitsIsNegInf(t)) return 0.0;
  const int visible = pc.causal != 0u ? clamp(int(i) + pc.causal_offset + 1, 0, int(pc.m)) : int(pc.m);
  if (int(j) >= visible) return 0.0;
  const int self_key = int(i) + pc.causal_offset;
  if (pc.mask_self != 0u && int(j) == self_key && self_key >= 0 && visible > 1) return 0.0;
  float s = 0.0;
  [[dont_unroll]] for (uint c = 0u; c < pc.r; ++c) s += a[i * pc.r + c] * b[j * pc.r + c];
  // A softmax weight is at most 1, also where the logit rounds above the row's lse (as on the CPU).
  return pc.kind == 0u ? exp(min(pc.scale * s + t, 0.0)) : s * t;
}

void main() {
  const uint pixel = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  if (pixel >= pc.out_rows * pc.out_cols) return;  // uniform
  const uint py = pixel / pc.out_cols;
  const uint px = pixel - py * pc.out_cols;
  const uint r0 = rspan[2u * py], r1 = rspan[2u * py + 1u];
  const uint c0 = cspan[2u * px], c1 = cspan[2u * px + 1u];
  const uint width = c1 - c0;
  const uint count = (r1 - r0) * width;
  const uint e_end = min(count, pc.entry_end);
  const bool use_max = pc.pooling == 0u;
  const uint t = gl_LocalInvocationID.x;
  float acc = use_max ? negInf() : 0.0;
  for (uint e = pc.entry_begin + t; e < e_end; e += WG) {
    const uint rr = e / width;
    const float w = entry(r0 + rr, c0 + (e - rr * width));
    acc = use_max ? max(acc, w) : acc + w;
  }
  sAcc[t] = acc;
  barrier();
  if (t != 0u) return;
  [[dont_unroll]] for (uint u = 1u; u < WG; ++u) acc = use_max ? max(acc, sAcc[u]) : acc + sAcc[u];
  if ((pc.phase & PHASE_FIRST) == 0u) acc = use_max ? max(acc, tile[pixel]) : acc + tile[pixel];
  if ((pc.phase & PHASE_LAST) != 0u && !use_max) acc /= float(count);
  tile[pixel] = acc;
}
