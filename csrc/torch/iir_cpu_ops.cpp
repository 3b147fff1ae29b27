// CPU implementations of snn_cuda::iir_fwd / iir_bwd: dtype dispatch and a parallel loop over element ranges.
#include <algorithm>

#include <torch/library.h>

#include "../cpu/iir_cpu.h"
#include "cpu_launch.h"
#include "iir_common.h"

namespace snn {
namespace torch_ops {
namespace {

// PyTorch's instruction set, at most the IIR kernels' widest (iir_cpu.h says why).
cpu::CpuIsa iir_cpu_isa() { return std::min(torch_cpu_isa(), cpu::kIirWidestIsa); }

std::tuple<at::Tensor, at::Tensor, at::Tensor> iir_fwd_cpu(const at::Tensor& x, const at::Tensor& a1,
                                                           const std::optional<at::Tensor>& a2, const at::Tensor& b,
                                                           const std::optional<at::Tensor>& p1,
                                                           const std::optional<at::Tensor>& p2) {
  IirForwardTensors t = prepare_iir_forward(x, a1, a2, b, p1, p2);
  SNN_DISPATCH_CPU_TYPES(t.x.scalar_type(), "iir_fwd_cpu", [&] {
    using storage = typename CpuTypes<scalar_t>::storage;
    const auto args = iir_forward_args<storage, IirCompute<scalar_t>>(t);
    const cpu::CpuIsa isa = iir_cpu_isa();
    parallel_over_neurons(t.N, t.T, [&](int64_t n0, int64_t n1) { cpu::iir_forward_range(args, n0, n1, isa); });
  });
  return {t.p, t.p_last, t.p_before_last};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> iir_bwd_cpu(
    const at::Tensor& grad_p, const std::optional<at::Tensor>& grad_p_last,
    const std::optional<at::Tensor>& grad_p_before_last, const std::optional<at::Tensor>& p,
    const std::optional<at::Tensor>& x, const at::Tensor& a1, const std::optional<at::Tensor>& a2,
    const at::Tensor& b, const std::optional<at::Tensor>& p1, const std::optional<at::Tensor>& p2, bool grad_x,
    bool grad_a, bool grad_b) {
  IirBackwardTensors t =
      prepare_iir_backward(grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2, grad_x, grad_a, grad_b);
  SNN_DISPATCH_CPU_TYPES(t.grad_p.scalar_type(), "iir_bwd_cpu", [&] {
    using storage = typename CpuTypes<scalar_t>::storage;
    const auto args = iir_backward_args<storage, IirCompute<scalar_t>>(t);
    const cpu::CpuIsa isa = iir_cpu_isa();
    parallel_over_neurons(t.N, t.T, [&](int64_t n0, int64_t n1) { cpu::iir_backward_range(args, n0, n1, isa); });
  });
  return iir_backward_outputs(t);
}

}  // namespace

TORCH_LIBRARY_IMPL(snn_cuda, CPU, m) {
  m.impl("iir_fwd", &iir_fwd_cpu);
  m.impl("iir_bwd", &iir_bwd_cpu);
}

}  // namespace torch_ops
}  // namespace snn
