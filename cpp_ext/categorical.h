// One position of a MaskGIT step: CFG mix, finiteness checks, softmax sampling or argmax.
// Twin of showo_sdk/sampling/categorical.py (read its docstring for the exact definition).
#pragma once

#include <cstdint>

namespace showo {

inline constexpr int64_t kLanes = 16;  // lane count of the softmax sum; fixed by the definition

inline int64_t padded_codes(int64_t num_codes) { return (num_codes + kLanes - 1) / kLanes * kLanes; }

enum class RowStatus { kOk, kNonFiniteInput, kOverflow };

struct RowSample {
  RowStatus status;
  int64_t index;  // the chosen code, in [0, num_codes)
  double prob;    // its softmax probability, e_j / Z
};

// Per-thread work space for one row: num_codes rounded up to kLanes, allocated once per call.
struct RowScratch {
  float* mixed;  // padded_codes floats
  double* exps;  // padded_codes doubles
};

// Samples a code from logits (cond, or (1+g)*cond - g*uncond in float32 when uncond != nullptr).
// greedy: argmax (first maximum); otherwise inverse-CDF sampling with the uniform u in (0, 1).
// Reports non-finite inputs (kNonFiniteInput) and a float32 overflow of the mix (kOverflow).
RowSample sample_row(const float* cond, const float* uncond, int64_t num_codes, float mix_cond, float mix_uncond,
                     bool greedy, double u, const RowScratch& scratch);

// True when all num_codes values are finite (neither NaN nor +-Inf).
bool all_finite(const float* values, int64_t num_codes);

// out[i] = exp_det(x[i]) through the same vectorised code paths as the sampler (for tests).
void exp_det_array(const double* x, double* out, int64_t count);

}  // namespace showo
