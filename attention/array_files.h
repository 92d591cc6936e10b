// Named arrays from the files people dump tensors into: NumPy .npy (one array) and .npz (a zip of .npy,
// stored or deflated, as np.savez and np.savez_compressed write them) and Hugging Face .safetensors
// (F32, F64, F16, BF16). Q, K and V of one head are picked from them by name. Every failure is a message
// that says which file, which array and what to change.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "attention/inputs.h"
#include "attention/types.h"

namespace attn::arrays {

/// Half the machine's memory, at most 4 GiB: what the arrays read from one file may take together.
std::uint64_t defaultMemoryBudget();

/// What an imported file is held to, checked from the sizes and shapes its headers declare before any data
/// is read or inflated: the limits of generated inputs (tokens, head size, elements of one matrix) and a
/// memory budget for the arrays read together (as float32, plus the largest buffer one needs while read).
struct Limits {
  Index max_tokens = kMaxInputTokens;
  Index max_dim = kMaxHeadSize;
  std::uint64_t max_bytes = defaultMemoryBudget();
};

/// Every 2-D (or 1-D) float array of the file, by name (.npy: its file stem). Beyond the limits or with
/// another element type: a failure naming the array.
Expected<std::map<std::string, Matrix>> load(const std::string& path, const Limits& limits = {});

/// Q, K and V from one file: arrays named q, k, v (also query/key/value, any case). The inputs are
/// validated (shapes, finite values); the spec's n, d, dv and source describe the file.
Expected<Inputs> loadQkv(const std::string& path, const Limits& limits = {});

/// The same from bytes in memory (tests, fuzzing): `name`'s extension says the format (.npy, .npz,
/// .safetensors) and names the file in messages; a .npy holds Q, K, V stacked for parseQkv.
Expected<std::map<std::string, Matrix>> parse(std::span<const std::byte> bytes, const std::string& name,
                                              const Limits& limits = {});
Expected<Inputs> parseQkv(std::span<const std::byte> bytes, const std::string& name, const Limits& limits = {});

}  // namespace attn::arrays
