// Fused IIR filter forward and backward on the GPU: one thread per element, looping over t (backward: reverse).
//
//   forward:  p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]                  (p[-1] = p1, p[-2] = p2)
//   adjoint:  q[t] = g[t] + a1 q[t+1] + a2 q[t+2]                      (g = dL/dp plus the final-state grads)
//             dL/dx[t] = b q[t];  dL/da1 = sum_t q[t] p[t-1];  dL/da2 = sum_t q[t] p[t-2];
//             dL/db = sum_t q[t] x[t];  dL/dp1 = a1 q[0] + a2 q[1];  dL/dp2 = a2 q[0]
// (derivation and the carried form in core/iir_step.h; the same step functions as the CPU kernels); what each
// thread does is in iir_thread.h, which the CPU tests also run. Time-major [T, N] layout: a warp reads 32
// consecutive elements of one row, so loads and stores coalesce. float32 and float64 are computed in float64, half
// and bfloat16 in float32 (why: IirCompute, core/iir_params.h). Coefficient gradients are per-element sums over t in
// registers: deterministic, no atomics. First order is its own template instantiation. Torch-free: launchers take
// the argument structs and a stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../core/iir_params.h"
#include "iir_cuda.h"
#include "iir_thread.h"
#include "launch.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t, bool kSecondOrder>
__global__ void iir_forward_kernel(const IirForwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.N) iir_forward_thread<scalar_t, acc_t, kSecondOrder>(a, n);
}

template <typename scalar_t, typename acc_t, bool kSecondOrder>
__global__ void iir_backward_kernel(const IirBackwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.N) iir_backward_thread<scalar_t, acc_t, kSecondOrder>(a, n);
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
