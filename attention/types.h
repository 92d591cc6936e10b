// Basic types shared by every layer. attention/ is pure C++20 + Eigen: no Qt, Vulkan or ImGui.
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace attn {

using Index = std::int64_t;
/// Row-major float matrix: Q, K are N×d, V is N×dv, outputs N×dv. Row i is token i.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;
using VectorD = Eigen::VectorXd;

/// Half-open index range [begin, end).
struct Range {
  Index begin = 0, end = 0;
  Index size() const { return end - begin; }
  bool operator==(const Range&) const = default;
};

/// An error a person can act on: bad parameters, a malformed file, an input too large for memory.
/// Thrown at user-input and file boundaries; the CLI prints what() on one line, the GUI in a dialog.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown when a run is cancelled through RunOptions::cancel.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

/// The one error policy of every boundary a person sees (the CLI's exit line, the window's error box and
/// panels, exports, sessions, the Curves dock): the message for the exception being handled — a UserError's
/// own words, "cancelled", "out of memory: try a smaller N", or "internal error: …" for anything else (a bug
/// or a lost device, said as such). Call it inside a catch block.
std::string failureMessage(std::exception_ptr error = std::current_exception());

/// A value or a message for a person (for fallible parsers at the file boundary).
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  static Expected failure(std::string message) { return Expected(Fail{std::move(message)}); }
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& {
    if (!ok()) throw UserError(error());
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!ok()) throw UserError(error());
    return std::get<0>(std::move(v_));
  }
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  struct Fail {
    std::string message;
  };
  explicit Expected(Fail f) : v_(std::move(f)) {}
  std::variant<T, Fail> v_;
};

/// a·b for sizes, or UserError when it overflows `limit` (checked shape arithmetic).
Index checkedMul(Index a, Index b, const char* what, Index limit = INT64_MAX);

}  // namespace attn
