#version 450
// Index-sparse softmax attention over the pairs of a CSR pattern, fp32: for each query row i,
//
//   O[i] = Σ_e softmax_e(x_e) V[col[e]],   x_e = scale·(Q[i]·K[col[e]]) (+ EBIAS[e]),   e ∈ [ROW_PTR[i], ROW_PTR[i+1])
//
// with the row semantics of attention/backend.h (as attention_dense.comp): NaN / +inf logits are
// flagged (FLAGS bit 0 / bit 1) and left to the host, −inf logits weigh 0, a row without a finite
// logit gets O = 0 and lse = −inf. Only the pattern's entries are touched: empty rows and empty
// tiles cost nothing, and block-sparse patterns (given as CSR) run through the same loop.
//
// One workgroup (WG threads) per query row; the row's entries are streamed WG at a time (one logit
// per thread, d-long dot product against the query held in shared memory), with an online softmax;
// thread t accumulates the output columns t, t + WG, … (dv ≤ WG·OPT).
//
// Entry ranges: one dispatch takes the entries [entry_begin, entry_end) of every row, relative to
// the row's start (entry_begin a multiple of WG). The host splits long rows into several dispatches
// where the device limits the loop iterations of an invocation (see vk::DeviceLimits); the running
// state carries over in STATE (m, l, flags) and O (unnormalised), as in attention_dense.comp.
//
// Bindings: 0 Q (N×d), 1 K (M×d), 2 V (M×dv), 3 ROW_PTR (N+1, uint), 4 COL (nnz, int), 5 O (N×dv),
// 6 LSE (N), 7 FLAGS (N, uint), 8 STATE (N) [, 9 EBIAS (nnz)].
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

const uint WG = 64;
const uint OPT = 4;  // output columns per thread: dv ≤ 256
const uint DMAX = 256;
layout(local_size_x = 64) in;

layout(push_constant) uniform Params {
  uint n;
  uint d;
  uint dv;
  float scale;
  uint groups_x;
  uint entry_begin;
  uint entry_end;
  uint phase;  // PHASE_FIRST | PHASE_LAST
} pc;
const uint PHASE_FIRST = 1u;
const uint PHASE_LAST = 2u;

struct RowState {
  float m;
  float l;
  uint flags;
};

layout(std430, binding = 0) readonly buffer QBuf { float q[]; };
layout(std430, binding = 1) readonly buffer KBuf { float k[]; };
layout(std430, binding = 2) readonly buffer VBuf { float v[]; };
layout(std430, binding = 3) readonly buffer RowPtrBuf { uint row_ptr[]; };
layout(std430, binding = 4) readonly buffer ColBuf { int col[]; };
layout(std430, binding = 5) buffer OBuf { float o[]; };
layout(std430, binding = 6) writeonly buffer LseBuf { float lse[]; };
layout(std430, binding = 7) writeonly buffer FlagBuf { uint row_flags[]; };
layout(std430, binding = 8) buffer StateBuf { RowState state[]; };
#ifdef HAS_BIAS
layout(std430, binding = 9) readonly buffer BiasBuf { float ebias[]; };
#endif

shared float sQ[DMAX];
shared float sP[WG];
shared int sCol[WG];
shared float sM;
shared float sAlpha;
shared float sL;

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint row = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  if (row >= pc.n) return;  // uniform: past the end of a 2-D grid
  const bool first = (pc.phase & PHASE_FIRST) != 0u;
  const bool last = (pc.phase & PHASE_LAST) != 0u;
  const uint rb = row_ptr[row];
  const uint re = row_ptr[row + 1u];
  const uint e_begin = rb + min(pc.entry_begin, re - rb);
  const uint e_end = rb + min(pc.entry_end, re - rb);
  if (!first && !last && e_begin >= e_end) return;  // nothing of this row here (uniform)

  for (uint c = t; c < pc.d; c += WG) sQ[c] = q[row * pc.d + c];

  float m_run = -FLT_MAX;  // thread 0 only
  float l_run = 0.0;
  uint flags = 0u;
  float acc[OPT];
  [[unroll]] for (uint i = 0u; i < OPT; ++i) acc[i] = 0.0;
  if (!first) {
    if (t == 0u) {
      const RowState s = state[row];
      m_run = s.m;
      l_run = s.l;
      flags = s.flags;
    }
    [[unroll]] for (uint i = 0u; i < OPT; ++i) {
      const uint c = t + i * WG;
      if (c < pc.dv) acc[i] = o[row * pc.dv + c];
    }
  }
  barrier();

  for (uint e0 = e_begin; e0 < e_end; e0 += WG) {
    const uint here = min(WG, e_end - e0);
    float x = negInf();
    int j = 0;
    if (t < here) {
      j = col[e0 + t];
      float dotv = 0.0;
      [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) dotv += sQ[c] * k[uint(j) * pc.d + c];
      // An infinite dot product of finite Q, K overflowed: +inf flags the row for the host (exact).
      x = isinf(dotv) ? posInf() : dotv * pc.scale;
#ifdef HAS_BIAS
      x += ebias[e0 + t];
#endif
    }
    sP[t] = x;
    sCol[t] = j;
    barrier();
    if (t == 0u) {
      float mx = m_run;
      [[dont_unroll]] for (uint jj = 0u; jj < here; ++jj) {
        const float y = sP[jj];
        if (bitsIsNan(y)) flags |= 1u;
        else if (bitsIsPosInf(y)) flags |= 2u;
        else mx = max(mx, y);
      }
      const float alpha = exp(max(m_run - mx, -200.0));
      float s = 0.0;
      [[dont_unroll]] for (uint jj = 0u; jj < here; ++jj) {
        const float y = sP[jj];
        const bool skip = bitsIsNan(y) || bitsIsPosInf(y) || bitsIsNegInf(y);
        const float p = skip ? 0.0 : exp(max(y - mx, -200.0));
        sP[jj] = p;
        s += p;
      }
      l_run = l_run * alpha + s;
      m_run = mx;
      sAlpha = alpha;
    }
    barrier();
    const float alpha = sAlpha;
    [[unroll]] for (uint i = 0u; i < OPT; ++i) acc[i] *= alpha;
    [[dont_unroll]] for (uint jj = 0u; jj < here; ++jj) {
      const float p = sP[jj];
      const uint vrow = uint(sCol[jj]) * pc.dv;
      [[unroll]] for (uint i = 0u; i < OPT; ++i) {
        const uint c = t + i * WG;
        if (c < pc.dv) acc[i] += p * v[vrow + c];
      }
    }
    barrier();  // sP and sCol are refilled next
  }

  if (!last) {
    if (t == 0u) state[row] = RowState(m_run, l_run, flags);
    [[unroll]] for (uint i = 0u; i < OPT; ++i) {
      const uint c = t + i * WG;
      if (c < pc.dv) o[row * pc.dv + c] = acc[i];
    }
    return;
  }
  if (t == 0u) {
    sL = l_run;
    lse[row] = l_run > 0.0 ? m_run + log(l_run) : negInf();
    row_flags[row] = flags;
  }
  barrier();
  const float l = sL;
  [[unroll]] for (uint i = 0u; i < OPT; ++i) {
    const uint c = t + i * WG;
    if (c < pc.dv) o[row * pc.dv + c] = l > 0.0 ? acc[i] / l : 0.0;
  }
}
