// Arguments of the fused LIF kernels: sizes, configuration and pointers. Torch-free, shared by CPU and CUDA.
//
// All [T, N] tensors are time-major and contiguous (index t * N + n); [N] tensors hold one value per neuron.
// The parameters alpha and theta repeat with period P over the neurons: neuron n's are at index n % P. P = N is
// one value per neuron; the torch ops pass a parameter over a trailing part of the state shape (P = 4096 for a
// per-feature parameter of [B, 4096], 1 for a number), so it is neither materialised over the batch nor read
// from memory once per neuron. Their gradients are per neuron ([N]); the ops sum them to the period.
// Storage type scalar_t for activations and states; acc_t (LifCompute below) for the compute, the parameters and
// their gradients. Optional pointers are null when absent.
#pragma once

#include <cstdint>
#include <type_traits>

#include "lif_step.h"

namespace snn {

// The neuron's compute type, also that of the parameters and their gradients: the storage type for float32 and
// float64, float32 for half and bfloat16 (whose state is kept in float32 between steps).
template <typename storage_t>
using LifCompute = std::conditional_t<sizeof(storage_t) >= 4, storage_t, float>;

template <typename scalar_t, typename acc_t>
struct LifForwardArgs {
  int64_t T;
  int64_t N;
  int64_t P;              // period of alpha and theta, >= 1 when N > 0
  LifConfig<acc_t> config;
  const scalar_t* x;      // [T, N]
  const acc_t* alpha;     // [P]
  const acc_t* theta;     // [P]
  const scalar_t* v0;     // [N] or null (zeros)
  const scalar_t* r0;     // [N] or null (zeros)
  scalar_t* spikes;       // [T, N]
  scalar_t* h;            // [T, N] or null: the only tensor saved for backward
  scalar_t* v_last;       // [N]
  scalar_t* r_last;       // [N]
  scalar_t* v_seq;        // [T, N] or null: the membrane sequence, v[t] after step t's reset
};

template <typename scalar_t, typename acc_t>
struct LifBackwardArgs {
  int64_t T;
  int64_t N;
  int64_t P;                    // period of alpha and theta
  LifConfig<acc_t> config;
  const scalar_t* grad_spikes;  // [T, N]
  const scalar_t* grad_v_last;  // [N] or null (zeros)
  const scalar_t* grad_r_last;  // [N] or null (zeros)
  const scalar_t* h;            // [T, N] saved by the forward, or null: recomputed from x, v0, r0 (CPU only)
  const acc_t* alpha;           // [P]
  const acc_t* theta;           // [P]
  const scalar_t* v0;           // [N] or null (zeros)
  scalar_t* grad_x;             // [T, N]
  scalar_t* grad_v0;            // [N]
  scalar_t* grad_r0;            // [N]
  acc_t* grad_alpha;            // [N] or null: per-neuron sums over t
  acc_t* grad_theta;            // [N] or null
  const scalar_t* x;            // [T, N], read only when h is null
  const scalar_t* r0;           // [N] or null (zeros), read only when h is null
  const scalar_t* grad_v_seq;   // [T, N] or null (zeros): dL/dv[t] of the membrane sequence
};

}  // namespace snn
