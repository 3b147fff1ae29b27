// Tensors <-> the torch-free argument structs: raw pointers in, parameter gradients out.
#pragma once

#include <optional>

#include <ATen/ATen.h>

namespace snn {
namespace torch_ops {

// An absent optional tensor is a null pointer (the kernels read it as zeros or skip the work).
template <typename T>
T* ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? static_cast<T*>(t->data_ptr()) : nullptr;
}

// An empty output (a result that was not asked for) is a null pointer: the kernels skip computing it.
template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.numel() > 0 ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// A parameter gradient as the kernels write it, one value per element (the state shape), summed over the
// leading dimensions along which the parameter repeats, to the parameter's shape; not wanted: the empty
// placeholder passes through. The sum is ATen's reduction, deterministic.
inline at::Tensor sum_to_parameter(const at::Tensor& per_element, const at::Tensor& parameter, bool wanted) {
  if (!wanted) return per_element;
  if (per_element.numel() == parameter.numel()) return per_element.view(parameter.sizes());
  return per_element.reshape({-1, parameter.numel()}).sum(0).view(parameter.sizes());
}

}  // namespace torch_ops
}  // namespace snn
