// Hot path of the sampler: every loop here is written over fixed blocks of kLanes values so
// GCC vectorises it; on x86-64 Linux the functions are cloned for AVX-512 / AVX2 / baseline and
// picked at load time. Only exact IEEE operations are used, so every clone gives the same bits.
#include "categorical.h"

#include <cstring>
#include <limits>

#include "detmath.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SHOWO_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SHOWO_HOT
#endif

namespace showo {
namespace {

// Non-zero when v is NaN or +-Inf (all exponent bits set); integer-only, so it vectorises.
inline uint32_t non_finite_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return ((b & 0x7F800000u) + 0x00800000u) & 0x80000000u;
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// e[w] = exp_det(l[w] - max) and acc[w] += e[w] for one block of kLanes values.
inline void exp_block(const float* l, double max_logit, double* e, double* acc) {
  for (int64_t w = 0; w < kLanes; ++w) {
    const double v = detmath::exp_det(static_cast<double>(l[w]) - max_logit);
    e[w] = v;
    acc[w] += v;
  }
}

}  // namespace

SHOWO_HOT bool all_finite(const float* values, int64_t num_codes) {
  uint32_t bad = 0;
  for (int64_t j = 0; j < num_codes; ++j) bad |= non_finite_bits(values[j]);
  return bad == 0;
}

SHOWO_HOT RowSample sample_row(const float* cond, const float* uncond, int64_t num_codes, float mix_cond,
                               float mix_uncond, bool greedy, double u, const RowScratch& scratch) {
  const int64_t full = num_codes / kLanes * kLanes;
  const int64_t padded = padded_codes(num_codes);
  float* mixed = scratch.mixed;

  // Pass 1: mix (float32, official operation order), check finiteness, lane-wise maximum.
  float lane_max[kLanes];
  for (int64_t w = 0; w < kLanes; ++w) lane_max[w] = kNegInf;
  uint32_t bad_input = 0;
  uint32_t bad_mix = 0;
  if (uncond != nullptr) {
    for (int64_t j = 0; j < full; j += kLanes) {
      for (int64_t w = 0; w < kLanes; ++w) {
        const float c = cond[j + w];
        const float n = uncond[j + w];
        const float v = mix_cond * c - mix_uncond * n;
        bad_input |= non_finite_bits(c) | non_finite_bits(n);
        bad_mix |= non_finite_bits(v);
        mixed[j + w] = v;
        lane_max[w] = lane_max[w] < v ? v : lane_max[w];
      }
    }
    for (int64_t j = full; j < num_codes; ++j) {
      const float v = mix_cond * cond[j] - mix_uncond * uncond[j];
      bad_input |= non_finite_bits(cond[j]) | non_finite_bits(uncond[j]);
      bad_mix |= non_finite_bits(v);
      mixed[j] = v;
      lane_max[0] = lane_max[0] < v ? v : lane_max[0];
    }
  } else {
    std::memcpy(mixed + full, cond + full, sizeof(float) * static_cast<size_t>(num_codes - full));
    for (int64_t j = 0; j < full; j += kLanes) {
      for (int64_t w = 0; w < kLanes; ++w) {
        const float v = cond[j + w];
        bad_input |= non_finite_bits(v);
        lane_max[w] = lane_max[w] < v ? v : lane_max[w];
      }
    }
    for (int64_t j = full; j < num_codes; ++j) {
      bad_input |= non_finite_bits(cond[j]);
      lane_max[0] = lane_max[0] < cond[j] ? cond[j] : lane_max[0];
    }
  }
  if (bad_input != 0) return {RowStatus::kNonFiniteInput, 0, 0.0};
  if (bad_mix != 0) return {RowStatus::kOverflow, 0, 0.0};
  float max_logit = lane_max[0];
  for (int64_t w = 1; w < kLanes; ++w) max_logit = max_logit < lane_max[w] ? lane_max[w] : max_logit;

  // Pass 2: e_j = exp(l_j - max) in float64 and the kLanes lane sums; the tail block is padded
  // with -inf, whose exp_det is exactly 0.
  const float* logits = uncond != nullptr ? mixed : cond;
  for (int64_t j = num_codes; j < padded; ++j) mixed[j] = kNegInf;
  double acc[kLanes] = {};
  double* exps = scratch.exps;
  const double dmax = static_cast<double>(max_logit);
  for (int64_t j = 0; j < full; j += kLanes) exp_block(logits + j, dmax, exps + j, acc);
  if (full < padded) exp_block(mixed + full, dmax, exps + full, acc);

  double prefix[kLanes];
  prefix[0] = acc[0];
  for (int64_t w = 1; w < kLanes; ++w) prefix[w] = prefix[w - 1] + acc[w];
  const double total = prefix[kLanes - 1];

  int64_t argmax = 0;
  while (logits[argmax] != max_logit) ++argmax;  // first maximum; exists, all values are finite
  int64_t index = argmax;
  if (!greedy) {
    const double target = u * total;
    int64_t lane = 0;
    for (int64_t w = 0; w < kLanes; ++w) lane += prefix[w] <= target;
    if (lane > kLanes - 1) lane = kLanes - 1;
    double walk = lane > 0 ? prefix[lane - 1] : 0.0;
    for (int64_t j = lane; j < padded; j += kLanes) {
      walk = walk + exps[j];
      if (walk > target) {
        index = j;
        break;
      }
    }
  }
  return {RowStatus::kOk, index, exps[index] / total};
}

SHOWO_HOT void exp_det_array(const double* x, double* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = detmath::exp_det(x[i]);
}

}  // namespace showo
