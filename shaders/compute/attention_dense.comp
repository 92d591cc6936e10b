#version 450
// Fused exact softmax attention, flash style, fp32 (the scalar tier: runs everywhere, lavapipe included).
//
//   O[i] = Σ_j softmax_j(x_ij) V[j],   x_ij = scale·(Q[i]·K[j]) (+ BIAS[i][j]),   lse[i] = log Σ_j exp(x_ij)
//
// Q is N×d, K is M×d, V is M×dv, O is N×dv, BIAS is N×M (variant HAS_BIAS), all row-major fp32.
// Causal: key j is visible to query i only if j ≤ i + causal_offset; invisible keys are x = −inf.
//
// A workgroup owns BR query rows (TPR threads per row) and streams BC keys at a time through shared
// memory with an online softmax: running max m (starting at −FLT_MAX, a finite value, so no
// (−inf) − (−inf) ever happens) and running sum l; the N×M matrix is never materialised.
// Scale is applied to the finished dot product and exp() takes (x − m) ≤ 0, so logits anywhere in
// ±FLT_MAX are stable (folding scale·log2(e) into Q would overflow near FLT_MAX).
//
// Variant MASK_SELF (Reformer's shared-QK rule): key i + causal_offset is hidden from query i; a row
// left with no visible key is flagged (bit 2) and the host recomputes it with its self key allowed.
//
// Special rows (the defined behaviour of attention/backend.h) are flagged, not computed:
//   FLAGS[i] bit 0: some visible logit is NaN;  bit 1: some visible logit is +inf;
//   bit 2 (MASK_SELF): nothing but the self key was visible.
// Flagged rows' O and lse are garbage-free but meaningless; the host recomputes those rows exactly.
// NaN and +inf logits are excluded from the max and contribute p = 0, so other rows are unaffected.
// A fully masked row (every visible logit −inf, or no visible key) gets l = 0: O = 0, lse = −inf.
//
// Key ranges: one dispatch streams the keys [key_begin, key_end) (key_begin a multiple of BC,
// key_end a multiple of BC or ≥ m). The host splits M into several such dispatches when the device
// limits the loop iterations of a shader invocation (lavapipe: 65535, all loops together; past it
// every loop silently ends early, see vk::DeviceLimits::max_loop_iterations). Between dispatches a
// row's running state carries over in memory: m, l and the flags in STATE, the unnormalised
// accumulator in O. PHASE_FIRST starts from scratch instead of loading it; PHASE_LAST normalises
// and writes O, LSE and FLAGS (only the last dispatch writes FLAGS and LSE).
//
// Bindings: 0 Q, 1 K, 2 V, 3 O, 4 LSE (N), 5 FLAGS (N, uint), 6 STATE (N) [, 7 BIAS].
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

layout(local_size_x_id = 0) in;              // = BR·TPR (set by the host)
layout(constant_id = 1) const uint BR = 16;  // query rows per workgroup
layout(constant_id = 2) const uint BC = 16;  // keys per shared-memory tile
layout(constant_id = 3) const uint DK = 64;  // capacity for d (≥ d)
layout(constant_id = 4) const uint DV = 64;  // capacity for dv (≥ dv, ≤ TPR·OPT)
layout(constant_id = 5) const uint TPR = 8;  // threads per query row
const uint OPT = 16;                         // output columns per thread, at most
const uint WG = BR * TPR;
const uint DKS = DK + 1;                     // padded row stride: conflict-free column reads

layout(push_constant) uniform Params {
  uint n;
  uint m;
  uint d;
  uint dv;
  uint causal;
  int causal_offset;  // clamped by the host to [−n, m]
  float scale;
  uint groups_x;      // workgroups along x of the dispatch grid (the grid is 2-D past 65535 groups)
  uint key_begin;     // keys of this dispatch: [key_begin, key_end)
  uint key_end;
  uint phase;         // PHASE_FIRST | PHASE_LAST bits
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
layout(std430, binding = 3) buffer OBuf { float o[]; };  // unnormalised between dispatches
layout(std430, binding = 4) writeonly buffer LseBuf { float lse[]; };
layout(std430, binding = 5) writeonly buffer FlagBuf { uint row_flags[]; };
layout(std430, binding = 6) buffer StateBuf { RowState state[]; };
#ifdef HAS_BIAS
layout(std430, binding = 7) readonly buffer BiasBuf { float bias[]; };
#endif
#ifdef TILE_LIST
// Block-sparse attention: the workgroup streams only the key tiles its rows have pattern entries in.
// TILE_PTR[g] … TILE_PTR[g+1] index the tiles of workgroup g: TILE_COL holds the key-tile index, and
// TILE_MASK one 64-bit mask per tile and row (bit jj: key tile·BC + jj is in the row's pattern).
// The dispatch's [key_begin, key_end) is then a range of positions in the workgroup's tile list.
// (No bias and no causal flag: the pattern says which pairs are visible.)
layout(std430, binding = 7) readonly buffer TilePtrBuf { uint tile_ptr[]; };
layout(std430, binding = 8) readonly buffer TileColBuf { uint tile_col[]; };
layout(std430, binding = 9) readonly buffer TileMaskBuf { uvec2 tile_mask[]; };
#endif

shared float sQ[BR * DKS];
shared float sK[BC * DKS];
shared float sV[BC * DV];
shared float sP[BR * BC];  // logits, then probabilities, of the current tile
shared float sAlpha[BR];   // per-row rescale factor of the current tile
shared float sL[BR];       // final per-row normaliser

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint group = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  const uint row0 = group * BR;
  if (row0 >= pc.n) return;  // uniform: the whole workgroup is past the end of a 2-D grid
  const uint r = t / TPR;
  const uint lane = t - r * TPR;
  const uint row = row0 + r;
  const uint rows_here = min(BR, pc.n - row0);
  const bool first = (pc.phase & PHASE_FIRST) != 0u;
  const bool last = (pc.phase & PHASE_LAST) != 0u;

  // Keys at or past kv_end are invisible to every row of this workgroup.
  uint kv_end = pc.m;
  if (pc.causal != 0u) {
    const int lim = int(row0 + rows_here - 1u) + pc.causal_offset + 1;
    kv_end = uint(clamp(lim, 0, int(pc.m)));
  }
#ifdef TILE_LIST
  const uint tiles_begin = tile_ptr[group], tiles_here = tile_ptr[group + 1u] - tiles_begin;
  const uint l_begin = tiles_begin + min(pc.key_begin, tiles_here);
  const uint l_end = tiles_begin + min(pc.key_end, tiles_here);
  if (!first && !last && l_begin >= l_end) return;  // no tile of this dispatch here (uniform)
#else
  const uint j_end = min(kv_end, pc.key_end);
  // No key of this dispatch is visible here: the carried state stays as it is (uniform).
  if (!first && !last && pc.key_begin >= j_end) return;
#endif

  for (uint i = t; i < BR * pc.d; i += WG) {
    const uint rr = i / pc.d;
    const uint c = i - rr * pc.d;
    sQ[rr * DKS + c] = rr < rows_here ? q[(row0 + rr) * pc.d + c] : 0.0;
  }

  float m_run = -FLT_MAX;  // lane 0 of each row only
  float l_run = 0.0;
  uint flags = 0u;
  float acc[OPT];
  [[unroll]] for (uint i = 0u; i < OPT; ++i) acc[i] = 0.0;
  if (!first && r < rows_here) {  // carry on from the previous dispatch
    if (lane == 0u) {
      const RowState s = state[row];
      m_run = s.m;
      l_run = s.l;
      flags = s.flags;
    }
    [[unroll]] for (uint i = 0u; i < OPT; ++i) {
      const uint c = lane + i * TPR;
      if (c < pc.dv) acc[i] = o[row * pc.dv + c];
    }
  }

#ifdef TILE_LIST
  for (uint li = l_begin; li < l_end; ++li) {
    const uint j0 = tile_col[li] * BC;
#else
  for (uint j0 = pc.key_begin; j0 < j_end; j0 += BC) {
#endif
    const uint cols_here = min(BC, pc.m - j0);
    barrier();  // the previous tile is fully consumed
    for (uint i = t; i < BC * pc.d; i += WG) {
      const uint jj = i / pc.d;
      const uint c = i - jj * pc.d;
      sK[jj * DKS + c] = jj < cols_here ? k[(j0 + jj) * pc.d + c] : 0.0;
    }
    for (uint i = t; i < BC * pc.dv; i += WG) {
      const uint jj = i / pc.dv;
      const uint c = i - jj * pc.dv;
      sV[jj * DV + c] = jj < cols_here ? v[(j0 + jj) * pc.dv + c] : 0.0;
    }
    barrier();

    for (uint e = t; e < BR * BC; e += WG) {
      const uint rr = e / BC;
      const uint jj = e - rr * BC;
      const uint key = j0 + jj;
      const uint qrow = row0 + rr;
      float x = negInf();
      bool visible = jj < cols_here && rr < rows_here &&
                     (pc.causal == 0u || int(key) <= int(qrow) + pc.causal_offset);
#ifdef MASK_SELF
      if (int(key) == int(qrow) + pc.causal_offset) visible = false;
#endif
#ifdef TILE_LIST
      if (visible) {
        const uvec2 bits = tile_mask[li * BR + rr];
        visible = ((jj < 32u ? bits.x >> jj : bits.y >> (jj - 32u)) & 1u) != 0u;
      }
#endif
      if (visible) {
        float dotv = 0.0;
        [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) dotv += sQ[rr * DKS + c] * sK[jj * DKS + c];
        // Q and K are finite: an infinite dot product overflowed (|q·k| > FLT_MAX) though scale·q·k may
        // not have. +inf flags the row (bit 1), and the host computes it exactly.
        x = isinf(dotv) ? posInf() : dotv * pc.scale;
#ifdef HAS_BIAS
        x += bias[qrow * pc.m + key];
#endif
      }
      sP[rr * BC + jj] = x;
    }
    barrier();

    if (lane == 0u) {
      float mx = m_run;
      [[dont_unroll]] for (uint jj = 0u; jj < BC; ++jj) {
        const float x = sP[r * BC + jj];
        if (bitsIsNan(x)) flags |= 1u;
        else if (bitsIsPosInf(x)) flags |= 2u;
        else mx = max(mx, x);
      }
      // Both arguments are ≤ 0; clamping at −200 (exp → 0 in fp32) avoids relying on exp(−inf).
      const float alpha = exp(max(m_run - mx, -200.0));
      float s = 0.0;
      [[dont_unroll]] for (uint jj = 0u; jj < BC; ++jj) {
        const float x = sP[r * BC + jj];
        const bool skip = bitsIsNan(x) || bitsIsPosInf(x) || bitsIsNegInf(x);
        const float p = skip ? 0.0 : exp(max(x - mx, -200.0));
        sP[r * BC + jj] = p;
        s += p;
      }
      l_run = l_run * alpha + s;
      m_run = mx;
      sAlpha[r] = alpha;
    }
    barrier();

    // O_r ← α·O_r + P_r·V_tile. The key loop stays rolled (unrolling BC × OPT makes some compilers,
    // lavapipe's LLVM among them, take seconds per pipeline); the OPT accumulators stay in registers.
    const float alpha = sAlpha[r];
    [[unroll]] for (uint i = 0u; i < OPT; ++i) acc[i] *= alpha;
    [[dont_unroll]] for (uint jj = 0u; jj < BC; ++jj) {
      const float p = sP[r * BC + jj];
      [[unroll]] for (uint i = 0u; i < OPT; ++i) {
        const uint c = lane + i * TPR;
        if (c < DV) acc[i] += p * sV[jj * DV + c];  // columns in [dv, DV) are never written out
      }
    }
  }

  if (!last) {  // hand the running state to the next dispatch
    if (r < rows_here) {
      if (lane == 0u) state[row] = RowState(m_run, l_run, flags);
      [[unroll]] for (uint i = 0u; i < OPT; ++i) {
        const uint c = lane + i * TPR;
        if (c < pc.dv) o[row * pc.dv + c] = acc[i];
      }
    }
    return;
  }

  if (lane == 0u) {
#ifdef MASK_SELF
    const int self_key = int(row) + pc.causal_offset;
    if (!(l_run > 0.0) && self_key >= 0 && self_key < int(pc.m)) flags |= 4u;
#endif
    sL[r] = l_run;
    if (r < rows_here) {
      lse[row] = l_run > 0.0 ? m_run + log(l_run) : negInf();
      row_flags[row] = flags;
    }
  }
  barrier();
  const float l = sL[r];
  if (r < rows_here) {
    [[unroll]] for (uint i = 0u; i < OPT; ++i) {
      const uint c = lane + i * TPR;
      if (c < pc.dv) o[row * pc.dv + c] = l > 0.0 ? acc[i] / l : 0.0;
    }
  }
}
