// Named arrays from the files people dump tensors into: NumPy .npy (one array) and .npz (a zip of .npy,
// stored or deflated, as np.savez and np.savez_compressed write them) and Hugging Face .safetensors
// (F32, F64, F16, BF16). Q, K and V of one head are picked from them by name. Every failure is a message
// that says which file, which array and what to change.
#pragma once
#include <map>
#include <string>

#include "attention/inputs.h"
#include "attention/types.h"

namespace attn::arrays {

/// Every 2-D (or 1-D) float array of the file, by name (.npy: its file stem). Larger than 4 GiB or
/// with another element type: a failure naming the array.
Expected<std::map<std::string, Matrix>> load(const std::string& path);

/// Q, K and V from one file: arrays named q, k, v (also query/key/value, any case). The inputs are
/// validated (shapes, finite values); the spec's n, d, dv and source describe the file.
Expected<Inputs> loadQkv(const std::string& path);

}  // namespace attn::arrays
