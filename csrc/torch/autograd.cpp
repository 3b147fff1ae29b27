// The ops' autograd formulas, registered for the Autograd key in C++ for every backend.
//
// A formula registered from Python (torch.library.register_autograd) costs a Python autograd.Function, argument
// re-packing and a re-dispatch from Python on every call, forward and backward: about 0.3 ms per forward and
// backward on the 2-core build machine, more than the kernels take on a small layer. Here the same formulas run in C++; the ops
// still go through the dispatcher, so torch.compile traces them (fake implementations: snn_cuda/ops) and opcheck
// tests them as before.
//
// The backward ops compute first derivatives only: their own autograd formula raises when a second derivative is
// asked for (create_graph=True and then a backward through the gradient). Without one, PyTorch's fallback would
// treat the backward kernel as constant and give zero second derivatives with only a generic warning.
#include <string>
#include <tuple>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace snn {
namespace torch_ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptTensor = std::optional<at::Tensor>;

// The ops below the Autograd key. The typed signatures follow the schemas of registration.cpp.
using LifFwdSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&, std::string,
    double, std::optional<double>, double, bool, std::string, double, bool, bool);
using LifBwdSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&, const at::Tensor&,
    const at::Tensor&, const OptTensor&, const OptTensor&, std::string, double, std::optional<double>, double,
    bool, std::string, double, bool, const OptTensor&);
using IirFwdSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                      const OptTensor&, const at::Tensor&,
                                                                      const OptTensor&, const OptTensor&);
using IirBwdSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&, const at::Tensor&,
    const OptTensor&, const at::Tensor&, const OptTensor&, const OptTensor&, bool, bool, bool);

// An op's typed handle, looked up on first use (each signature type has its own static).
template <typename Signature>
const c10::TypedOperatorHandle<Signature>& op(const char* name) {
  static const auto handle = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
  return handle;
}

template <typename... Tensors>
variable_list to_list(std::tuple<Tensors...>&& outputs) {
  return std::apply([](auto&&... t) { return variable_list{std::move(t)...}; }, std::move(outputs));
}

template <typename Tuple, size_t... I>
Tuple to_tuple(const variable_list& list, std::index_sequence<I...>) {
  return Tuple{list[I]...};
}

// Whether a call records a graph: grad mode on and some tensor argument requiring grad. Other calls (inference,
// and the backward ops in a plain backward pass) go straight below the Autograd key, with no Function at all;
// that is also what lets vmap, which refuses C++ Functions, run the ops without gradients. snn_cuda/ops/lif.py
// makes the same test to choose store_h (an argument of the op, since its fake kernel sizes h by it).
bool records_graph(std::initializer_list<OptTensor> tensors) {
  if (!c10::GradMode::is_enabled()) return false;
  for (const OptTensor& t : tensors) {
    if (t.has_value() && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

at::Tensor or_undefined(const OptTensor& t) { return t.has_value() ? *t : at::Tensor(); }
// An optional tensor as save_for_backward takes it: a tensor made under inference mode becomes a normal copy.
at::Tensor savable(const OptTensor& t) {
  if (!t.has_value() || !t->is_inference()) return or_undefined(t);
  return t->clone();
}
OptTensor or_none(const at::Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

// The autograd edges of a C++ Function are its defined tensor arguments, in order: x, the parameters, then the
// optional ones that were given. needs_input_grad takes an edge's index.
struct Edges {
  int64_t next = 0;
  int64_t take(bool present) { return present ? next++ : -1; }
};
bool needs(AutogradContext* ctx, int64_t edge) { return edge >= 0 && ctx->needs_input_grad(edge); }
at::Tensor grad_if(AutogradContext* ctx, int64_t edge, const at::Tensor& grad) {
  return needs(ctx, edge) ? grad : at::Tensor();
}

// ---- LIF -------------------------------------------------------------------------------------------------------

struct LifFunction : torch::autograd::Function<LifFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& alpha,
                               const at::Tensor& theta, const OptTensor& v0, const OptTensor& r0,
                               const std::string& reset, double v_reset, std::optional<double> gamma, double rho,
                               bool detach_reset, const std::string& surrogate, double surrogate_param,
                               bool store_h, bool store_v_seq) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    variable_list out = to_list(op<LifFwdSignature>("snn_cuda::lif_fwd")
                                    .call(x, alpha, theta, v0, r0, reset, v_reset, gamma, rho, detach_reset,
                                          surrogate, surrogate_param, store_h, store_v_seq));
    // The only [T, N] tensor kept for the backward is h (store_h) or else the input x, from which the kernel
    // recomputes h; spikes and v[t-1] are recomputed from h. The input and the initial state, which the backward
    // reads, may have been made under inference mode (a frozen encoder, a chunk run in evaluation), as may a fixed
    // parameter, which autograd cannot keep: then a copy is kept, and the call runs as it does in the reference.
    ctx->save_for_backward({store_h ? out[3] : at::Tensor(), store_h ? at::Tensor() : savable(x), savable(alpha),
                            savable(theta), savable(v0), savable(r0)});
    ctx->saved_data["reset"] = reset;
    ctx->saved_data["v_reset"] = v_reset;
    ctx->saved_data["gamma"] = gamma;
    ctx->saved_data["rho"] = rho;
    ctx->saved_data["detach_reset"] = detach_reset;
    ctx->saved_data["surrogate"] = surrogate;
    ctx->saved_data["surrogate_param"] = surrogate_param;
    ctx->saved_data["has_v0"] = v0.has_value();
    ctx->saved_data["has_r0"] = r0.has_value();
    // h is an internal output (the backward ignores a gradient for it), without the trace r_last is zeros that
    // depend on nothing (r0 is refused then), and a membrane sequence not asked for is an empty placeholder: none
    // of them takes part in autograd, as in the reference.
    variable_list constant{out[3]};
    if (!gamma.has_value()) constant.push_back(out[2]);
    if (!store_v_seq) constant.push_back(out[4]);
    ctx->mark_non_differentiable(constant);
    // Outputs nobody differentiated get no gradient, not zeros: a [T, N] zero gradient for h (CUDA) would
    // otherwise be filled on every backward. The kernel reads absent grad_v_last / grad_r_last / grad_v_seq as
    // zeros.
    ctx->set_materialize_grads(false);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &x = saved[1], &alpha = saved[2], &theta = saved[3];
    const OptTensor v0 = or_none(saved[4]), r0 = or_none(saved[5]);
    Edges edges;
    const int64_t e_x = edges.take(true), e_alpha = edges.take(true), e_theta = edges.take(true);
    const int64_t e_v0 = edges.take(ctx->saved_data["has_v0"].toBool());
    const int64_t e_r0 = edges.take(ctx->saved_data["has_r0"].toBool());
    at::Tensor grad_spikes = grads[0];
    if (!grad_spikes.defined()) grad_spikes = at::zeros_like(h.defined() ? h : x);
    const std::string reset = ctx->saved_data["reset"].toStringRef();
    const std::string surrogate = ctx->saved_data["surrogate"].toStringRef();
    auto [grad_x, grad_v0, grad_r0, grad_alpha, grad_theta] = op<LifBwdSignature>("snn_cuda::lif_bwd").call(
        grad_spikes, or_none(grads[1]), or_none(grads[2]), or_none(h), or_none(x), alpha, theta, v0, r0, reset,
        ctx->saved_data["v_reset"].toDouble(), ctx->saved_data["gamma"].toOptional<double>(),
        ctx->saved_data["rho"].toDouble(), ctx->saved_data["detach_reset"].toBool(), surrogate,
        ctx->saved_data["surrogate_param"].toDouble(), needs(ctx, e_alpha) || needs(ctx, e_theta),
        or_none(grads[4]));
    // One entry per argument of forward; the non-tensor ones get none.
    variable_list result(14);
    result[0] = grad_if(ctx, e_x, grad_x);
    result[1] = grad_if(ctx, e_alpha, grad_alpha);
    result[2] = grad_if(ctx, e_theta, grad_theta);
    result[3] = grad_if(ctx, e_v0, grad_v0);
    result[4] = grad_if(ctx, e_r0, grad_r0);
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fwd_autograd(
    const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& theta, const OptTensor& v0, const OptTensor& r0,
    std::string reset, double v_reset, std::optional<double> gamma, double rho, bool detach_reset,
    std::string surrogate, double surrogate_param, bool store_h, bool store_v_seq) {
  if (!records_graph({x, alpha, theta, v0, r0})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return op<LifFwdSignature>("snn_cuda::lif_fwd")
        .call(x, alpha, theta, v0, r0, reset, v_reset, gamma, rho, detach_reset, surrogate, surrogate_param,
              store_h, store_v_seq);
  }
  // The CUDA backward reads h: a graph recorded without it could never run its backward (the public op asks for
  // h on every device but the CPU's; a direct call of the op is refused here rather than at backward time).
  TORCH_CHECK(store_h || !x.is_cuda(),
              "snn_cuda::lif_fwd: a call on CUDA that records a graph needs store_h=True (the CUDA backward reads h)");
  const variable_list out = LifFunction::apply(x, alpha, theta, v0, r0, reset, v_reset, gamma, rho, detach_reset,
                                               surrogate, surrogate_param, store_h, store_v_seq);
  return to_tuple<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>>(
      out, std::make_index_sequence<5>());
}

// ---- IIR -------------------------------------------------------------------------------------------------------

bool requires_grad(const OptTensor& t) { return t.has_value() && t->requires_grad(); }

struct IirFunction : torch::autograd::Function<IirFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& a1, const OptTensor& a2,
                               const at::Tensor& b, const OptTensor& p1, const OptTensor& p2) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    variable_list out = to_list(op<IirFwdSignature>("snn_cuda::iir_fwd").call(x, a1, a2, b, p1, p2));
    // The backward reads the output p (for the a1, a2 gradients) and the input x (for the b gradient), and nothing
    // else of size [T, N]; each is kept only when its gradient can be asked for. So are the initial states, which
    // only the a1, a2 gradients read. An input, state or fixed coefficient made under inference mode, which
    // autograd cannot keep, is kept as a copy, as the reference takes it.
    const bool keep_p = a1.requires_grad() || requires_grad(a2);
    ctx->save_for_backward({keep_p ? out[0] : at::Tensor(), b.requires_grad() ? savable(x) : at::Tensor(),
                            savable(a1), savable(a2), savable(b), keep_p ? savable(p1) : at::Tensor(),
                            keep_p ? savable(p2) : at::Tensor()});
    ctx->saved_data["has_a2"] = a2.has_value();
    ctx->saved_data["has_p1"] = p1.has_value();
    ctx->saved_data["has_p2"] = p2.has_value();
    // At T = 1 p_before_last is p1 (differentiable as p1 is), or zeros that depend on nothing without it (as in
    // the reference). sym_size, not size: traced by torch.compile with dynamic shapes, size() would fix every
    // dimension of x (a recompile per batch size), where this compares T alone.
    if (x.sym_size(0) == 1 && !requires_grad(p1)) ctx->mark_non_differentiable({out[2]});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &p = saved[0], &x = saved[1], &a1 = saved[2], &b = saved[4];
    const OptTensor a2 = or_none(saved[3]), p1 = or_none(saved[5]), p2 = or_none(saved[6]);
    Edges edges;
    const int64_t e_x = edges.take(true), e_a1 = edges.take(true);
    const int64_t e_a2 = edges.take(ctx->saved_data["has_a2"].toBool());
    const int64_t e_b = edges.take(true);
    const int64_t e_p1 = edges.take(ctx->saved_data["has_p1"].toBool());
    const int64_t e_p2 = edges.take(ctx->saved_data["has_p2"].toBool());
    auto [grad_x, grad_a1, grad_a2, grad_b, grad_p1, grad_p2] =
        op<IirBwdSignature>("snn_cuda::iir_bwd")
            .call(grads[0], grads[1], grads[2], or_none(p), or_none(x), a1, a2, b, p1, p2, needs(ctx, e_x),
                  needs(ctx, e_a1) || needs(ctx, e_a2), needs(ctx, e_b));
    return {grad_if(ctx, e_x, grad_x),   grad_if(ctx, e_a1, grad_a1), grad_if(ctx, e_a2, grad_a2),
            grad_if(ctx, e_b, grad_b),   grad_if(ctx, e_p1, grad_p1), grad_if(ctx, e_p2, grad_p2)};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> iir_fwd_autograd(const at::Tensor& x, const at::Tensor& a1,
                                                                const OptTensor& a2, const at::Tensor& b,
                                                                const OptTensor& p1, const OptTensor& p2) {
  if (!records_graph({x, a1, a2, b, p1, p2})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return op<IirFwdSignature>("snn_cuda::iir_fwd").call(x, a1, a2, b, p1, p2);
  }
  const variable_list out = IirFunction::apply(x, a1, a2, b, p1, p2);
  return to_tuple<std::tuple<at::Tensor, at::Tensor, at::Tensor>>(out, std::make_index_sequence<3>());
}

// ---- the backward ops: first derivatives only -------------------------------------------------------------------

// Runs a backward op below the Autograd key; when its result is differentiated (a second derivative), raises.
template <typename Result>
struct FirstDerivativeOnly : torch::autograd::Function<FirstDerivativeOnly<Result>> {
  // inputs: the backward op's tensor arguments, which become the autograd edges.
  template <typename Call>
  static variable_list forward(AutogradContext* ctx, const char* public_name, Call call, at::TensorList inputs) {
    ctx->saved_data["name"] = std::string(public_name);
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return to_list(call());
  }
  static variable_list backward(AutogradContext* ctx, variable_list) {
    TORCH_CHECK(false, ctx->saved_data["name"].toStringRef(),
                ": the compiled backends compute first derivatives only; for the derivative of a gradient (double "
                "backward), run the op with backend='torch'");
  }
};

// The given tensors among a backward op's arguments.
variable_list tensors(std::initializer_list<OptTensor> list) {
  variable_list out;
  for (const OptTensor& t : list) {
    if (t.has_value() && t->defined()) out.push_back(*t);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_bwd_autograd(
    const at::Tensor& grad_spikes, const OptTensor& grad_v_last, const OptTensor& grad_r_last, const OptTensor& h,
    const OptTensor& x, const at::Tensor& alpha, const at::Tensor& theta, const OptTensor& v0, const OptTensor& r0,
    std::string reset, double v_reset, std::optional<double> gamma, double rho, bool detach_reset,
    std::string surrogate, double surrogate_param, bool param_grads, const OptTensor& grad_v_seq) {
  using Result = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
  auto call = [&] {
    return op<LifBwdSignature>("snn_cuda::lif_bwd")
        .call(grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, reset, v_reset, gamma, rho,
              detach_reset, surrogate, surrogate_param, param_grads, grad_v_seq);
  };
  if (!records_graph({grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, grad_v_seq})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return call();
  }
  const variable_list inputs =
      tensors({grad_spikes, grad_v_last, grad_r_last, h, x, alpha, theta, v0, r0, grad_v_seq});
  const variable_list out = FirstDerivativeOnly<Result>::apply("snn_cuda.lif", call, at::TensorList(inputs));
  return to_tuple<Result>(out, std::make_index_sequence<5>());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> iir_bwd_autograd(
    const at::Tensor& grad_p, const OptTensor& grad_p_last, const OptTensor& grad_p_before_last, const OptTensor& p,
    const OptTensor& x, const at::Tensor& a1, const OptTensor& a2, const at::Tensor& b, const OptTensor& p1,
    const OptTensor& p2, bool grad_x, bool grad_a, bool grad_b) {
  using Result = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
  auto call = [&] {
    return op<IirBwdSignature>("snn_cuda::iir_bwd")
        .call(grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2, grad_x, grad_a, grad_b);
  };
  if (!records_graph({grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2})) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return call();
  }
  const variable_list inputs = tensors({grad_p, grad_p_last, grad_p_before_last, p, x, a1, a2, b, p1, p2});
  const variable_list out = FirstDerivativeOnly<Result>::apply("snn_cuda.iir_filter", call, at::TensorList(inputs));
  return to_tuple<Result>(out, std::make_index_sequence<6>());
}

}  // namespace

TORCH_LIBRARY_IMPL(snn_cuda, Autograd, m) {
  m.impl("lif_fwd", &lif_fwd_autograd);
  m.impl("lif_bwd", &lif_bwd_autograd);
  m.impl("iir_fwd", &iir_fwd_autograd);
  m.impl("iir_bwd", &iir_bwd_autograd);
}

}  // namespace torch_ops
}  // namespace snn
