// Argument checks for the op implementations. Every message names the argument, so a bad call from Python
// (or from torch.ops directly) fails with a RuntimeError that says what to fix.
#pragma once

#include <optional>
#include <string>

#include <torch/library.h>
#include <ATen/ATen.h>

namespace snn {
namespace torch_ops {

inline void check_same_device_dtype(const at::Tensor& t, const at::Tensor& like, const char* name,
                                    const char* like_name) {
  TORCH_CHECK(t.device() == like.device(), name, " is on ", t.device(), " but ", like_name, " is on ",
              like.device());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " has dtype ", t.scalar_type(), " but ", like_name,
              " has dtype ", like.scalar_type());
}

// A time-major sequence [T, ...] with T > 0 and a floating-point dtype.
inline void check_sequence(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() >= 1, name, " must have shape [T, ...] with at least one dimension, got a scalar");
  TORCH_CHECK(t.size(0) > 0, name, " must have at least one time step (T = ", name, ".shape[0] = 0)");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be a floating-point tensor, got ", t.scalar_type());
}

// A per-element tensor: same device as `x`, shape equal to `shape`, dtype `dtype`.
inline void check_per_element(const at::Tensor& t, const at::Tensor& x, at::IntArrayRef shape,
                              at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.device() == x.device(), name, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, " (the trailing shape of x), got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
}

// A per-element parameter of the kernels: same device as `x`, dtype `dtype`, and the shape of a trailing part of
// `shape` (all of it, or none for one value): the kernels repeat it over the leading dimensions (period
// t.numel(), core/lif_params.h).
inline void check_parameter(const at::Tensor& t, const at::Tensor& x, at::IntArrayRef shape, at::ScalarType dtype,
                            const char* name) {
  TORCH_CHECK(t.device() == x.device(), name, " is on ", t.device(), " but x is on ", x.device());
  const auto dims = static_cast<size_t>(t.dim());
  TORCH_CHECK(dims <= shape.size() && t.sizes() == shape.slice(shape.size() - dims), name,
              " must have the shape of a trailing part of ", shape, " (the trailing shape of x), got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
}

// Parameters the kernels read with one period: the same shape as the first one.
inline void check_same_parameter_shape(const at::Tensor& t, const at::Tensor& first, const char* name,
                                       const char* first_name) {
  TORCH_CHECK(t.sizes() == first.sizes(), name, " must have the shape of ", first_name, " ", first.sizes(),
              ", got ", t.sizes());
}

// An optional per-element state (an initial state or a final-state gradient): absent, or checked like x's
// elements (shape, dtype, device) and made contiguous.
inline std::optional<at::Tensor> checked_state(const std::optional<at::Tensor>& t, const at::Tensor& like,
                                               at::IntArrayRef shape, const char* name) {
  if (!t.has_value()) return std::nullopt;
  check_per_element(*t, like, shape, like.scalar_type(), name);
  return t->contiguous();
}

inline at::ScalarType compute_dtype(at::ScalarType storage) {
  return storage == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace torch_ops
}  // namespace snn
