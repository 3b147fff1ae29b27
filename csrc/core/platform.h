// Portability macros so the step math compiles unchanged as C++ (CPU) and CUDA (host + device).
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SNN_HD __host__ __device__ __forceinline__
#define SNN_RESTRICT __restrict__
// Unrolling the time loop lets the compiler issue the next steps' loads before the current step's dependent math.
#define SNN_UNROLL(n) _Pragma(SNN_STRINGIFY(unroll n))
#else
// Always inlined on the CPU too: the CPU kernels are compiled once per instruction set (cpu/isa.h), and only code
// inlined into them is compiled for that instruction set.
#define SNN_HD inline __attribute__((always_inline))
#define SNN_RESTRICT __restrict__
#define SNN_UNROLL(n)
#endif
#define SNN_STRINGIFY(text) #text

#include <cstdint>

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

}  // namespace snn
