#include "lif_common.h"

#include "checks.h"

namespace snn {
namespace torch_ops {

ResetMode parse_reset(const std::string& name) {
  if (name == "hard") return ResetMode::hard;
  if (name == "soft") return ResetMode::soft;
  if (name == "none") return ResetMode::none;
  TORCH_CHECK(false, "reset must be one of 'hard', 'soft', 'none', got '", name, "'");
}

Surrogate parse_surrogate(const std::string& name) {
  if (name == "rectangular") return Surrogate::rectangular;
  if (name == "gaussian") return Surrogate::gaussian;
  if (name == "sigmoid") return Surrogate::sigmoid;
  if (name == "atan") return Surrogate::atan;
  if (name == "fast_sigmoid") return Surrogate::fast_sigmoid;
  if (name == "triangle") return Surrogate::triangle;
  TORCH_CHECK(false, "surrogate must be one of 'rectangular', 'gaussian', 'sigmoid', 'atan', 'fast_sigmoid', ",
              "'triangle', got '", name, "'");
}

LifForwardTensors prepare_lif_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta,
                                      const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0,
                                      bool has_trace, bool store_h) {
  check_sequence(x, "x");
  TORCH_CHECK(has_trace || !r0.has_value(), "r0 is given but gamma is None: the reset trace is off");
  const auto state_shape = x.sizes().slice(1);
  const auto acc = compute_dtype(x.scalar_type());
  check_per_element(alpha, x, state_shape, acc, "alpha");
  check_per_element(theta, x, state_shape, acc, "theta");

  LifForwardTensors p;
  p.T = x.size(0);
  p.N = x.numel() / p.T;
  p.x = x.contiguous();
  p.alpha = alpha.contiguous();
  p.theta = theta.contiguous();
  p.v0 = checked_state(v0, x, state_shape, "v0");
  p.r0 = checked_state(r0, x, state_shape, "r0");
  p.spikes = at::empty_like(p.x);
  p.h = store_h ? at::empty_like(p.x) : at::empty({0}, x.options());
  p.v_last = at::empty(state_shape, x.options());
  p.r_last = at::empty(state_shape, x.options());
  return p;
}

LifBackwardTensors prepare_lif_backward(const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_v_last,
                                        const std::optional<at::Tensor>& grad_r_last, const at::Tensor& h,
                                        const at::Tensor& alpha, const at::Tensor& theta,
                                        const std::optional<at::Tensor>& v0, bool param_grads) {
  TORCH_CHECK(h.dim() >= 1 && h.size(0) > 0, "h must have shape [T, ...] with T > 0, got ", h.sizes());
  check_same_device_dtype(grad_spikes, h, "grad_spikes", "h");
  TORCH_CHECK(grad_spikes.sizes() == h.sizes(), "grad_spikes must have the shape of h ", h.sizes(), ", got ",
              grad_spikes.sizes());
  const auto state_shape = h.sizes().slice(1);
  const auto acc = compute_dtype(h.scalar_type());
  check_per_element(alpha, h, state_shape, acc, "alpha");
  check_per_element(theta, h, state_shape, acc, "theta");

  LifBackwardTensors p;
  p.T = h.size(0);
  p.N = h.numel() / p.T;
  p.grad_spikes = grad_spikes.contiguous();
  p.h = h.contiguous();
  p.alpha = alpha.contiguous();
  p.theta = theta.contiguous();
  p.grad_v_last = checked_state(grad_v_last, h, state_shape, "grad_v_last");
  p.grad_r_last = checked_state(grad_r_last, h, state_shape, "grad_r_last");
  p.v0 = checked_state(v0, h, state_shape, "v0");
  p.grad_x = at::empty_like(p.h);
  p.grad_v0 = at::empty(state_shape, h.options());
  p.grad_r0 = at::empty(state_shape, h.options());
  const auto acc_options = h.options().dtype(acc);
  p.grad_alpha = param_grads ? at::empty(state_shape, acc_options) : at::empty({0}, acc_options);
  p.grad_theta = param_grads ? at::empty(state_shape, acc_options) : at::empty({0}, acc_options);
  return p;
}

}  // namespace torch_ops
}  // namespace snn
