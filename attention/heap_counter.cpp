// Interposes malloc, free, calloc, realloc and the aligned allocators of glibc: each call forwards to
// glibc's own implementation (__libc_*) and adds or subtracts malloc_usable_size of the block. Eigen,
// operator new and the C++ library all allocate through these, so the count is the process's heap.
// The object is linked into a program only when something calls attn::heap (static library), and it
// is compiled out under AddressSanitizer, whose runtime interposes the same functions.
#include "attention/heap_counter.h"

#include <atomic>

#if defined(ATTNLAB_NO_HEAP_COUNTER) || defined(__SANITIZE_ADDRESS__) || !defined(__GLIBC__)
namespace attn::heap {
bool available() { return false; }
std::int64_t liveBytes() { return 0; }
std::int64_t peakBytes() { return 0; }
void resetPeak() {}
}  // namespace attn::heap
#else
#include <cerrno>
#include <cstddef>
#include <malloc.h>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
// Plain atomics (no constructors run), usable before main and from every thread.
std::atomic<std::int64_t> g_live{0};
std::atomic<std::int64_t> g_peak{0};

inline void added(void* p) {
  if (!p) return;
  const auto now = g_live.fetch_add(std::int64_t(malloc_usable_size(p)), std::memory_order_relaxed) +
                   std::int64_t(malloc_usable_size(p));
  auto peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
inline void removed(void* p) {
  if (p) g_live.fetch_sub(std::int64_t(malloc_usable_size(p)), std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t size) noexcept {
  void* p = __libc_malloc(size);
  added(p);
  return p;
}
void free(void* p) noexcept {
  removed(p);
  __libc_free(p);
}
void* calloc(size_t n, size_t size) noexcept {
  void* p = __libc_calloc(n, size);
  added(p);
  return p;
}
void* realloc(void* old, size_t size) noexcept {
  const std::int64_t before = old ? std::int64_t(malloc_usable_size(old)) : 0;
  void* p = __libc_realloc(old, size);
  if (p) {
    g_live.fetch_sub(before, std::memory_order_relaxed);
    added(p);
  } else if (size == 0) {
    g_live.fetch_sub(before, std::memory_order_relaxed);  // realloc(p, 0) freed p
  }
  return p;
}
void* memalign(size_t alignment, size_t size) noexcept {
  void* p = __libc_memalign(alignment, size);
  added(p);
  return p;
}
void* aligned_alloc(size_t alignment, size_t size) noexcept { return memalign(alignment, size); }
int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = memalign(alignment, size);
  if (!p && size) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace attn::heap {
bool available() { return true; }
std::int64_t liveBytes() { return g_live.load(std::memory_order_relaxed); }
std::int64_t peakBytes() { return g_peak.load(std::memory_order_relaxed); }
void resetPeak() { g_peak.store(g_live.load(std::memory_order_relaxed), std::memory_order_relaxed); }
}  // namespace attn::heap
#endif
