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
