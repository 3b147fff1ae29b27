// Device memory for the CUDA tests: a std::vector copied to the GPU and back, and an element-wise comparison.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include "check.h"

namespace snn_test {

#define CUDA_OK(expr) CHECK((expr) == cudaSuccess)

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    CUDA_OK(cudaMalloc(&ptr, n * sizeof(T)));
    CUDA_OK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> to_host() const {
    std::vector<T> host(n);
    CUDA_OK(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  ~DeviceBuffer() { cudaFree(ptr); }
};

template <typename T>
void compare(const std::vector<T>& gpu, const std::vector<T>& cpu, double tol, const char* what) {
  for (size_t i = 0; i < gpu.size(); ++i) CHECK_NEAR(gpu[i], cpu[i], tol, what);
}

// 0 when a GPU is present; otherwise prints why and returns 77, the exit code ctest reports as skipped.
inline int skip_without_gpu(const char* test_name) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("%s: no CUDA device, skipped\n", test_name);
    return 77;
  }
  return 0;
}

}  // namespace snn_test
