#version 450
// Feature maps of kernelised attention (attn::FeatureMap, attention/backend.h), fp32, row-major.
// x ← input_scale·x first; ω_r are the rows of W (m×d).
//   map 0 EluPlusOne:      φ(x) = elu(x) + 1
//   map 1 PositiveRandom:  φ(x)_r = exp(ω_r·x − ‖x‖²/2 − shift) / √m
//   map 2 Trigonometric:   φ(x) = exp(‖x‖²/2)/√m · [sin(ω_r·x)]_r ++ [cos(ω_r·x)]_r
// Four modes, dispatched in order by the host (each its own dispatch, with barriers between):
//   MODE_MAP:      one invocation per output entry: the final value (maps 0, 2; map 1 without
//                  shift) or, for map 1 with a shift, the exponent u_ir = ω_r·x − ‖x‖²/2;
//   MODE_ROW_MAX:  one invocation per row: ROWMAX[i] = max_r u_ir over non-NaN u (−inf if none);
//   MODE_ALL_MAX:  one workgroup: ROWMAX[n] = max_i ROWMAX[i] (NaN-free by construction);
//   MODE_APPLY:    one invocation per entry: φ = exp(u − shift)/√m, shift = ROWMAX[i] (per row) or
//                  ROWMAX[n] (global); a shift that is not finite counts as 0.
// Bindings: 0 X (N×d), 1 W (m×d; a 1-float dummy for map 0), 2 PHI (N×cols), 3 ROWMAX (N+1).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "float_bits.glsl"

layout(local_size_x = 64) in;

layout(push_constant) uniform Params {
  uint n;
  uint d;
  uint m;      // random features (rows of W); d for map 0
  uint cols;   // output columns: d, m or 2m
  uint map;
  uint mode;
  uint shift;  // 0 none, 1 per row, 2 global
  float input_scale;
  uint groups_x;
} pc;
const uint MODE_MAP = 0u, MODE_ROW_MAX = 1u, MODE_ALL_MAX = 2u, MODE_APPLY = 3u;

layout(std430, binding = 0) readonly buffer XBuf { float x[]; };
layout(std430, binding = 1) readonly buffer WBuf { float w[]; };
layout(std430, binding = 2) buffer PhiBuf { float phi[]; };
layout(std430, binding = 3) buffer MaxBuf { float rowmax[]; };

shared float sMax[64];

float halfSquaredNorm(uint i) {
  float s = 0.0;
  [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) {
    const float xc = x[i * pc.d + c] * pc.input_scale;
    s += xc * xc;
  }
  return 0.5 * s;
}

float projection(uint i, uint r) {
  float s = 0.0;
  [[dont_unroll]] for (uint c = 0u; c < pc.d; ++c) s += (x[i * pc.d + c] * pc.input_scale) * w[r * pc.d + c];
  return s;
}

void main() {
  const uint linear = (gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
  if (pc.mode == MODE_ALL_MAX) {
    const uint t = gl_LocalInvocationID.x;
    float mx = negInf();
    for (uint i = t; i < pc.n; i += 64u) mx = max(mx, rowmax[i]);
    sMax[t] = mx;
    barrier();
    if (t == 0u) {
      [[dont_unroll]] for (uint i = 1u; i < 64u; ++i) mx = max(mx, sMax[i]);
      rowmax[pc.n] = mx;
    }
    return;
  }
  if (pc.mode == MODE_ROW_MAX) {
    if (linear >= pc.n) return;
    float mx = negInf();
    [[dont_unroll]] for (uint r = 0u; r < pc.m; ++r) {
      const float u = phi[linear * pc.cols + r];
      if (!bitsIsNan(u)) mx = max(mx, u);
    }
    rowmax[linear] = mx;
    return;
  }
  if (linear >= pc.n * pc.cols) return;
  const uint i = linear / pc.cols;
  const uint r = linear - i * pc.cols;
  const float inv_sqrt_m = inversesqrt(float(pc.m));
  if (pc.mode == MODE_APPLY) {
    float s = pc.shift == 1u ? rowmax[i] : rowmax[pc.n];
    if (bitsIsNan(s) || bitsIsPosInf(s) || bitsIsNegInf(s)) s = 0.0;
    phi[linear] = exp(phi[linear] - s) * inv_sqrt_m;
    return;
  }
  // MODE_MAP
  if (pc.map == 0u) {
    const float xc = x[linear] * pc.input_scale;
    phi[linear] = xc > 0.0 ? xc + 1.0 : exp(xc);
  } else if (pc.map == 1u) {
    const float u = projection(i, r) - halfSquaredNorm(i);
    phi[linear] = pc.shift == 0u ? exp(u) * inv_sqrt_m : u;
  } else {
    const uint rr = r < pc.m ? r : r - pc.m;
    float u = projection(i, rr);
    // Range reduction to [−π, π]: Vulkan only bounds sin/cos error there (2⁻¹¹ absolute).
    const float two_pi = 6.28318530717958647692;
    u -= two_pi * round(u / two_pi);
    const float g = exp(halfSquaredNorm(i)) * inv_sqrt_m;
    phi[linear] = g * (r < pc.m ? sin(u) : cos(u));
  }
}
