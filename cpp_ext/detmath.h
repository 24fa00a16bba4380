// Bit-reproducible exp and log from IEEE-754 double +, -, *, / and bit tricks.
// Twin of showo_sdk/sampling/detmath.py: the same operations in the same order, so numpy and
// C++ produce identical bits (glibc's and numpy's exp/log differ in the last bit). Needs
// -ffp-contract=off (no fused multiply-add) and no -ffast-math; loops over it vectorise.
#pragma once

#include <cstdint>
#include <cstring>

namespace showo::detmath {

inline constexpr double kExpMin = -708.0;  // below: 0, so every non-zero result is a normal double
inline constexpr double kLog2e = 1.4426950408889634;
inline constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 32 significant bits: n * kLn2Hi exact
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
inline constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: (v + S) - S = nearest integer
inline constexpr uint64_t kShifterBits = 0x4338000000000000ULL;
inline constexpr double kSqrt2 = 1.4142135623730951;
inline constexpr uint64_t kMantissa = 0x000FFFFFFFFFFFFFULL;
inline constexpr uint64_t kOneBits = 0x3FF0000000000000ULL;

constexpr double inverse_factorial(int k) {
  double f = 1.0;
  for (int i = 2; i <= k; ++i) f *= i;  // exact: 13! < 2^53
  return 1.0 / f;
}

// Taylor coefficients 1/k!, k = 0..13, for |r| <= ln2/2; and 1/(2k+1), k = 0..10, for atanh.
inline constexpr double kExpCoeffs[14] = {
    inverse_factorial(0),  inverse_factorial(1),  inverse_factorial(2),  inverse_factorial(3),
    inverse_factorial(4),  inverse_factorial(5),  inverse_factorial(6),  inverse_factorial(7),
    inverse_factorial(8),  inverse_factorial(9),  inverse_factorial(10), inverse_factorial(11),
    inverse_factorial(12), inverse_factorial(13)};
inline constexpr double kLogCoeffs[11] = {1.0 / 1,  1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9, 1.0 / 11,
                                          1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21};

inline uint64_t bits_of(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

inline double double_of(uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// exp(x) for x <= 709 to ~1 ulp; 0 for x < kExpMin (and -inf).
inline double exp_det(double x) {
  const double xc = x < kExpMin ? kExpMin : x;
  const double t = xc * kLog2e + kShifter;
  const double n = t - kShifter;
  const double r = (xc - n * kLn2Hi) - n * kLn2Lo;
  double p = kExpCoeffs[13];
  for (int k = 12; k >= 0; --k) p = p * r + kExpCoeffs[k];
  const double scale = double_of((bits_of(t) - kShifterBits + 1023) << 52);
  const double y = p * scale;
  return x < kExpMin ? 0.0 : y;
}

// log(x) for positive normal x (callers clamp to >= 1e-20) to ~1 ulp.
inline double log_det(double x) {
  const uint64_t b = bits_of(x);
  int64_t k = static_cast<int64_t>(b >> 52) - 1023;
  double m = double_of((b & kMantissa) | kOneBits);  // x = m * 2^k, m in [1, 2)
  if (m > kSqrt2) {
    m = m * 0.5;
    k += 1;
  }
  const double kd = static_cast<double>(k);
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  double poly = kLogCoeffs[10];
  for (int i = 9; i >= 0; --i) poly = poly * z + kLogCoeffs[i];
  return kd * kLn2Hi + ((s + s) * poly + kd * kLn2Lo);
}

}  // namespace showo::detmath
