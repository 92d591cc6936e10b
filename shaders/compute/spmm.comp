#version 450
// Sparse × dense, fp32: for each row i of a CSR matrix A (ROW_PTR, COL, VAL),
//
//   O[i, c] = Σ_e VAL[e]·X[COL[e], c],   e ∈ [ROW_PTR[i], ROW_PTR[i+1]),   c < k
//
// (an empty row gives zeros; NaN and ±inf propagate as IEEE arithmetic gives them). The permutohedral
// lattice's splat, blur and slice are one such product each. One workgroup per row; thread t computes the
// columns t, t + 64, … of the row, summing its entries in order.
//
// Entry ranges: one dispatch takes the entries [entry_begin, entry_end) of every row, relative to the row's
// start; the first (PHASE_FIRST) overwrites O, later ones add to it. The host splits long rows into several
// dispatches where the device limits the loop iterations of an invocation (see vk::DeviceLimits).
//
// Bindings: 0 ROW_PTR (rows+1, uint), 1 COL (nnz, int), 2 VAL (nnz), 3 X (cols×k), 4 O (rows×k).
layout(local_size_x = 64) in;
const uint WG = 64;

layout(push_constant) uniform Params {
  uint rows;
  uint k;
  uint groups_x;
  uint entry_begin;
  uint entry_end;
  uint phase;  // PHASE_FIRST | PHASE_LAST
} pc;
const uint PHASE_FIRST = 1u;

layout(std430, binding = 0) readonly buffer RowPtrBuf { uint row_ptr[]; };
layout(std430, binding = 1) readonly buffer ColBuf { int col[]; };
layout(std430, binding = 2) readonly buffer ValBuf { float val[]; };
layout(std430, binding = 3) readonly buffer XBuf { float x[]; };
layout(std430, binding = 4) buffer OBuf { float o[]; };

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint row = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
  if (row >= pc.rows) return;
  const uint rb = row_ptr[row];
  const uint re = row_ptr[row + 1u];
  const uint e_begin = rb + min(pc.entry_begin, re - rb);
  const uint e_end = rb + min(pc.entry_end, re - rb);
  const bool first = (pc.phase & PHASE_FIRST) != 0u;
  for (uint c = t; c < pc.k; c += WG) {
    float acc = first ? 0.0 : o[row * pc.k + c];
    for (uint e = e_begin; e < e_end; ++e) acc += val[e] * x[uint(col[e]) * pc.k + c];
    o[row * pc.k + c] = acc;
  }
}
