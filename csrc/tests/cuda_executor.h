// Runs the kernel test cases on the GPU: device buffers copied from and back to std::vector, and the CUDA
// launchers. The interface (Buffer, the four launches, synchronize) is the one emulated_executor.h gives on the CPU.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "check.h"
#include "cuda/iir_cuda.h"
#include "cuda/lif_cuda.h"

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

// The CUDA kernels' storage type for a test's: the CPU kernels' bfloat16 and float16 are CUDA's __nv_bfloat16 and
// __half (same bits).
template <typename S>
struct DeviceStorage {
  using type = S;
};
template <>
struct DeviceStorage<snn::bfloat16> {
  using type = __nv_bfloat16;
};
template <>
struct DeviceStorage<snn::float16> {
  using type = __half;
};

// The same arguments with the storage type the CUDA launchers are instantiated for: the structs differ only in
// the pointee type of their storage pointers, so their bytes carry over.
template <template <typename, typename> class Args, typename S, typename A>
Args<typename DeviceStorage<S>::type, A> device_args(const Args<S, A>& args) {
  using DeviceArgs = Args<typename DeviceStorage<S>::type, A>;
  static_assert(sizeof(DeviceArgs) == sizeof(Args<S, A>) && std::is_trivially_copyable_v<DeviceArgs>);
  DeviceArgs out;
  std::memcpy(static_cast<void*>(&out), &args, sizeof(out));
  return out;
}

struct CudaExecutor {
  template <typename T>
  using Buffer = DeviceBuffer<T>;
  // Built with --fmad=false: additions, multiplications, divisions and comparisons round as on the CPU, so results
  // agree bit for bit, except where the device's own exp (the gaussian and sigmoid surrogates) differs from the
  // host's by an ulp or two.
  static constexpr bool kRoundsAsCpu = true;
  static constexpr bool kSameExp = false;

  template <typename S, typename A>
  void lif_forward(const snn::LifForwardArgs<S, A>& args) {
    CUDA_OK(snn::cuda::launch_lif_forward(device_args(args), nullptr));
  }
  template <typename S, typename A>
  void lif_backward(const snn::LifBackwardArgs<S, A>& args) {
    CUDA_OK(snn::cuda::launch_lif_backward(device_args(args), nullptr));
  }
  template <typename S, typename A>
  void iir_forward(const snn::IirForwardArgs<S, A>& args) {
    CUDA_OK(snn::cuda::launch_iir_forward(device_args(args), nullptr));
  }
  template <typename S, typename A>
  void iir_backward(const snn::IirBackwardArgs<S, A>& args) {
    CUDA_OK(snn::cuda::launch_iir_backward(device_args(args), nullptr));
  }
  void synchronize() { CUDA_OK(cudaDeviceSynchronize()); }
};

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
