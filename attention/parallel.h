// A minimal fork-join loop for the CPU backend (no pool: the work items are coarse query blocks).
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "attention/types.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace attn {

/// While alive, this thread flushes subnormal floats to zero (FTZ) and reads them as zero (DAZ); the
/// previous mode comes back on destruction. Subnormals (|x| < 1.2e-38) carry nothing a weight, an
/// output or a picture can show, but every x86 operation on one takes ~100 cycles: a softmax row's
/// exp(s − lse) underflows into them routinely, and Linformer's picture (a GEMM over such rows) ran
/// 6× slower for it. Threads started inside the scope inherit the mode (POSIX: a new thread takes
/// its creator's floating-point environment).
class ScopedFlushDenormals {
 public:
#if defined(__SSE__)
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }
#endif
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

 private:
#if defined(__SSE__)
  unsigned saved_;
#endif
};

/// Calls fn(i) for i in [0, count) on up to `threads` threads (0: hardware concurrency). The first
/// exception thrown by any call is rethrown on the caller's thread after all threads joined.
inline void parallelFor(Index count, int threads, const std::function<void(Index)>& fn) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<Index>(threads, count));
  if (threads <= 1) {
    for (Index i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<Index> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (Index i = next++; i < count && !failed; i = next++) {
      try {
        fn(i);
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace attn
