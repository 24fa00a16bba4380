// The MaskGIT re-masking loop (SHOWO_SPEC.md §5), twin of showo_sdk/sampling/reference.py.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

namespace showo {

// A bad argument or a bad step_fn output; Python sees it as _maskgit.InvalidArgument (a ValueError).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

inline constexpr int64_t kMaxSteps = 10000;
// Keep these identical to showo_sdk/sampling/validate.py (MAX_CODES, MAX_SCALE, MAX_THREADS,
// MAX_POSITIONS, MAX_LOGITS): both paths refuse the same inputs.
inline constexpr int64_t kMaxCodes = int64_t{1} << 20;
inline constexpr double kMaxScale = 1e6;
inline constexpr int64_t kMaxThreads = 1024;
inline constexpr int64_t kMaxPositions = int64_t{1} << 24;  // B * N
inline constexpr int64_t kMaxLogits = int64_t{1} << 32;     // rows * N * K of one step's logits
// Threads actually started (num_threads above this is accepted and capped; results never depend on it).
inline constexpr int64_t kMaxPoolThreads = 256;
// Per-thread scratch is threads x padded K floats + doubles: threads are capped so it stays under this.
inline constexpr int64_t kMaxScratchCodes = int64_t{1} << 24;

// Runs len(mask_lens) steps. step_fn(canvas int64 (B, N)) -> float32 logits (B or 2B, N, K) is
// called with the GIL held; mixing, sampling and selection run with the GIL released on
// num_threads threads (0: all cores). mask_lens (int64) and temperatures (float64) hold the
// per-step schedule and compounded Gumbel temperature. Returns the last step's samples (B, N).
pybind11::array_t<int64_t> generate(const pybind11::object& step_fn, const pybind11::object& canvas,
                                    const pybind11::object& mask_lens, const pybind11::object& temperatures,
                                    int64_t num_codes, double guidance_scale, uint64_t seed, bool greedy,
                                    int64_t num_threads, const pybind11::object& progress);

}  // namespace showo
