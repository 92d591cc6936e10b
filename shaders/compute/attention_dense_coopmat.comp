#version 450
// Fused exact softmax attention on tensor cores (VK_NV_cooperative_matrix): Q, K, V are converted to
// fp16 on their way into shared memory; Q·Kᵀ and P·V run as 16×16×16 fp16 matrix products with fp32
// accumulation; the softmax statistics (max, sum) and the output stay fp32. Same definition and the
// same row flags as attention_dense.comp (full or causal with causal_offset; no bias, no self rule),
// for head dims d = dv = D (a define: 64 or 128). The host picks this kernel only on devices with a
// 16×16×16 fp16→fp32 subgroup cooperative-matrix configuration and subgroups of 32, when the caller
// allows reduced precision, and only after it passed a self-check against the float64 reference.
//
// The pipeline is created with full subgroups of exactly 32 invocations (REQUIRE_FULL_SUBGROUPS and a
// required subgroup size: cooperative matrices need every invocation of a subgroup active, and the
// two-lanes-per-row shuffles need 32 lanes), so the 128 invocations form 4 whole subgroups.
// A workgroup of 4 subgroups owns BR = 64 query rows (16 per subgroup) and streams BC = 32 keys at a
// time. Per key tile each subgroup computes its 16×32 logits S = Q·Kᵀ (fp32), two lanes per row find
// the row maximum and write P = exp(S − m) as fp16, and the output accumulators (D/16 matrices of
// 16×16, fp32, in registers) take O += P·V. The running maximum m is updated lazily: only when a row's
// maximum grows by more than RESCALE_NATS are the accumulators of that subgroup rescaled (through a
// small per-subgroup scratch), so P stays ≤ e^RESCALE_NATS (well inside fp16) and rescaling is rare.
//
// Bindings: 0 Q, 1 K, 2 V, 3 O, 4 LSE, 5 FLAGS (as attention_dense.comp; STATE and the key-range
// phases are not used: devices with cooperative matrices have no loop-iteration limit).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_vote : require
#include "float_bits.glsl"

#ifndef D
#define D 64
#endif
const uint BR = 64;        // query rows per workgroup (4 subgroups × 16)
const uint BC = 32;        // keys per tile
const uint DS = D + 8;     // padded fp16 row stride of Q, K, V tiles (16-byte multiple)
const uint PS = BC + 8;    // padded fp16 row stride of P
const uint KB = D / 16;    // 16-wide blocks of the head dimension
const uint JB = BC / 16;   // 16-wide blocks of a key tile
const float RESCALE_NATS = 8.0;
layout(local_size_x = 128) in;

layout(push_constant) uniform Params {
  uint n;
  uint m;
  uint d;
  uint dv;
  uint causal;
  int causal_offset;
  float scale;
  uint groups_x;
} pc;

layout(std430, binding = 0) readonly buffer QBuf { float q[]; };
layout(std430, binding = 1) readonly buffer KBuf { float k[]; };
layout(std430, binding = 2) readonly buffer VBuf { float v[]; };
layout(std430, binding = 3) writeonly buffer OBuf { float o[]; };
layout(std430, binding = 4) writeonly buffer LseBuf { float lse[]; };
layout(std430, binding = 5) writeonly buffer FlagBuf { uint row_flags[]; };

shared float16_t sQ[BR * DS];
shared float16_t sK[BC * DS];
shared float16_t sV[BC * DS];
shared float sS[BR * BC];        // logits of the tile; also the rescale / output scratch (16×16 per subgroup)
shared float16_t sP[BR * PS];
shared float sAlpha[BR];

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint warp = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint group = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  const uint row0 = group * BR;
  if (row0 >= pc.n) return;  // uniform
  const uint rows_here = min(BR, pc.n - row0);
  // Two lanes per row of this subgroup's strip: row r (0..15), half h of the tile's columns.
  const uint r = lane & 15u;
  const uint h = lane >> 4u;
  const uint srow = warp * 16u + r;  // row in the workgroup
  const uint row = row0 + srow;

  for (uint i = t; i < BR * D; i += 128u) {
    const uint rr = i / D, c = i - rr * D;
    sQ[rr * DS + c] = float16_t(rr < rows_here ? q[(row0 + rr) * D + c] : 0.0);
  }
  barrier();
  fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> qa[KB];
  [[unroll]] for (uint kc = 0u; kc < KB; ++kc) coopMatLoadNV(qa[kc], sQ, warp * 16u * DS + kc * 16u, DS, false);
  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[KB];
  [[unroll]] for (uint vb = 0u; vb < KB; ++vb) acc[vb] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

  uint kv_end = pc.m;
  if (pc.causal != 0u) kv_end = uint(clamp(int(row0 + rows_here - 1u) + pc.causal_offset + 1, 0, int(pc.m)));

  float m_run = -FLT_MAX;  // per row, kept by both lanes of the row
  float l_run = 0.0;
  uint flags = 0u;
  for (uint j0 = 0u; j0 < kv_end; j0 += BC) {
    const uint cols_here = min(BC, pc.m - j0);
    barrier();  // the previous tile is consumed
    for (uint i = t; i < BC * D; i += 128u) {
      const uint jj = i / D, c = i - jj * D;
      const bool inside = jj < cols_here;
      sK[jj * DS + c] = float16_t(inside ? k[(j0 + jj) * D + c] : 0.0);
      sV[jj * DS + c] = float16_t(inside ? v[(j0 + jj) * D + c] : 0.0);
    }
    barrier();

    // S = Q·Kᵀ for this subgroup's 16 rows (Kᵀ: the K tile read column-major).
    [[unroll]] for (uint jb = 0u; jb < JB; ++jb) {
      fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> s = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
      [[unroll]] for (uint kc = 0u; kc < KB; ++kc) {
        fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> kb;
        coopMatLoadNV(kb, sK, jb * 16u * DS + kc * 16u, DS, true);
        s = coopMatMulAddNV(qa[kc], kb, s);
      }
      coopMatStoreNV(s, sS, warp * 16u * BC + jb * 16u, BC, false);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();

    // Row statistics: lanes r and r + 16 share row r, each over half of the tile's columns.
    float mx = -FLT_MAX;
    const uint c0 = h * (BC / 2u);
    [[unroll]] for (uint jj = c0; jj < c0 + BC / 2u; ++jj) {
      const uint key = j0 + jj;
      const bool visible = jj < cols_here && srow < rows_here &&
                           (pc.causal == 0u || int(key) <= int(row) + pc.causal_offset);
      float x = visible ? sS[srow * BC + jj] * pc.scale : negInf();
      if (bitsIsNan(x)) { flags |= 1u; x = negInf(); }
      else if (bitsIsPosInf(x)) { flags |= 2u; x = negInf(); }
      sS[srow * BC + jj] = x;
      mx = max(mx, x);
    }
    mx = max(mx, subgroupShuffleXor(mx, 16u));
    // Lazy rescaling: keep m unless the row's maximum grew by more than RESCALE_NATS (or nothing
    // has been accumulated yet, when m simply moves).
    float alpha = 1.0;
    bool grow = false;
    if (mx > m_run) {
      if (l_run == 0.0) m_run = mx;
      else if (mx > m_run + RESCALE_NATS) {
        alpha = exp(m_run - mx);
        m_run = mx;
        grow = true;
      }
    }
    if (subgroupAny(grow)) {
      if (h == 0u) sAlpha[srow] = alpha;
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint vb = 0u; vb < KB; ++vb) {
        coopMatStoreNV(acc[vb], sS, warp * 16u * BC + 0u, BC, false);  // 16×16 scratch (columns 0..15)
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint c = h * 8u; c < h * 8u + 8u; ++c) sS[srow * BC + c] *= sAlpha[srow];
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        coopMatLoadNV(acc[vb], sS, warp * 16u * BC + 0u, BC, false);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
      }
      l_run *= alpha;
      // The scratch overwrote the logits: recompute them for this tile (rare: only on growth).
      [[unroll]] for (uint jb = 0u; jb < JB; ++jb) {
        fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> s = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
        [[unroll]] for (uint kc = 0u; kc < KB; ++kc) {
          fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> kb;
          coopMatLoadNV(kb, sK, jb * 16u * DS + kc * 16u, DS, true);
          s = coopMatMulAddNV(qa[kc], kb, s);
        }
        coopMatStoreNV(s, sS, warp * 16u * BC + jb * 16u, BC, false);
      }
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint jj = c0; jj < c0 + BC / 2u; ++jj) {
        const uint key = j0 + jj;
        const bool visible = jj < cols_here && srow < rows_here &&
                             (pc.causal == 0u || int(key) <= int(row) + pc.causal_offset);
        const float x = visible ? sS[srow * BC + jj] * pc.scale : negInf();
        sS[srow * BC + jj] = (bitsIsNan(x) || bitsIsPosInf(x)) ? negInf() : x;
      }
    }

    // P = exp(S − m) in fp16 (≤ e^RESCALE_NATS), and the row sums.
    float s_part = 0.0;
    [[unroll]] for (uint jj = c0; jj < c0 + BC / 2u; ++jj) {
      const float x = sS[srow * BC + jj];
      const float p = bitsIsNegInf(x) ? 0.0 : exp(max(x - m_run, -200.0));
      sP[srow * PS + jj] = float16_t(p);
      s_part += p;
    }
    l_run += s_part + subgroupShuffleXor(s_part, 16u);
    subgroupMemoryBarrierShared();
    subgroupBarrier();

    // O += P·V.
    [[unroll]] for (uint jb = 0u; jb < JB; ++jb) {
      fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> pa;
      coopMatLoadNV(pa, sP, warp * 16u * PS + jb * 16u, PS, false);
      [[unroll]] for (uint vb = 0u; vb < KB; ++vb) {
        fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> vbm;
        coopMatLoadNV(vbm, sV, jb * 16u * DS + vb * 16u, DS, false);
        acc[vb] = coopMatMulAddNV(pa, vbm, acc[vb]);
      }
    }
  }

  // Flags of both lanes of a row combine; then O = acc / l through the scratch.
  flags |= subgroupShuffleXor(flags, 16u);
  if (h == 0u && srow < rows_here) {
    lse[row] = l_run > 0.0 ? m_run + log(l_run) : negInf();
    row_flags[row] = flags;
  }
  barrier();
  [[unroll]] for (uint vb = 0u; vb < KB; ++vb) {
    coopMatStoreNV(acc[vb], sS, warp * 16u * BC + 0u, BC, false);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    if (srow < rows_here) {
      [[unroll]] for (uint c = h * 8u; c < h * 8u + 8u; ++c)
        o[row * D + vb * 16u + c] = l_run > 0.0 ? sS[srow * BC + c] / l_run : 0.0;
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
  }
}
