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

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace snn {

// Storage <-> compute conversions. Half and bfloat16 are stored narrow and computed in float32; the generic
// version covers float, double and any storage type with float conversions (c10::Half, c10::BFloat16).
template <typename acc_t, typename scalar_t>
SNN_HD acc_t to_acc(scalar_t value) {
  return static_cast<acc_t>(value);
}

template <typename scalar_t, typename acc_t>
SNN_HD scalar_t from_acc(acc_t value) {
  return static_cast<scalar_t>(value);
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
