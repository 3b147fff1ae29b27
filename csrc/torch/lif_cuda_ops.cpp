// CUDA implementations of snn_cuda::lif_fwd / lif_bwd: device guard, current stream, dtype dispatch, launch.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cuda/lif_cuda.h"
#include "cuda_types.h"
#include "lif_common.h"

namespace snn {
namespace torch_ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fwd_cuda(
    const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta, const std::optional<at::Tensor>& v0,
    const std::optional<at::Tensor>& r0, std::string reset, double v_reset, std::optional<double> gamma,
    double rho, bool detach_reset, std::string surrogate, double surrogate_param, bool store_h,
    bool store_v_seq) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(x, "x"));
  LifForwardTensors p = prepare_lif_forward(x, alpha, theta, v0, r0, gamma.has_value(), store_h, store_v_seq);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.x.scalar_type(), "lif_fwd_cuda", [&] {
    using storage = typename CudaTypes<scalar_t>::storage;
    using acc = LifCompute<scalar_t>;
    const auto config = make_lif_config<acc>(reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param);
    const auto args = lif_forward_args<storage, acc>(p, config);
    SNN_CUDA_CHECK_LAUNCH(cuda::launch_lif_forward(args, c10::cuda::getCurrentCUDAStream()));
  });
  return {p.spikes, p.v_last, p.r_last, p.h, p.v_seq};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_bwd_cuda(
    const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_v_last,
    const std::optional<at::Tensor>& grad_r_last, const std::optional<at::Tensor>& h,
    const std::optional<at::Tensor>& x, const at::Tensor& alpha, const at::Tensor& theta,
    const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0, std::string reset, double v_reset,
    std::optional<double> gamma, double rho, bool detach_reset, std::string surrogate, double surrogate_param,
    bool param_grads, const std::optional<at::Tensor>& grad_v_seq) {
  const c10::cuda::CUDAGuard guard(cuda_device_of(grad_spikes, "grad_spikes"));
  // The CUDA backward reads the saved h; recomputing it would need checkpoints of the state (not built).
  TORCH_CHECK(h.has_value(), "snn_cuda::lif_bwd on CUDA needs h (run lif_fwd with store_h=True)");
  LifBackwardTensors p =
      prepare_lif_backward(grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, gamma.has_value(),
                           param_grads, grad_v_seq);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.grad_spikes.scalar_type(), "lif_bwd_cuda", [&] {
    using storage = typename CudaTypes<scalar_t>::storage;
    using acc = LifCompute<scalar_t>;
    const auto config = make_lif_config<acc>(reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param);
    const auto args = lif_backward_args<storage, acc>(p, config);
    SNN_CUDA_CHECK_LAUNCH(cuda::launch_lif_backward(args, c10::cuda::getCurrentCUDAStream()));
  });
  return lif_backward_outputs(p);
}

}  // namespace

TORCH_LIBRARY_IMPL(snn_cuda, CUDA, m) {
  m.impl("lif_fwd", &lif_fwd_cuda);
  m.impl("lif_bwd", &lif_bwd_cuda);
}

}  // namespace torch_ops
}  // namespace snn
