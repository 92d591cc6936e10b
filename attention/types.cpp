#include "attention/types.h"

#include <string>

namespace attn {

Index checkedMul(Index a, Index b, const char* what, Index limit) {
  if (a < 0 || b < 0) throw UserError(std::string(what) + ": negative size");
  if (a != 0 && b > limit / a)
    throw UserError(std::string(what) + ": size " + std::to_string(a) + " × " + std::to_string(b) +
                    " is too large");
  return a * b;
}

std::string failureMessage(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
    return "internal error (no exception)";
  } catch (const Cancelled&) {
    return "cancelled";
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::bad_alloc&) {
    return "out of memory: try a smaller N";
  } catch (const std::exception& e) {
    return std::string("internal error: ") + e.what();
  } catch (...) {
    return "internal error (unknown exception)";
  }
}

}  // namespace attn
