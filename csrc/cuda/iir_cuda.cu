// Fused IIR filter forward and backward on the GPU: one thread per element, looping over t (backward: reverse).
//
//   forward:  p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]                  (p[-1] = p1, p[-2] = p2)
//   adjoint:  q[t] = g[t] + a1 q[t+1] + a2 q[t+2]                      (g = dL/dp plus the final-state grads)
//             dL/dx[t] = b q[t];  dL/da1 = sum_t q[t] p[t-1];  dL/da2 = sum_t q[t] p[t-2];
//             dL/db = sum_t q[t] x[t];  dL/dp1 = a1 q[0] + a2 q[1];  dL/dp2 = a2 q[0]
// (derivation and the carried form in core/iir_step.h; the same step functions as the CPU kernels). The backward
// reads only the forward's output p and its input x, each only when a gradient needs it; p[t-1] and p[t-2] are
// carried in registers, so each p row is loaded once. Time-major [T, N] layout: a warp reads 32 consecutive
// elements of one row, so loads and stores coalesce. float32 and float64 are computed in float64, half and
// bfloat16 in float32 (why: torch/iir_common.h). Coefficient
// gradients are per-element sums over t in registers: deterministic, no atomics. First order is its own
// template instantiation. Torch-free: launchers take the argument structs and a stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../core/iir_params.h"
#include "iir_cuda.h"
#include "launch.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t load_or_zero(const scalar_t* row, int64_t n) {
  return row ? to_acc<acc_t>(row[n]) : acc_t(0);
}

template <typename scalar_t, typename acc_t, bool kSecondOrder>
__global__ void iir_forward_kernel(const IirForwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= a.N) return;
  const acc_t a1 = a.a1[n];
  const acc_t a2 = kSecondOrder ? a.a2[n] : acc_t(0);
  const acc_t b = a.b[n];
  acc_t p_prev = load_or_zero<scalar_t, acc_t>(a.p1, n);
  acc_t p_prev2 = load_or_zero<scalar_t, acc_t>(a.p2, n);
  const scalar_t* SNN_RESTRICT x = a.x + n;
  scalar_t* SNN_RESTRICT p_out = a.p + n;
#pragma unroll 4
  for (int64_t t = 0; t < a.T; ++t) {
    const acc_t p = iir_step<kSecondOrder>(a1, a2, b, p_prev, p_prev2, to_acc<acc_t>(x[t * a.N]));
    p_out[t * a.N] = from_acc<scalar_t>(p);
    p_prev2 = p_prev;
    p_prev = p;
  }
  a.p_last[n] = from_acc<scalar_t>(p_prev);
  a.p_before_last[n] = from_acc<scalar_t>(p_prev2);
}

template <typename scalar_t, typename acc_t, bool kSecondOrder>
__global__ void iir_backward_kernel(const IirBackwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= a.N) return;
  // Which gradients are wanted is uniform across the grid, so these branches never diverge.
  const bool want_x = a.grad_x != nullptr, want_a = a.grad_a1 != nullptr, want_b = a.grad_b != nullptr;
  const acc_t a1 = a.a1[n];
  const acc_t a2 = kSecondOrder ? a.a2[n] : acc_t(0);
  const acc_t b = a.b[n];
  acc_t u1 = load_or_zero<scalar_t, acc_t>(a.grad_p_last, n);
  acc_t u2 = load_or_zero<scalar_t, acc_t>(a.grad_p_before_last, n);
  acc_t grad_a1 = acc_t(0), grad_a2 = acc_t(0), grad_b = acc_t(0);
  // p[t-1] and p[t-2] for the a1, a2 gradients, shifted down one step per iteration.
  acc_t p_prev = acc_t(0), p_prev2 = acc_t(0);
  if (want_a) {
    p_prev = load_or_zero<scalar_t, acc_t>(iir_history_row(a, a.T - 2), n);
    if (kSecondOrder) p_prev2 = load_or_zero<scalar_t, acc_t>(iir_history_row(a, a.T - 3), n);
  }
  const scalar_t* SNN_RESTRICT g = a.grad_p + n;
#pragma unroll 4
  for (int64_t t = a.T - 1; t >= 0; --t) {
    const acc_t q = iir_adjoint_step<kSecondOrder>(a1, a2, to_acc<acc_t>(g[t * a.N]), u1, u2);
    if (want_x) a.grad_x[t * a.N + n] = from_acc<scalar_t>(b * q);
    if (want_b) grad_b += q * to_acc<acc_t>(a.x[t * a.N + n]);
    if (want_a) {
      grad_a1 += q * p_prev;
      if (kSecondOrder) {
        grad_a2 += q * p_prev2;
        p_prev = p_prev2;
        p_prev2 = t >= 1 ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, t - 3), n) : acc_t(0);
      } else {
        p_prev = t >= 1 ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, t - 2), n) : acc_t(0);
      }
    }
  }
  a.grad_p1[n] = from_acc<scalar_t>(u1);
  a.grad_p2[n] = from_acc<scalar_t>(u2);
  if (want_a) {
    a.grad_a1[n] = grad_a1;
    if (kSecondOrder) a.grad_a2[n] = grad_a2;
  }
  if (want_b) a.grad_b[n] = grad_b;
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_iir_forward(const IirForwardArgs<scalar_t, acc_t>& args, cudaStream_t stream) {
  if (args.N == 0) return cudaSuccess;
  if (args.a2) {
    iir_forward_kernel<scalar_t, acc_t, true><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  } else {
    iir_forward_kernel<scalar_t, acc_t, false><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_iir_backward(const IirBackwardArgs<scalar_t, acc_t>& args, cudaStream_t stream) {
  if (args.N == 0) return cudaSuccess;
  if (args.a2) {
    iir_backward_kernel<scalar_t, acc_t, true><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  } else {
    iir_backward_kernel<scalar_t, acc_t, false><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

#define SNN_INSTANTIATE_IIR(scalar_t, acc_t)                                                           \
  template cudaError_t launch_iir_forward<scalar_t, acc_t>(const IirForwardArgs<scalar_t, acc_t>&,   \
                                                           cudaStream_t);                            \
  template cudaError_t launch_iir_backward<scalar_t, acc_t>(const IirBackwardArgs<scalar_t, acc_t>&, \
                                                            cudaStream_t);

SNN_INSTANTIATE_IIR(float, double)
SNN_INSTANTIATE_IIR(double, double)
SNN_INSTANTIATE_IIR(__half, float)
SNN_INSTANTIATE_IIR(__nv_bfloat16, float)

}  // namespace cuda
}  // namespace snn
