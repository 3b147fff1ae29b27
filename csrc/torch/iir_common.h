// Device-independent half of the IIR filter op implementations: argument checks, contiguous inputs, output
// allocation, and the translation to the torch-free argument structs. The CPU and CUDA files add only the
// dtype dispatch and the launch.
#pragma once

#include <optional>
#include <tuple>

#include <ATen/ATen.h>

#include "../core/iir_params.h"
#include "tensor_args.h"

namespace snn {
namespace torch_ops {

// The dtype of IirCompute (core/iir_params.h: the filter's compute type, that of the coefficients and their
// gradients) for a storage dtype.
inline at::ScalarType iir_compute_dtype(at::ScalarType storage) {
  return at::elementSize(storage) >= 4 ? at::kDouble : at::kFloat;
}

struct IirForwardTensors {
  int64_t T = 0, N = 0;
  at::Tensor x, a1, b;  // contiguous; the coefficients of one shape, a trailing part of the state's
  std::optional<at::Tensor> a2, p1, p2;
  at::Tensor p, p_last, p_before_last;  // outputs
};

struct IirBackwardTensors {
  int64_t T = 0, N = 0;
  at::Tensor grad_p, a1, b;  // contiguous
  std::optional<at::Tensor> grad_p_last, grad_p_before_last, p, x, a2, p1, p2;
  at::Tensor grad_x, grad_a1, grad_a2, grad_b, grad_p1, grad_p2;  // outputs; empty unless wanted, coefficient
                                                                   // grads per element (sum_to_parameter)
  bool want_a = false, want_b = false;  // which coefficient gradients were asked for
};

IirForwardTensors prepare_iir_forward(const at::Tensor& x, const at::Tensor& a1, const std::optional<at::Tensor>& a2,
                                      const at::Tensor& b, const std::optional<at::Tensor>& p1,
                                      const std::optional<at::Tensor>& p2);

IirBackwardTensors prepare_iir_backward(const at::Tensor& grad_p, const std::optional<at::Tensor>& grad_p_last,
                                        const std::optional<at::Tensor>& grad_p_before_last,
                                        const std::optional<at::Tensor>& p, const std::optional<at::Tensor>& x,
                                        const at::Tensor& a1, const std::optional<at::Tensor>& a2,
                                        const at::Tensor& b, const std::optional<at::Tensor>& p1,
                                        const std::optional<at::Tensor>& p2, bool grad_x, bool grad_a, bool grad_b);

// iir_bwd's outputs once the kernel has run: grad_x, the coefficient gradients summed to the coefficients' shape,
// grad_p1, grad_p2.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> iir_backward_outputs(
    const IirBackwardTensors& t);

// storage_t is the kernel's element type (e.g. __half for at::Half on CUDA); the layouts are identical.
template <typename storage_t, typename acc_t>
IirForwardArgs<storage_t, acc_t> iir_forward_args(const IirForwardTensors& p) {
  IirForwardArgs<storage_t, acc_t> a;
  a.T = p.T;
  a.N = p.N;
  a.P = p.a1.numel();  // the coefficients' period
  a.x = static_cast<const storage_t*>(p.x.data_ptr());
  a.a1 = static_cast<const acc_t*>(p.a1.data_ptr());
  a.a2 = ptr_or_null<const acc_t>(p.a2);
  a.b = static_cast<const acc_t*>(p.b.data_ptr());
  a.p1 = ptr_or_null<const storage_t>(p.p1);
  a.p2 = ptr_or_null<const storage_t>(p.p2);
  a.p = static_cast<storage_t*>(p.p.data_ptr());
  a.p_last = static_cast<storage_t*>(p.p_last.data_ptr());
  a.p_before_last = static_cast<storage_t*>(p.p_before_last.data_ptr());
  return a;
}

template <typename storage_t, typename acc_t>
IirBackwardArgs<storage_t, acc_t> iir_backward_args(const IirBackwardTensors& p) {
  IirBackwardArgs<storage_t, acc_t> a;
  a.T = p.T;
  a.N = p.N;
  a.P = p.a1.numel();  // the coefficients' period
  a.grad_p = static_cast<const storage_t*>(p.grad_p.data_ptr());
  a.grad_p_last = ptr_or_null<const storage_t>(p.grad_p_last);
  a.grad_p_before_last = ptr_or_null<const storage_t>(p.grad_p_before_last);
  a.p = ptr_or_null<const storage_t>(p.p);
  a.x = ptr_or_null<const storage_t>(p.x);
  a.a1 = static_cast<const acc_t*>(p.a1.data_ptr());
  a.a2 = ptr_or_null<const acc_t>(p.a2);
  a.b = static_cast<const acc_t*>(p.b.data_ptr());
  a.p1 = ptr_or_null<const storage_t>(p.p1);
  a.p2 = ptr_or_null<const storage_t>(p.p2);
  a.grad_x = ptr_or_null<storage_t>(p.grad_x);
  a.grad_a1 = ptr_or_null<acc_t>(p.grad_a1);
  a.grad_a2 = ptr_or_null<acc_t>(p.grad_a2);
  a.grad_b = ptr_or_null<acc_t>(p.grad_b);
  a.grad_p1 = static_cast<storage_t*>(p.grad_p1.data_ptr());
  a.grad_p2 = static_cast<storage_t*>(p.grad_p2.data_ptr());
  return a;
}

}  // namespace torch_ops
}  // namespace snn
