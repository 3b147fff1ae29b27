// Host-side declarations of the fused IIR filter CUDA launchers (defined and instantiated in iir_cuda.cu for
// float/double, double/double, __half/float and __nv_bfloat16/float: float32 storage computes in float64, see
// IirCompute in core/iir_params.h). Includable from plain C++.
#pragma once

#include <cuda_runtime.h>

#include "../core/iir_params.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
cudaError_t launch_iir_forward(const IirForwardArgs<scalar_t, acc_t>& args, cudaStream_t stream);

template <typename scalar_t, typename acc_t>
cudaError_t launch_iir_backward(const IirBackwardArgs<scalar_t, acc_t>& args, cudaStream_t stream);

}  // namespace cuda
}  // namespace snn
