#include "iir_common.h"

#include "checks.h"
#include "output_cache.h"

namespace snn {
namespace torch_ops {

namespace {

// A coefficient: a trailing part of the state shape, in the compute dtype, of a1's shape (one period for all).
std::optional<at::Tensor> checked_coefficient(const std::optional<at::Tensor>& t, const at::Tensor& like,
                                              at::IntArrayRef shape, const at::Tensor& a1, const char* name) {
  if (!t.has_value()) return std::nullopt;
  check_parameter(*t, like, shape, iir_compute_dtype(like.scalar_type()), name);
  check_same_parameter_shape(*t, a1, name, "a1");
  return t->contiguous();
}

// A [T, ...] tensor the backward reads beside grad_p: same shape, dtype and device.
std::optional<at::Tensor> checked_sequence_like(const std::optional<at::Tensor>& t, const at::Tensor& grad_p,
                                                const char* name) {
  if (!t.has_value()) return std::nullopt;
  check_same_device_dtype(*t, grad_p, name, "grad_p");
  TORCH_CHECK(t->sizes() == grad_p.sizes(), name, " must have the shape of grad_p ", grad_p.sizes(), ", got ",
              t->sizes());
  return t->contiguous();
}

}  // namespace

IirForwardTensors prepare_iir_forward(const at::Tensor& x, const at::Tensor& a1, const std::optional<at::Tensor>& a2,
                                      const at::Tensor& b, const std::optional<at::Tensor>& p1,
                                      const std::optional<at::Tensor>& p2) {
  check_sequence(x, "x");
  const auto state_shape = x.sizes().slice(1);
  IirForwardTensors p;
  p.T = x.size(0);
  p.N = x.numel() / p.T;
  p.x = x.contiguous();
  p.a1 = *checked_coefficient(a1, x, state_shape, a1, "a1");
  p.a2 = checked_coefficient(a2, x, state_shape, a1, "a2");
  p.b = *checked_coefficient(b, x, state_shape, a1, "b");
  p.p1 = checked_state(p1, x, state_shape, "p1");
  p.p2 = checked_state(p2, x, state_shape, "p2");
  p.p = empty_output(p.x.sizes(), p.x.options());
  p.p_last = at::empty(state_shape, x.options());
  p.p_before_last = at::empty(state_shape, x.options());
  return p;
}

IirBackwardTensors prepare_iir_backward(const at::Tensor& grad_p, const std::optional<at::Tensor>& grad_p_last,
                                        const std::optional<at::Tensor>& grad_p_before_last,
                                        const std::optional<at::Tensor>& p, const std::optional<at::Tensor>& x,
                                        const at::Tensor& a1, const std::optional<at::Tensor>& a2,
                                        const at::Tensor& b, const std::optional<at::Tensor>& p1,
                                        const std::optional<at::Tensor>& p2, bool grad_x, bool grad_a, bool grad_b) {
  check_sequence(grad_p, "grad_p");
  TORCH_CHECK(!grad_a || p.has_value(), "p (the forward's output) is required for the a1, a2 gradients (grad_a)");
  TORCH_CHECK(!grad_b || x.has_value(), "x is required for the b gradient (grad_b)");
  const auto state_shape = grad_p.sizes().slice(1);
  IirBackwardTensors t;
  t.T = grad_p.size(0);
  t.N = grad_p.numel() / t.T;
  t.grad_p = grad_p.contiguous();
  t.grad_p_last = checked_state(grad_p_last, grad_p, state_shape, "grad_p_last");
  t.grad_p_before_last = checked_state(grad_p_before_last, grad_p, state_shape, "grad_p_before_last");
  t.p = checked_sequence_like(p, grad_p, "p");
  t.x = checked_sequence_like(x, grad_p, "x");
  t.a1 = *checked_coefficient(a1, grad_p, state_shape, a1, "a1");
  t.a2 = checked_coefficient(a2, grad_p, state_shape, a1, "a2");
  t.b = *checked_coefficient(b, grad_p, state_shape, a1, "b");
  t.want_a = grad_a;
  t.want_b = grad_b;
  t.p1 = checked_state(p1, grad_p, state_shape, "p1");
  t.p2 = checked_state(p2, grad_p, state_shape, "p2");
  const auto acc_options = grad_p.options().dtype(iir_compute_dtype(grad_p.scalar_type()));
  const auto coefficient_grad = [&](bool wanted) {
    return wanted ? at::empty(state_shape, acc_options) : at::empty({0}, acc_options);
  };
  t.grad_x = grad_x ? empty_output(t.grad_p.sizes(), t.grad_p.options()) : at::empty({0}, grad_p.options());
  t.grad_a1 = coefficient_grad(grad_a);
  t.grad_a2 = coefficient_grad(grad_a && a2.has_value());
  t.grad_b = coefficient_grad(grad_b);
  t.grad_p1 = at::empty(state_shape, grad_p.options());
  t.grad_p2 = at::empty(state_shape, grad_p.options());
  return t;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> iir_backward_outputs(
    const IirBackwardTensors& t) {
  const at::Tensor& a2 = t.a2.has_value() ? *t.a2 : t.a1;  // for the shape only
  return {t.grad_x,
          sum_to_parameter(t.grad_a1, t.a1, t.want_a),
          sum_to_parameter(t.grad_a2, a2, t.want_a && t.a2.has_value()),
          sum_to_parameter(t.grad_b, t.b, t.want_b),
          t.grad_p1,
          t.grad_p2};
}

}  // namespace torch_ops
}  // namespace snn
