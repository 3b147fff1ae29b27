// Runs the kernel test cases through the CUDA kernels' per-thread bodies (cuda/lif_thread.h, cuda/iir_thread.h)
// on the CPU, one thread index at a time: the same arithmetic, indexing and optional-pointer handling as on the
// GPU, checkable on a machine without one. Threads run in a shuffled order, so a thread that read what another
// thread writes would show up as a mismatch. Same interface as cuda_executor.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "cuda/iir_thread.h"
#include "cuda/lif_thread.h"

namespace snn_test {

// "Device" memory that is host memory: a copy made at construction, as cudaMemcpy would.
template <typename T>
struct HostBuffer {
  std::vector<T> data;
  T* ptr;
  explicit HostBuffer(const std::vector<T>& host) : data(host), ptr(data.data()) {}
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  std::vector<T> to_host() const { return data; }
};

class EmulatedCudaExecutor {
 public:
  template <typename T>
  using Buffer = HostBuffer<T>;
  // Compiled like the CPU kernels (no FMA contraction, same step functions in the same order): results are
  // expected bit for bit.
  static constexpr bool kRoundsAsCpu = true;
  static constexpr bool kSameExp = true;

  template <typename S, typename A>
  void lif_forward(const snn::LifForwardArgs<S, A>& args) {
    for (int64_t n : thread_order(args.N)) snn::cuda::lif_forward_thread(args, n);
  }
  template <typename S, typename A>
  void lif_backward(const snn::LifBackwardArgs<S, A>& args) {
    for (int64_t n : thread_order(args.N)) snn::cuda::lif_backward_thread(args, n);
  }
  // a2 null selects the first-order kernel, as launch_iir_forward / launch_iir_backward do.
  template <typename S, typename A>
  void iir_forward(const snn::IirForwardArgs<S, A>& args) {
    for (int64_t n : thread_order(args.N)) {
      if (args.a2) snn::cuda::iir_forward_thread<S, A, true>(args, n);
      else snn::cuda::iir_forward_thread<S, A, false>(args, n);
    }
  }
  template <typename S, typename A>
  void iir_backward(const snn::IirBackwardArgs<S, A>& args) {
    for (int64_t n : thread_order(args.N)) {
      if (args.a2) snn::cuda::iir_backward_thread<S, A, true>(args, n);
      else snn::cuda::iir_backward_thread<S, A, false>(args, n);
    }
  }
  void synchronize() {}

 private:
  std::mt19937 rng_{11};
  std::vector<int64_t> thread_order(int64_t threads) {
    std::vector<int64_t> order(threads);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::shuffle(order.begin(), order.end(), rng_);
    return order;
  }
};

}  // namespace snn_test
