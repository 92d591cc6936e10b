// A minimal fork-join loop for the CPU backend (no pool: the work items are coarse query blocks).
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "attention/types.h"

namespace attn {

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
