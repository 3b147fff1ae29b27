// Fused LIF forward and backward on the GPU: one thread per neuron, looping over t (backward: t in reverse).
//
// Recurrence and adjoint: see core/lif_step.h (the same step functions as the CPU kernels); what each thread does is
// in lif_thread.h, which the CPU tests also run. Time-major [T, N] layout, so a warp reads 32 consecutive neurons of
// one row: loads and stores coalesce. State stays in registers; each [T, N] tensor is read or written once. Half and
// bfloat16 are computed in float32. Parameter gradients are per-neuron sums over t in registers: deterministic, no
// atomics. Torch-free: launchers take the argument structs and a stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../core/lif_params.h"
#include "launch.h"
#include "lif_cuda.h"
#include "lif_thread.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
__global__ void lif_forward_kernel(const LifForwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.N) lif_forward_thread(a, n);
}

template <typename scalar_t, typename acc_t>
__global__ void lif_backward_kernel(const LifBackwardArgs<scalar_t, acc_t> a) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.N) lif_backward_thread(a, n);
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
  // The GPU backward reads the saved h; recomputing it from x (args.h null) is the CPU kernels' alone.
  if (args.h == nullptr) return cudaErrorInvalidValue;
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
