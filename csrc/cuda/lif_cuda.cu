// Fused LIF forward and backward on the GPU: one thread per neuron, looping over t (backward: t in reverse).
//
// Recurrence and adjoint: see core/lif_step.h (the same step functions as the CPU kernels). Time-major [T, N]
// layout, so a warp reads 32 consecutive neurons of one row: loads and stores coalesce. State stays in registers;
// each [T, N] tensor is read or written once, plus h[t-1] re-read from cache for the alpha gradient. Half and
// bfloat16 are computed in float32. Parameter gradients are per-neuron sums over t in registers: deterministic,
// no atomics. Torch-free: launchers take the argument structs and a stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../core/lif_params.h"
#include "launch.h"
#include "lif_cuda.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
__global__ void lif_forward_kernel(const LifForwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= a.N) return;
  const LifConfig<acc_t> c = a.config;
  const acc_t alpha = a.alpha[n];
  const acc_t theta = a.theta[n];
  acc_t v = a.v0 ? to_acc<acc_t>(a.v0[n]) : acc_t(0);
  acc_t r = (c.trace && a.r0) ? to_acc<acc_t>(a.r0[n]) : acc_t(0);
  const scalar_t* SNN_RESTRICT x = a.x + n;
  scalar_t* SNN_RESTRICT spikes = a.spikes + n;
  scalar_t* SNN_RESTRICT h_out = a.h ? a.h + n : nullptr;
#pragma unroll 4
  for (int64_t t = 0; t < a.T; ++t) {
    const acc_t h = lif_charge(alpha, v, to_acc<acc_t>(x[t * a.N]), r);
    // The spike is decided on h as stored, so the backward recomputes exactly the same spike.
    const scalar_t h_stored = from_acc<scalar_t>(h);
    const acc_t s = lif_fire(to_acc<acc_t>(h_stored), theta);
    if (h_out) h_out[t * a.N] = h_stored;
    spikes[t * a.N] = from_acc<scalar_t>(s);
    v = lif_reset(c, h, s, theta);
    r = lif_trace(c, r, s);
  }
  a.v_last[n] = from_acc<scalar_t>(v);
  a.r_last[n] = from_acc<scalar_t>(r);
}

template <typename scalar_t, typename acc_t>
__global__ void lif_backward_kernel(const LifBackwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= a.N) return;
  const LifConfig<acc_t> c = a.config;
  const bool param_grads = a.grad_alpha != nullptr;
  const acc_t alpha = a.alpha[n];
  const acc_t theta = a.theta[n];
  const acc_t v0 = a.v0 ? to_acc<acc_t>(a.v0[n]) : acc_t(0);
  acc_t gv = a.grad_v_last ? to_acc<acc_t>(a.grad_v_last[n]) : acc_t(0);
  acc_t gr = (c.trace && a.grad_r_last) ? to_acc<acc_t>(a.grad_r_last[n]) : acc_t(0);
  acc_t galpha = acc_t(0), gtheta = acc_t(0);
  const scalar_t* SNN_RESTRICT h = a.h + n;
  const scalar_t* SNN_RESTRICT grad_s = a.grad_spikes + n;
  scalar_t* SNN_RESTRICT grad_x = a.grad_x + n;
  // h[t] is carried from the previous (later) iteration, so each h row is loaded once.
  acc_t h_t = to_acc<acc_t>(h[(a.T - 1) * a.N]);
#pragma unroll 4
  for (int64_t t = a.T - 1; t >= 0; --t) {
    const acc_t h_prev = t > 0 ? to_acc<acc_t>(h[(t - 1) * a.N]) : acc_t(0);
    const acc_t v_prev = t > 0 ? lif_state_from_h(c, h_prev, theta) : v0;
    const LifAdjointOut<acc_t> o =
        lif_adjoint_step(c, alpha, theta, h_t, v_prev, to_acc<acc_t>(grad_s[t * a.N]), gv, gr);
    grad_x[t * a.N] = from_acc<scalar_t>(o.grad_x);
    galpha += o.grad_alpha;
    gtheta += o.grad_theta;
    h_t = h_prev;
  }
  a.grad_v0[n] = from_acc<scalar_t>(gv);
  a.grad_r0[n] = from_acc<scalar_t>(gr);
  if (param_grads) {
    a.grad_alpha[n] = galpha;
    a.grad_theta[n] = gtheta;
  }
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_lif_forward(const LifForwardArgs<scalar_t, acc_t>& args, cudaStream_t stream) {
  if (args.N == 0) return cudaSuccess;
  lif_forward_kernel<scalar_t, acc_t><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_lif_backward(const LifBackwardArgs<scalar_t, acc_t>& args, cudaStream_t stream) {
  if (args.N == 0) return cudaSuccess;
  lif_backward_kernel<scalar_t, acc_t><<<blocks_for(args.N), kThreadsPerBlock, 0, stream>>>(args);
  return cudaGetLastError();
}

#define SNN_INSTANTIATE_LIF(scalar_t, acc_t)                                                             \
  template cudaError_t launch_lif_forward<scalar_t, acc_t>(const LifForwardArgs<scalar_t, acc_t>&,     \
                                                           cudaStream_t);                              \
  template cudaError_t launch_lif_backward<scalar_t, acc_t>(const LifBackwardArgs<scalar_t, acc_t>&,   \
                                                            cudaStream_t);

SNN_INSTANTIATE_LIF(float, float)
SNN_INSTANTIATE_LIF(double, double)
SNN_INSTANTIATE_LIF(__half, float)
SNN_INSTANTIATE_LIF(__nv_bfloat16, float)

}  // namespace cuda
}  // namespace snn
