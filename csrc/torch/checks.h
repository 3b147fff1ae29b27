// Argument checks for the op implementations. Every message names the argument, so a bad call from Python
// (or from torch.ops directly) fails with a RuntimeError that says what to fix.
#pragma once

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

// A per-element tensor: same device as `x`, shape equal to `shape`, dtype `dtype`.
inline void check_per_element(const at::Tensor& t, const at::Tensor& x, at::IntArrayRef shape,
                              at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.device() == x.device(), name, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, " (the trailing shape of x), got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
}

inline at::ScalarType compute_dtype(at::ScalarType storage) {
  return storage == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace torch_ops
}  // namespace snn
