// A window session (attention/session.h): a Session with notes or a message, never a crash or an exception.
// Parameter ranges come from a made-up mechanism "m" (the fuzz build has no mechanisms).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attention/session.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<attn::ParamSpec> specs = {
      {"window", "window", "", attn::ParamKind::Int, 1, 4096, 64},
      {"kernel", "kernel", "", attn::ParamKind::Choice, 0, 2, 0, false, {"a", "b", "c"}},
      {"scale", "scale", "", attn::ParamKind::Real, 0.01, 10, 1}};
  const auto lookup = [](const std::string& id) -> const std::vector<attn::ParamSpec>* {
    return id == "m" ? &specs : nullptr;
  };
  (void)attn::session::parseText(std::string_view(reinterpret_cast<const char*>(data), size), attn::InputSpec{}, lookup);
  return 0;
}
