// Device-independent half of the LIF op implementations: argument checks, contiguous inputs, output
// allocation, and the translation to the torch-free argument structs. The CPU and CUDA files add only the
// dtype dispatch and the launch.
#pragma once

#include <optional>
#include <string>
#include <tuple>

#include <ATen/ATen.h>

#include "../core/lif_params.h"
#include "tensor_args.h"

namespace snn {
namespace torch_ops {

ResetMode parse_reset(const std::string& name);
Surrogate parse_surrogate(const std::string& name);

struct LifForwardTensors {
  int64_t T = 0, N = 0;
  at::Tensor x, alpha, theta;  // contiguous; alpha and theta of one shape, a trailing part of the state's
  std::optional<at::Tensor> v0, r0;
  at::Tensor spikes, v_last, r_last, h, v_seq;  // outputs; h is empty unless store_h, v_seq unless store_v_seq
};

struct LifBackwardTensors {
  int64_t T = 0, N = 0;
  at::Tensor grad_spikes, alpha, theta;  // contiguous
  std::optional<at::Tensor> h, x;         // exactly one is given (contiguous)
  std::optional<at::Tensor> grad_v_last, grad_r_last, v0, r0, grad_v_seq;
  at::Tensor grad_x, grad_v0, grad_r0, grad_alpha, grad_theta;  // outputs; parameter grads empty unless asked,
                                                                 // else per neuron (sum_to_parameter)
  bool param_grads = false;
};

LifForwardTensors prepare_lif_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta,
                                      const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0,
                                      bool has_trace, bool store_h, bool store_v_seq);

LifBackwardTensors prepare_lif_backward(const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_v_last,
                                        const std::optional<at::Tensor>& grad_r_last,
                                        const std::optional<at::Tensor>& h, const std::optional<at::Tensor>& x,
                                        const at::Tensor& alpha, const at::Tensor& theta,
                                        const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0,
                                        bool has_trace, bool param_grads,
                                        const std::optional<at::Tensor>& grad_v_seq);

// lif_bwd's outputs once the kernel has run: grad_x, grad_v0, grad_r0, and grad_alpha, grad_theta summed to the
// parameters' shape.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_backward_outputs(
    const LifBackwardTensors& p);

template <typename acc_t>
LifConfig<acc_t> make_lif_config(const std::string& reset, double v_reset, std::optional<double> gamma, double rho,
                                 bool detach_reset, const std::string& surrogate, double surrogate_param) {
  LifConfig<acc_t> c;
  c.reset = parse_reset(reset);
  c.trace = gamma.has_value();
  c.detach_reset = detach_reset;
  c.surrogate = parse_surrogate(surrogate);
  c.surrogate_param = static_cast<acc_t>(surrogate_param);
  c.v_reset = static_cast<acc_t>(v_reset);
  c.gamma = static_cast<acc_t>(gamma.value_or(0.0));
  c.rho = static_cast<acc_t>(rho);
  return c;
}

// storage_t is the kernel's element type (e.g. __half for at::Half on CUDA); the layouts are identical.
template <typename storage_t, typename acc_t>
LifForwardArgs<storage_t, acc_t> lif_forward_args(const LifForwardTensors& p, const LifConfig<acc_t>& config) {
  LifForwardArgs<storage_t, acc_t> a;
  a.T = p.T;
  a.N = p.N;
  a.P = p.alpha.numel();  // the parameters' period
  a.config = config;
  a.x = static_cast<const storage_t*>(p.x.data_ptr());
  a.alpha = static_cast<const acc_t*>(p.alpha.data_ptr());
  a.theta = static_cast<const acc_t*>(p.theta.data_ptr());
  a.v0 = ptr_or_null<const storage_t>(p.v0);
  a.r0 = ptr_or_null<const storage_t>(p.r0);
  a.spikes = static_cast<storage_t*>(p.spikes.data_ptr());
  a.h = ptr_or_null<storage_t>(p.h);
  a.v_last = static_cast<storage_t*>(p.v_last.data_ptr());
  a.r_last = static_cast<storage_t*>(p.r_last.data_ptr());
  a.v_seq = ptr_or_null<storage_t>(p.v_seq);
  return a;
}

template <typename storage_t, typename acc_t>
LifBackwardArgs<storage_t, acc_t> lif_backward_args(const LifBackwardTensors& p, const LifConfig<acc_t>& config) {
  LifBackwardArgs<storage_t, acc_t> a;
  a.T = p.T;
  a.N = p.N;
  a.P = p.alpha.numel();  // the parameters' period
  a.config = config;
  a.grad_spikes = static_cast<const storage_t*>(p.grad_spikes.data_ptr());
  a.grad_v_last = ptr_or_null<const storage_t>(p.grad_v_last);
  a.grad_r_last = ptr_or_null<const storage_t>(p.grad_r_last);
  a.h = ptr_or_null<const storage_t>(p.h);
  a.x = ptr_or_null<const storage_t>(p.x);
  a.r0 = ptr_or_null<const storage_t>(p.r0);
  a.alpha = static_cast<const acc_t*>(p.alpha.data_ptr());
  a.theta = static_cast<const acc_t*>(p.theta.data_ptr());
  a.v0 = ptr_or_null<const storage_t>(p.v0);
  a.grad_x = static_cast<storage_t*>(p.grad_x.data_ptr());
  a.grad_v0 = static_cast<storage_t*>(p.grad_v0.data_ptr());
  a.grad_r0 = static_cast<storage_t*>(p.grad_r0.data_ptr());
  a.grad_alpha = ptr_or_null<acc_t>(p.grad_alpha);
  a.grad_theta = ptr_or_null<acc_t>(p.grad_theta);
  a.grad_v_seq = ptr_or_null<const storage_t>(p.grad_v_seq);
  return a;
}

}  // namespace torch_ops
}  // namespace snn
