// Counter-based random numbers: a draw is a hash of (seed, step, row, position, stream).
// Twin of showo_sdk/sampling/rng.py. Stateless, so results do not depend on thread count or
// on the order positions are visited in.
#pragma once

#include <cstdint>

namespace showo::rng {

inline constexpr uint64_t kStreamCategorical = 0;  // the token draw at a masked position
inline constexpr uint64_t kStreamGumbel = 1;       // the Gumbel noise of every position's confidence
inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// splitmix64 finaliser.
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t absorb(uint64_t h, uint64_t v) { return mix(h ^ (v + kGolden)); }

inline uint64_t random_bits(uint64_t seed, uint64_t step, uint64_t row, uint64_t position, uint64_t stream) {
  uint64_t h = absorb(mix(seed + kGolden), step);
  h = absorb(absorb(h, row), position);
  return absorb(h, stream);
}

// Uniform in (0, 1): ((bits >> 12) + 0.5) * 2^-52, never exactly 0 or 1.
inline double uniform(uint64_t seed, uint64_t step, uint64_t row, uint64_t position, uint64_t stream) {
  return (static_cast<double>(random_bits(seed, step, row, position, stream) >> 12) + 0.5) * 0x1p-52;
}

}  // namespace showo::rng
