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
inline constexpr int64_t kMaxCodes = int64_t{1} << 24;
inline constexpr double kMaxScale = 1e6;
inline constexpr int64_t kMaxThreads = 1024;

// Runs len(mask_lens) steps. step_fn(canvas int64 (B, N)) -> float32 logits (B or 2B, N, K) is
// called with the GIL held; mixing, sampling and selection run with the GIL released on
// num_threads threads (0: all cores). mask_lens (int64) and temperatures (float64) hold the
// per-step schedule and compounded Gumbel temperature. Returns the last step's samples (B, N).
pybind11::array_t<int64_t> generate(const pybind11::object& step_fn, const pybind11::object& canvas,
                                    const pybind11::object& mask_lens, const pybind11::object& temperatures,
                                    int64_t num_codes, double guidance_scale, uint64_t seed, bool greedy,
                                    int64_t num_threads, const pybind11::object& progress);

}  // namespace showo
