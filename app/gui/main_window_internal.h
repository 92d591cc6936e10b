// What the parts of MainWindow (main_window*.cpp) share: timings, delays and the time format.
#pragma once
#include <QString>

#include "attention/runner.h"

namespace attnlab::gui::internal {

inline constexpr float k_presenter_scale = 1.5f;  // presenter mode: Qt fonts and the viewport's overlay
inline constexpr int k_cancel_button_delay_ms = 700;  // a run in flight this long shows Cancel in the status bar
inline constexpr int k_run_delay_ms = 0;  // controls quiet for one event-loop turn → rerun (coalesces Reset and several signals of one edit; a stale run is cancelled anyway)
inline constexpr int k_repool_delay_ms = 200;  // after the last resize step
inline constexpr attn::Index k_max_pool_pixels = 1024;
inline constexpr int k_zoom_delay_ms = 30;  // after the last wheel notch or drag step

inline QString ms(double v) { return QString::number(v, 'f', v < 10 ? 2 : 1) + QStringLiteral(" ms"); }

// The mechanism's time without what it built only to be seen (a spectrum, a V = I probe), and that
// part after it when it is noticeable: "12.3 ms (+612 ms view)".
inline QString mechanismMs(const attn::Comparison& c) {
  QString text = ms(c.attentionMs());
  const double view = c.approx.cost.display_ms();
  if (view >= 1) text += QStringLiteral(" (+%1 view)").arg(ms(view));
  return text;
}


}  // namespace attnlab::gui::internal
