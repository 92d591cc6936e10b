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

}  // namespace attn
