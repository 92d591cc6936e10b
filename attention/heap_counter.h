// A counting allocator for the CPU memory figures of sweeps: every malloc/free of the process goes
// through counters of live heap bytes and their high-water mark (heap_counter.cpp interposes glibc's
// allocator; builds with sanitizers, which interpose it themselves, leave it out).
#pragma once
#include <cstdint>

namespace attn::heap {

/// Whether allocations are being counted in this build (false under sanitizers).
bool available();
/// Live heap bytes of the whole process (usable sizes of the blocks allocated and not yet freed). Every
/// thread counts: work running beside a measured run (a GUI rerun beside a Curves sweep) adds to its peak.
std::int64_t liveBytes();
/// Highest liveBytes() since the last resetPeak().
std::int64_t peakBytes();
/// Sets the high-water mark to the current live bytes.
void resetPeak();

}  // namespace attn::heap
