#include "lif_common.h"

#include "checks.h"
#include "output_cache.h"

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

namespace {

// The checks both ops make of the neuron's parameters against a [T, ...] tensor of the op (x, or the backward's
// h / x): alpha and theta of one shape, a trailing part of the state shape, in the compute dtype; r0 only with a
// reset trace.
void check_neuron_parameters(const at::Tensor& sequence, const at::Tensor& alpha, const at::Tensor& theta,
                             const std::optional<at::Tensor>& r0, bool has_trace) {
  TORCH_CHECK(has_trace || !r0.has_value(), "r0 is given but gamma is None: the reset trace is off");
  const auto state_shape = sequence.sizes().slice(1);
  const auto acc = compute_dtype(sequence.scalar_type());
  check_parameter(alpha, sequence, state_shape, acc, "alpha");
  check_parameter(theta, sequence, state_shape, acc, "theta");
  check_same_parameter_shape(theta, alpha, "theta", "alpha");
}

}  // namespace

LifForwardTensors prepare_lif_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta,
                                      const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0,
                                      bool has_trace, bool store_h, bool store_v_seq) {
  check_sequence(x, "x");
  check_neuron_parameters(x, alpha, theta, r0, has_trace);
  const auto state_shape = x.sizes().slice(1);

  LifForwardTensors p;
  p.T = x.size(0);
  p.N = x.numel() / p.T;
  p.x = x.contiguous();
  p.alpha = alpha.contiguous();
  p.theta = theta.contiguous();
  p.v0 = checked_state(v0, x, state_shape, "v0");
  p.r0 = checked_state(r0, x, state_shape, "r0");
  p.spikes = empty_output(p.x.sizes(), p.x.options());
  p.h = store_h ? empty_output(p.x.sizes(), p.x.options()) : at::empty({0}, x.options());
  p.v_seq = store_v_seq ? empty_output(p.x.sizes(), p.x.options()) : at::empty({0}, x.options());
  p.v_last = at::empty(state_shape, x.options());
  p.r_last = at::empty(state_shape, x.options());
  return p;
}

LifBackwardTensors prepare_lif_backward(const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_v_last,
                                        const std::optional<at::Tensor>& grad_r_last,
                                        const std::optional<at::Tensor>& h, const std::optional<at::Tensor>& x,
                                        const at::Tensor& alpha, const at::Tensor& theta,
                                        const std::optional<at::Tensor>& v0, const std::optional<at::Tensor>& r0,
                                        bool has_trace, bool param_grads,
                                        const std::optional<at::Tensor>& grad_v_seq) {
  TORCH_CHECK(h.has_value() != x.has_value(), "give exactly one of h (saved by the forward) and x (to recompute h)");
  const at::Tensor& saved = h.has_value() ? *h : *x;
  const char* saved_name = h.has_value() ? "h" : "x";
  TORCH_CHECK(saved.dim() >= 1 && saved.size(0) > 0, saved_name, " must have shape [T, ...] with T > 0, got ",
              saved.sizes());
  // The [T, ...] gradients come in on the saved tensor's device, dtype and shape.
  const auto check_sequence_gradient = [&](const at::Tensor& grad, const char* name) {
    check_same_device_dtype(grad, saved, name, saved_name);
    TORCH_CHECK(grad.sizes() == saved.sizes(), name, " must have the shape of ", saved_name, " ", saved.sizes(),
                ", got ", grad.sizes());
  };
  check_sequence_gradient(grad_spikes, "grad_spikes");
  if (grad_v_seq.has_value()) check_sequence_gradient(*grad_v_seq, "grad_v_seq");
  check_neuron_parameters(saved, alpha, theta, r0, has_trace);
  const auto state_shape = saved.sizes().slice(1);
  const auto acc = compute_dtype(saved.scalar_type());

  LifBackwardTensors p;
  p.T = saved.size(0);
  p.N = saved.numel() / p.T;
  p.param_grads = param_grads;
  p.grad_spikes = grad_spikes.contiguous();
  if (h.has_value()) p.h = h->contiguous();
  if (x.has_value()) p.x = x->contiguous();
  if (grad_v_seq.has_value()) p.grad_v_seq = grad_v_seq->contiguous();
  p.alpha = alpha.contiguous();
  p.theta = theta.contiguous();
  p.grad_v_last = checked_state(grad_v_last, saved, state_shape, "grad_v_last");
  p.grad_r_last = checked_state(grad_r_last, saved, state_shape, "grad_r_last");
  p.v0 = checked_state(v0, saved, state_shape, "v0");
  p.r0 = checked_state(r0, saved, state_shape, "r0");
  p.grad_x = empty_output(p.grad_spikes.sizes(), p.grad_spikes.options());
  p.grad_v0 = at::empty(state_shape, saved.options());
  p.grad_r0 = at::empty(state_shape, saved.options());
  const auto acc_options = saved.options().dtype(acc);
  p.grad_alpha = param_grads ? at::empty(state_shape, acc_options) : at::empty({0}, acc_options);
  p.grad_theta = param_grads ? at::empty(state_shape, acc_options) : at::empty({0}, acc_options);
  return p;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_backward_outputs(
    const LifBackwardTensors& p) {
  return {p.grad_x, p.grad_v0, p.grad_r0, sum_to_parameter(p.grad_alpha, p.alpha, p.param_grads),
          sum_to_parameter(p.grad_theta, p.theta, p.param_grads)};
}

}  // namespace torch_ops
}  // namespace snn
