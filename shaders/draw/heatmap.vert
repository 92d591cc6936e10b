#version 450
// One heatmap panel as a textured quad: four vertices of a triangle strip generated from
// gl_VertexIndex (no vertex buffer). The panel rectangle comes in normalised device coordinates.

layout(push_constant) uniform Panel {
  vec4 rect;   // x0, y0, x1, y1 in NDC (y0 is the top edge: Vulkan's y points down)
  vec4 range;  // lo, hi, log floor, mode (read by heatmap.frag)
  vec4 uv;     // texture coordinates of the top-left (xy) and bottom-right (zw) corners: a zoomed view
} panel;

layout(location = 0) out vec2 uv;  // (0, 0) = top-left = the first row and column the texture pools

void main() {
  // 0: top-left, 1: bottom-left, 2: top-right, 3: bottom-right
  vec2 corner = vec2(float(gl_VertexIndex >> 1), float(gl_VertexIndex & 1));
  uv = mix(panel.uv.xy, panel.uv.zw, corner);
  gl_Position = vec4(mix(panel.rect.xy, panel.rect.zw, corner), 0.0, 1.0);
}
