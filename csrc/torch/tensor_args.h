// Tensors -> the raw pointers of the torch-free argument structs.
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

}  // namespace torch_ops
}  // namespace snn
