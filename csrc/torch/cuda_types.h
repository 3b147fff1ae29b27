// Maps ATen element types to the CUDA kernels' storage types (identical layouts); the compute types are LifCompute
// and IirCompute (core/).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <ATen/ATen.h>

namespace snn {
namespace torch_ops {

template <typename scalar_t>
struct CudaTypes {
  using storage = scalar_t;
};
template <>
struct CudaTypes<at::Half> {
  using storage = __half;
};
template <>
struct CudaTypes<at::BFloat16> {
  using storage = __nv_bfloat16;
};

// The device a CUDA op runs on, from the tensor that sets it. The dispatcher picks the CUDA kernel when any
// argument is on a CUDA device, so that tensor may still be on the CPU: say so before a CUDAGuard would fail on it.
inline c10::Device cuda_device_of(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " is on ", t.device(), " but other arguments are on a CUDA device");
  return t.device();
}

#define SNN_CUDA_CHECK_LAUNCH(expr)                                                              \
  do {                                                                                           \
    const cudaError_t snn_err = (expr);                                                          \
    TORCH_CHECK(snn_err == cudaSuccess, "CUDA kernel launch failed: ", cudaGetErrorString(snn_err)); \
  } while (0)

}  // namespace torch_ops
}  // namespace snn
