// CPU implementations of snn_cuda::lif_fwd / lif_bwd: dtype dispatch and a parallel loop over neuron ranges.
#include <torch/library.h>

#include "../cpu/lif_cpu.h"
#include "cpu_launch.h"
#include "lif_common.h"

namespace snn {
namespace torch_ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fwd_cpu(
    const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta, const std::optional<at::Tensor>& v0,
    const std::optional<at::Tensor>& r0, std::string reset, double v_reset, std::optional<double> gamma,
    double rho, bool detach_reset, std::string surrogate, double surrogate_param, bool store_h,
    bool store_v_seq) {
  LifForwardTensors p = prepare_lif_forward(x, alpha, theta, v0, r0, gamma.has_value(), store_h, store_v_seq);
  SNN_DISPATCH_CPU_TYPES(p.x.scalar_type(), "lif_fwd_cpu", [&] {
    using storage = typename CpuTypes<scalar_t>::storage;
    using acc = LifCompute<scalar_t>;
    const auto config = make_lif_config<acc>(reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param);
    const auto args = lif_forward_args<storage, acc>(p, config);
    const cpu::CpuIsa isa = torch_cpu_isa();
    parallel_over_neurons(p.N, p.T, [&](int64_t n0, int64_t n1) { cpu::lif_forward_range(args, n0, n1, isa); });
  });
  return {p.spikes, p.v_last, p.r_last, p.h, p.v_seq};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_bwd_cpu(
    const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_v_last,
    const std::optional<at::Tensor>& grad_r_last, const std::optional<at::Tensor>& h,
    const std::optional<at::Tensor>& x, const at::Tensor& alpha, const at::Tensor& theta,
    const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0, std::string reset, double v_reset,
    std::optional<double> gamma, double rho, bool detach_reset, std::string surrogate, double surrogate_param,
    bool param_grads, const std::optional<at::Tensor>& grad_v_seq) {
  LifBackwardTensors p =
      prepare_lif_backward(grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, gamma.has_value(),
                           param_grads, grad_v_seq);
  SNN_DISPATCH_CPU_TYPES(p.grad_spikes.scalar_type(), "lif_bwd_cpu", [&] {
    using storage = typename CpuTypes<scalar_t>::storage;
    using acc = LifCompute<scalar_t>;
    const auto config = make_lif_config<acc>(reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param);
    const auto args = lif_backward_args<storage, acc>(p, config);
    const cpu::CpuIsa isa = torch_cpu_isa();
    parallel_over_neurons(p.N, p.T, [&](int64_t n0, int64_t n1) { cpu::lif_backward_range(args, n0, n1, isa); });
  });
  return lif_backward_outputs(p);
}

}  // namespace

TORCH_LIBRARY_IMPL(snn_cuda, CPU, m) {
  m.impl("lif_fwd", &lif_fwd_cpu);
  m.impl("lif_bwd", &lif_bwd_cpu);
}

}  // namespace torch_ops
}  // namespace snn
