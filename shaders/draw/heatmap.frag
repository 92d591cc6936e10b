#version 450
// Colours one heatmap: looks up the weight (R32_SFLOAT, nearest: one texel per pooled cell),
// normalises it by the linear or log10 range, and maps it through the colormap LUT (256×1 RGBA8,
// linear filtering between texel centres).

layout(set = 0, binding = 0) uniform sampler2D weights;
layout(set = 0, binding = 1) uniform sampler2D colormap;

layout(push_constant) uniform Panel {
  vec4 rect;   // read by heatmap.vert
  vec4 range;  // lo, hi, floor, mode: 0 = linear over [lo, hi], 1 = log10 over [max(lo, floor), hi],
               // 2 = categorical (the value is category + 1, 0 = none)
  vec4 uv;     // read by heatmap.vert
} panel;

// render/view/colormap.cpp categoricalPalette() and k_categorical_empty: keep equal.
const vec3 k_palette[8] = vec3[8](vec3(0.902, 0.624, 0.000), vec3(0.337, 0.706, 0.914), vec3(0.000, 0.620, 0.451),
                                  vec3(0.941, 0.894, 0.259), vec3(0.000, 0.447, 0.698), vec3(0.835, 0.369, 0.000),
                                  vec3(0.800, 0.475, 0.655), vec3(0.600, 0.600, 0.600));
const vec3 k_empty = vec3(0.10, 0.10, 0.12);

layout(location = 0) in vec2 uv;
layout(location = 0) out vec4 color;

const vec4 k_nan_color = vec4(1.0, 0.0, 1.0, 1.0);  // never hide a NaN: magenta stands out of viridis

void main() {
  // Zoomed past the entries the texture pools (until the view is pooled again): no data there.
  if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) {
    color = vec4(k_empty, 1.0);
    return;
  }
  float w = texture(weights, uv).r;
  if (isnan(w)) {
    color = k_nan_color;
    return;
  }
  if (panel.range.w > 1.5) {
    int category = int(w + 0.5);
    color = vec4(category <= 0 ? k_empty : k_palette[(category - 1) % 8], 1.0);
    return;
  }
  float lo = panel.range.x;
  float hi = panel.range.y;
  float t;
  if (panel.range.w > 0.5) {
    float floor_value = panel.range.z;
    float lo_log = log(max(lo, floor_value)) / log(10.0);
    float hi_log = log(max(hi, floor_value)) / log(10.0);
    float w_log = log(max(w, floor_value)) / log(10.0);
    t = (w_log - lo_log) / max(hi_log - lo_log, 1e-12);
  } else {
    t = (w - lo) / max(hi - lo, 1e-30);
  }
  t = clamp(t, 0.0, 1.0);
  color = texture(colormap, vec2((t * 255.0 + 0.5) / 256.0, 0.5));
}
