// The attnlab GUI: entry point and options. The main window (main_window.h) is built from the core's
// registry (mechanisms, parameters, generators); it never computes attention itself but asks
// attn::compare() for it off the GUI thread and hands the pooled weights to the Vulkan viewport.
#pragma once
#include <string>

#include "attention/inputs.h"

namespace attnlab::gui {

/// What the window starts with (from the command line of a bare `attnlab`).
struct GuiOptions {
  std::string mechanism = "longformer";  ///< a registry id; unknown ids fall back to the first mechanism
  attn::InputSpec input = attn::defaultInput();  ///< N, d, seed, generator, ...
  std::string backend = "auto";          ///< cpu | vulkan | auto
  /// Start from the session saved when the window last closed (when there is one); the options above
  /// are then only the fallback.
  bool restore_session = false;
  std::string session;                   ///< a session file to open at start ("" for none)
  bool pixel_view = false;               ///< start in the pixel view (View → Pixel) instead of the matrices
  bool gates_view = false;               ///< start in the gates view (View → Gates) instead of the matrices
};

/// Creates the QApplication, shows the main window and runs the event loop; returns its exit code.
int runGui(int& argc, char** argv, const GuiOptions& options);

/// Fusion style with a dark palette that matches the viewport's background. runGui() applies it;
/// tests that want to look like the app call it after creating their QApplication.
void applyTheme(bool light = false);

/// How a desktop recognises the running window as the installed attnlab: the desktop entry's name
/// (attnlab.desktop; Wayland's app id) and the window icon (the icon theme's `attnlab` when installed,
/// else the PNGs of assets/ compiled in). runGui() calls it after creating the QApplication.
void applyDesktopIdentity();

class MainWindow;

}  // namespace attnlab::gui
