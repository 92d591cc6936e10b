#version 450
// Linear (kernelised) attention from feature-mapped inputs, fp32 (attn::Backend::linearAttention):
//
//   O_i = φq_i·S / φq_i·z,   S = Σ_j φk_j v_jᵀ,  z = Σ_j φk_j   over all keys j (or j ≤ i when causal);
//   a row whose normaliser is not positive and finite gives 0.
//
// The values are augmented with a column of ones, so z is column dv of S (W = dv + 1 columns).
// Keys are cut into chunks of C; three modes, dispatched in order by the host:
//   MODE_CHUNK_STATE: one invocation per (chunk c, feature r, column w):
//                     STATE[c][r][w] = Σ_{j ∈ chunk c} φk[j][r]·v⁺[j][w];
//   MODE_SCAN:        one invocation per (r, w): an exclusive prefix sum over the chunks
//                     [chunk_begin, chunk_end) in place; STATE[chunks] carries the running total
//                     (after the last dispatch: the sum over all keys). The host splits the chunks
//                     across dispatches where the device limits loop iterations;
//   MODE_OUTPUT:      one workgroup per query row i: non-causal, O_i from STATE[chunks]; causal,
//                     from STATE[chunk of i] (the chunks before i's) plus the keys of i's own chunk up
//                     to i, weighted by φq_i·φk_j (the chunked prefix sums of the Linear Transformer).
// Bindings: 0 PHIQ (N×F), 1 PHIK (M×F), 2 V (M×dv), 3 STATE ((chunks+1)×F×W), 4 O (N×dv).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

layout(local_size_x = 64) in;
const uint WG = 64;
const uint C = 64;          // keys per chunk (= WG: one local weight per thread)
const uint WMAX = 257;      // dv ≤ 256

layout(push_constant) uniform Params {
  uint n;
  uint m;
  uint f;
  uint dv;
  uint causal;
  uint mode;
  uint chunks;
  uint chunk_begin;
  uint chunk_end;
  uint groups_x;
} pc;
const uint MODE_CHUNK_STATE = 0u, MODE_SCAN = 1u, MODE_OUTPUT = 2u;

layout(std430, binding = 0) readonly buffer PhiQBuf { float phi_q[]; };
layout(std430, binding = 1) readonly buffer PhiKBuf { float phi_k[]; };
layout(std430, binding = 2) readonly buffer VBuf { float v[]; };
layout(std430, binding = 3) buffer StateBuf { float state[]; };
layout(std430, binding = 4) writeonly buffer OBuf { float o[]; };

shared float sA[C];
shared float sNum[WMAX];

float vPlus(uint j, uint w) { return w < pc.dv ? v[j * pc.dv + w] : 1.0; }

void main() {
  const uint group = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  const uint t = gl_LocalInvocationID.x;
  const uint W = pc.dv + 1u;
  const uint FW = pc.f * W;
  if (pc.mode == MODE_CHUNK_STATE) {
    const uint id = group * WG + t;
    if (id >= pc.chunks * FW) return;
    const uint c = id / FW;
    const uint rem = id - c * FW;
    const uint r = rem / W;
    const uint w = rem - r * W;
    const uint j_end = min(pc.m, (c + 1u) * C);
    float s = 0.0;
    [[dont_unroll]] for (uint j = c * C; j < j_end; ++j) s += phi_k[j * pc.f + r] * vPlus(j, w);
    state[id] = s;
    return;
  }
  if (pc.mode == MODE_SCAN) {
    const uint id = group * WG + t;
    if (id >= FW) return;
    float run = pc.chunk_begin == 0u ? 0.0 : state[pc.chunks * FW + id];
    [[dont_unroll]] for (uint c = pc.chunk_begin; c < pc.chunk_end; ++c) {
      const float s = state[c * FW + id];
      state[c * FW + id] = run;
      run += s;
    }
    state[pc.chunks * FW + id] = run;
    return;
  }
  // MODE_OUTPUT: one workgroup per query row.
  const uint i = group;
  if (i >= pc.n) return;  // uniform
  const uint c = pc.causal != 0u ? i / C : pc.chunks;
  const uint local = pc.causal != 0u ? i - c * C + 1u : 0u;  // own-chunk keys c·C … i
  if (t < local) {
    const uint j = c * C + t;
    float a = 0.0;
    [[dont_unroll]] for (uint r = 0u; r < pc.f; ++r) a += phi_q[i * pc.f + r] * phi_k[j * pc.f + r];
    sA[t] = a;
  }
  barrier();
  for (uint w = t; w < W; w += WG) {
    float s = 0.0;
    [[dont_unroll]] for (uint r = 0u; r < pc.f; ++r) s += phi_q[i * pc.f + r] * state[c * FW + r * W + w];
    [[dont_unroll]] for (uint tt = 0u; tt < local; ++tt) s += sA[tt] * vPlus(c * C + tt, w);
    sNum[w] = s;
  }
  barrier();
  const float den = sNum[pc.dv];
  const bool ok = den > 0.0 && !bitsIsPosInf(den) && !bitsIsNan(den);
  for (uint w = t; w < pc.dv; w += WG) o[i * pc.dv + w] = ok ? sNum[w] / den : 0.0;
}
