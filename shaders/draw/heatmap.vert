#version 450
// One heatmap panel as a textured quad: four vertices of a triangle strip generated from
// gl_VertexIndex (no vertex buffer). The panel rectangle comes in normalised device coordinates.

layout(push_constant) uniform Panel {
  vec4 rect;   // x0, y0, x1, y1 in NDC (y0 is the top edge: Vulkan's y points down)
  vec4 range;  // lo, hi, log floor, mode (read by heatmap.frag)
} panel;

layout(location = 0) out vec2 uv;  // (0, 0) = top-left = row 0, column 0 of the matrix

void main() {
  // 0: top-left, 1: bottom-left, 2: top-right, 3: bottom-right
  vec2 corner = vec2(float(gl_VertexIndex >> 1), float(gl_VertexIndex & 1));
  uv = corner;
  gl_Position = vec4(mix(panel.rect.xy, panel.rect.zw, corner), 0.0, 1.0);
}
