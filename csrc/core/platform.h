// Portability macros so the step math compiles unchanged as C++ (CPU) and CUDA (host + device).
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SNN_HD __host__ __device__ __forceinline__
#define SNN_RESTRICT __restrict__
// Fully unrolls a loop of constant trip count, so small arrays indexed by its counter stay in registers.
#define SNN_UNROLL _Pragma("unroll")
#else
// Always inlined on the CPU too: the CPU kernels are compiled once per instruction set (cpu/isa.h), and only code
// inlined into them is compiled for that instruction set.
#define SNN_HD inline __attribute__((always_inline))
#define SNN_RESTRICT __restrict__
#define SNN_UNROLL
#endif

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace snn {

// Storage <-> compute conversions. Half and bfloat16 are stored narrow and computed in float32; the generic
// version covers float and double.
template <typename acc_t, typename scalar_t>
SNN_HD acc_t to_acc(scalar_t value) {
  return static_cast<acc_t>(value);
}

template <typename scalar_t, typename acc_t>
SNN_HD scalar_t from_acc(acc_t value) {
  return static_cast<scalar_t>(value);
}

// bfloat16 storage for the CPU kernels, torch-free: the upper 16 bits of a float32 (c10::BFloat16's layout). A
// scalar type, not a struct: GCC vectorises loops that store a scalar, but not a struct copy. The conversions are
// integer operations that vectorise at every instruction-set level and round as PyTorch and CUDA's
// __float2bfloat16_rn do: to nearest, ties to even, NaN to a quiet NaN.
enum class bfloat16 : uint16_t {};

template <>
SNN_HD float to_acc<float, bfloat16>(bfloat16 value) {
  const uint32_t word = static_cast<uint32_t>(value) << 16;
  float result;
  memcpy(&result, &word, sizeof(result));
  return result;
}
template <>
SNN_HD bfloat16 from_acc<bfloat16, float>(float value) {
  uint32_t word;
  memcpy(&word, &value, sizeof(word));
  const uint32_t rounded = (word + 0x7fffu + ((word >> 16) & 1u)) >> 16;
  // NaN selected by a mask, not a conditional: GCC's if-conversion fails on the latter in some kernel loops.
  const uint32_t nan = 0u - static_cast<uint32_t>((word & 0x7fffffffu) > 0x7f800000u);
  return static_cast<bfloat16>((rounded & ~nan) | (0x7fc0u & nan));
}

// float16 storage for the CPU kernels, torch-free: IEEE binary16 bits (c10::Half's layout), a scalar type as
// bfloat16 is. The conversions here need no F16C: they are integer operations, one int-to-float conversion and
// masked selects. They round as c10::Half and CUDA's __float2half_rn do: to nearest, ties to even, overflow to
// infinity, NaN to a quiet NaN of the same sign. The AVX2 and AVX-512 kernels convert whole chunks with F16C
// instead (cpu/common.h), which rounds the same way.
enum class float16 : uint16_t {};

// All ones where the difference (of two values whose true difference fits in int32) is negative, else zero: a
// mask from an arithmetic shift, not a comparison, which GCC's if-conversion failed on in the LIF backward loop.
SNN_HD uint32_t sign_mask(uint32_t difference) {
  return static_cast<uint32_t>(static_cast<int32_t>(difference) >> 31);
}

template <>
SNN_HD float to_acc<float, float16>(float16 value) {
  const uint32_t bits = static_cast<uint32_t>(value);
  const uint32_t magnitude = bits & 0x7fffu;
  // Normal numbers: exponent rebiased (15 -> 127), mantissa widened (10 -> 23 bits).
  const uint32_t normal = (magnitude << 13) + 0x38000000u;
  // Infinity and NaN: exponent all ones, the mantissa (a NaN's payload) kept.
  const uint32_t special = (magnitude << 13) | 0x7f800000u;
  // Zero and subnormal numbers: the mantissa times 2^-24, exact in float32.
  const float small = static_cast<float>(static_cast<int32_t>(magnitude)) * 5.9604644775390625e-8f;
  uint32_t small_bits;
  memcpy(&small_bits, &small, sizeof(small_bits));
  const uint32_t is_special = sign_mask(0x7bffu - magnitude);  // magnitude >= 0x7c00
  const uint32_t is_small = sign_mask(magnitude - 0x0400u);     // magnitude < 0x0400
  const uint32_t word = ((bits & 0x8000u) << 16) | (special & is_special) | (small_bits & is_small) |
                        (normal & ~(is_special | is_small));
  float result;
  memcpy(&result, &word, sizeof(result));
  return result;
}
template <>
SNN_HD float16 from_acc<float16, float>(float value) {
  uint32_t word;
  memcpy(&word, &value, sizeof(word));
  const uint32_t magnitude = word & 0x7fffffffu;
  // Normal results: exponent rebiased, the 13 dropped mantissa bits rounded to nearest even; a carry out of the
  // mantissa moves up the exponent, from 65520 up to infinity (0x7c00).
  const uint32_t normal = (magnitude - 0x38000000u + 0x0fffu + ((magnitude >> 13) & 1u)) >> 13;
  // Results below 2^-14 (subnormal or zero): adding 0.5 puts the value in float's [0.5, 1) binade, whose steps are
  // half's subnormal step 2^-24, so the addition itself rounds to nearest even; the low bits are the half.
  float magnitude_value;
  memcpy(&magnitude_value, &magnitude, sizeof(magnitude_value));
  const float shifted = magnitude_value + 0.5f;
  uint32_t small;
  memcpy(&small, &shifted, sizeof(small));
  small -= 0x3f000000u;
  const uint32_t is_nan = sign_mask(0x7f800000u - magnitude);       // magnitude > 0x7f800000
  const uint32_t is_overflow = sign_mask(0x477fefffu - magnitude);  // 65520 and up
  const uint32_t is_small = sign_mask(magnitude - 0x38800000u);     // below 2^-14
  const uint32_t finite = (small & is_small) | (normal & ~is_small);
  const uint32_t half = (0x7e00u & is_nan) | (0x7c00u & is_overflow & ~is_nan) | (finite & ~(is_nan | is_overflow));
  return static_cast<float16>(half | ((word >> 16) & 0x8000u));
}

// A compute value rounded to storage precision and back, to_acc(from_acc(value)): what a kernel decides on when
// the decision must see the value as stored.
template <typename scalar_t, typename acc_t>
SNN_HD acc_t round_to_storage(acc_t value) {
  return to_acc<acc_t>(from_acc<scalar_t>(value));
}

// The same for float16 in float arithmetic, a third of the instructions of the two conversions, bit for bit the
// same result (checked for every float in csrc/tests/test_lif_cpu.cpp). Adding 2^(E + 13), E the exponent of
// |value| but at least -14 (half's smallest normal exponent), moves |value| into a binade whose step is half's
// step at E (2^(E - 10), or 2^-24 for half's subnormals), so the addition rounds to nearest even and subtracting
// it again is exact. 65520 and up overflow to infinity, NaN becomes the quiet NaN the conversions give.
template <>
SNN_HD float round_to_storage<float16, float>(float value) {
  uint32_t word;
  memcpy(&word, &value, sizeof(word));
  const uint32_t magnitude = word & 0x7fffffffu;
  const uint32_t exponent = magnitude & 0x7f800000u;
  // Exponents too large for the sum are overflows, masked below.
  const uint32_t scale_word = (exponent > 0x38800000u ? exponent : 0x38800000u) + (13u << 23);
  float scale, magnitude_value;
  memcpy(&scale, &scale_word, sizeof(scale));
  memcpy(&magnitude_value, &magnitude, sizeof(magnitude_value));
  const float rounded = (magnitude_value + scale) - scale;
  uint32_t rounded_word;
  memcpy(&rounded_word, &rounded, sizeof(rounded_word));
  const uint32_t is_nan = sign_mask(0x7f800000u - magnitude);       // magnitude > 0x7f800000
  const uint32_t is_overflow = sign_mask(0x477fefffu - magnitude);  // 65520 and up
  const uint32_t result_word = (0x7fc00000u & is_nan) | (0x7f800000u & is_overflow & ~is_nan) |
                               (rounded_word & ~(is_nan | is_overflow)) | (word & 0x80000000u);
  float result;
  memcpy(&result, &result_word, sizeof(result));
  return result;
}

#if defined(__CUDACC__)
// CUDA's half types through their intrinsics: PyTorch builds extensions with __CUDA_NO_HALF_CONVERSIONS__ and
// __CUDA_NO_BFLOAT16_CONVERSIONS__, which remove the implicit conversions static_cast would use.
template <>
SNN_HD float to_acc<float, __half>(__half value) {
  return __half2float(value);
}
template <>
SNN_HD __half from_acc<__half, float>(float value) {
  return __float2half_rn(value);
}
template <>
SNN_HD float to_acc<float, __nv_bfloat16>(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
template <>
SNN_HD __nv_bfloat16 from_acc<__nv_bfloat16, float>(float value) {
  return __float2bfloat16_rn(value);
}
#endif

}  // namespace snn
