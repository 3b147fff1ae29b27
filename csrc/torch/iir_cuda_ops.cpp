// CUDA implementations of snn_cuda::iir_fwd / iir_bwd: device guard, current stream, dtype dispatch, launch.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cuda/iir_cuda.h"
#include "cuda_types.h"
#include "iir_common.h"

namespace snn {
namespace torch_ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> iir_fwd_cuda(const at::Tensor& x, const at::Tensor& a1,
                                                            const std::optional<at::Tensor>& a2,
                                                            const at::Tensor& b, const std::optional<at::Tensor>& p1,
                                                            const std::optional<at::Tensor>& p2) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(x, "x"));
  IirForwardTensors t = prepare_iir_forward(x, a1, a2, b, p1, p2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.x.scalar_type(), "iir_fwd_cuda", [&] {
    using storage = typename CudaTypes<scalar_t>::storage;
    const auto args = iir_forward_args<storage, IirCompute<scalar_t>>(t);
    SNN_CUDA_CHECK_LAUNCH(cuda::launch_iir_forward(args, c10::cuda::getCurrentCUDAStream()));
  });
  return {t.p, t.p_last, t.p_before_last};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> iir_bwd_cuda(
    const at::Tensor& grad_p, const std::optional<at::Tensor>& grad_p_last,
    const std::optional<at::Tensor>& grad_p_before_last, const std::optional<at::Tensor>& p,
    const std::optional<at::Tensor>& x, const at::Tensor& a1, const std::optional<at::Tensor>& a2,
    const at::Tensor& b, const std::optional<at::Tensor>& p1, const std::optional<at::Tensor>& p2, bool grad_x,
    bool grad_a, bool grad_b) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(grad_p, "grad_p"));
  IirBackwardTensors t =
      prepare_iir_backward(grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2, grad_x, grad_a, grad_b);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.grad_p.scalar_type(), "iir_bwd_cuda", [&] {
    using storage = typename CudaTypes<scalar_t>::storage;
    const auto args = iir_backward_args<storage, IirCompute<scalar_t>>(t);
    SNN_CUDA_CHECK_LAUNCH(cuda::launch_iir_backward(args, c10::cuda::getCurrentCUDAStream()));
  });
  return iir_backward_outputs(t);
}

}  // namespace

TORCH_LIBRARY_IMPL(snn_cuda, CUDA, m) {
  m.impl("iir_fwd", &iir_fwd_cuda);
  m.impl("iir_bwd", &iir_bwd_cuda);
}

}  // namespace torch_ops
}  // namespace snn
