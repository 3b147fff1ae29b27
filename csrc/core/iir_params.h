// Arguments of the fused IIR filter kernels: sizes and pointers. Torch-free, shared by CPU and CUDA.
//
// All [T, N] tensors are time-major and contiguous (index t * N + n); [N] tensors hold one value per element.
// The coefficients a1, a2, b repeat with period P over the elements: element n's are at index n % P (as the
// LIF parameters, core/lif_params.h); their gradients are per element ([N]) and the ops sum them to the period.
// Storage type scalar_t for signals and states; acc_t for the compute, the coefficients and their gradients
// (IirCompute below). Optional pointers are null when absent; a2 null means first order.
#pragma once

#include <cstdint>
#include <type_traits>

#include "iir_step.h"

namespace snn {

// The filter's compute type, which is also the dtype of the coefficients and their gradients: double for float32
// and float64 storage, float for half and bfloat16. The state is a linear recurrence with long memory, so float32
// rounding of it accumulates through the filter's gain (up to 1e-3 relative error at T = 1000 with slow poles,
// in the float32 reference too); the kernels are memory-bound, so double arithmetic costs little. Half and
// bfloat16 storage rounding dominates any compute error, so float32 suffices there.
template <typename storage_t>
using IirCompute = std::conditional_t<sizeof(storage_t) >= 4, double, float>;

template <typename scalar_t, typename acc_t>
struct IirForwardArgs {
  int64_t T;
  int64_t N;
  int64_t P;                 // period of the coefficients, >= 1 when N > 0
  const scalar_t* x;         // [T, N]
  const acc_t* a1;           // [P]
  const acc_t* a2;           // [P] or null: first order
  const acc_t* b;            // [P]
  const scalar_t* p1;        // [N] or null (zeros): p[-1]
  const scalar_t* p2;        // [N] or null (zeros): p[-2]
  scalar_t* p;               // [T, N]: the output, and (with x) all the backward needs
  scalar_t* p_last;          // [N]: p[T-1]
  scalar_t* p_before_last;   // [N]: p[T-2], which is p[-1] when T = 1
};

template <typename scalar_t, typename acc_t>
struct IirBackwardArgs {
  int64_t T;
  int64_t N;
  int64_t P;                           // period of the coefficients
  const scalar_t* grad_p;              // [T, N]
  const scalar_t* grad_p_last;         // [N] or null (zeros)
  const scalar_t* grad_p_before_last;  // [N] or null (zeros)
  const scalar_t* p;                   // [T, N] the forward's output; read only for the a1, a2 gradients
  const scalar_t* x;                   // [T, N]; read only for the b gradient
  const acc_t* a1;                     // [P]
  const acc_t* a2;                     // [P] or null: first order
  const acc_t* b;                      // [P]
  const scalar_t* p1;                  // [N] or null (zeros); read only for the a1, a2 gradients
  const scalar_t* p2;                  // [N] or null (zeros)
  scalar_t* grad_x;                    // [T, N] or null: not wanted
  acc_t* grad_a1;                      // [N] or null: a1 and a2 gradients not wanted (per-element sums over t)
  acc_t* grad_a2;                      // [N] or null: not wanted, or first order
  acc_t* grad_b;                       // [N] or null: not wanted
  scalar_t* grad_p1;                   // [N]
  scalar_t* grad_p2;                   // [N]
};

// Row k >= -2 of the filter's history p[k] (element 0 of the row): the forward's output for k >= 0, else an
// initial state; null when that state is absent (zeros).
template <typename scalar_t, typename acc_t>
SNN_HD const scalar_t* iir_history_row(const IirBackwardArgs<scalar_t, acc_t>& a, int64_t k) {
  if (k >= 0) return a.p + k * a.N;
  return k == -1 ? a.p1 : a.p2;
}

}  // namespace snn
