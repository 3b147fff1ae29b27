// Host-side declarations of the fused LIF CUDA launchers (defined and instantiated in lif_cuda.cu for
// float/float, double/double, __half/float and __nv_bfloat16/float). Includable from plain C++.
#pragma once

#include <cuda_runtime.h>

#include "../core/lif_params.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
cudaError_t launch_lif_forward(const LifForwardArgs<scalar_t, acc_t>& args, cudaStream_t stream);

// Needs args.h, the potentials saved by the forward (cudaErrorInvalidValue without).
template <typename scalar_t, typename acc_t>
cudaError_t launch_lif_backward(const LifBackwardArgs<scalar_t, acc_t>& args, cudaStream_t stream);

}  // namespace cuda
}  // namespace snn
