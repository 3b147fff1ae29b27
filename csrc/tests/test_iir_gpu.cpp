// The CUDA IIR filter kernels against the CPU kernels: both orders, with and without initial states, every
// subset of wanted gradients, float storage (double compute) and double. Exits with 77 (reported by ctest as
// skipped) when no GPU is present.
#include <cuda_runtime.h>

#include <random>
#include <vector>

#include "check.h"
#include "cpu/iir_cpu.h"
#include "cuda/iir_cuda.h"
#include "device_buffer.h"

namespace {

using snn_test::compare;
using snn_test::DeviceBuffer;

template <typename T>
const T* optional(bool present, const DeviceBuffer<T>& buffer) {
  return present ? buffer.ptr : nullptr;
}

template <typename T>
T* optional(bool present, DeviceBuffer<T>& buffer) {
  return present ? buffer.ptr : nullptr;
}

template <typename T>
const T* optional(bool present, const std::vector<T>& host) {
  return present ? host.data() : nullptr;
}

template <typename T>
T* optional(bool present, std::vector<T>& host) {
  return present ? host.data() : nullptr;
}

// Storage scalar_t, compute double (as the torch ops use for float and double).
template <typename scalar_t>
void run_configuration(std::mt19937& rng, int64_t T, bool second_order, bool with_state, bool want_x,
                       bool want_a, bool want_b, double tol) {
  const int64_t N = 1000;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&](size_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (double& e : v) e = lo + (hi - lo) * u01(rng);
    return v;
  };
  auto storage = [&](size_t n, double lo, double hi) {
    const auto v = uniform(n, lo, hi);
    return std::vector<scalar_t>(v.begin(), v.end());
  };
  const auto x = storage(T * N, -1, 1), grad_p = storage(T * N, -1, 1), p1 = storage(N, -1, 1),
             p2 = storage(N, -1, 1), grad_p_last = storage(N, -1, 1), grad_p_before_last = storage(N, -1, 1);
  const auto a = uniform(N, 0.5, 0.97), c = uniform(N, 0.5, 0.97), b = uniform(N, 0.2, 1.5);
  std::vector<double> a1(N), a2(N);
  for (int64_t n = 0; n < N; ++n) {
    a1[n] = second_order ? a[n] + c[n] : a[n];
    a2[n] = -a[n] * c[n];
  }
  const bool grad_a2 = want_a && second_order;
  // CPU
  std::vector<scalar_t> p(T * N), p_last(N), p_before_last(N), grad_x(T * N), grad_p1(N), grad_p2(N);
  std::vector<double> ga1(N), ga2(N), gb(N);
  snn::IirForwardArgs<scalar_t, double> fa{T,
                                           N,
                                           x.data(),
                                           a1.data(),
                                           optional(second_order, a2),
                                           b.data(),
                                           optional(with_state, p1),
                                           optional(with_state, p2),
                                           p.data(),
                                           p_last.data(),
                                           p_before_last.data()};
  snn::cpu::iir_forward_range(fa, 0, N);
  snn::IirBackwardArgs<scalar_t, double> ba{T,
                                            N,
                                            grad_p.data(),
                                            grad_p_last.data(),
                                            grad_p_before_last.data(),
                                            optional(want_a, p),
                                            optional(want_b, x),
                                            a1.data(),
                                            optional(second_order, a2),
                                            b.data(),
                                            optional(with_state, p1),
                                            optional(with_state, p2),
                                            optional(want_x, grad_x),
                                            optional(want_a, ga1),
                                            optional(grad_a2, ga2),
                                            optional(want_b, gb),
                                            grad_p1.data(),
                                            grad_p2.data()};
  snn::cpu::iir_backward_range(ba, 0, N);
  // GPU
  DeviceBuffer<scalar_t> dx(x), dgrad_p(grad_p), dp1(p1), dp2(p2), dgrad_p_last(grad_p_last),
      dgrad_p_before_last(grad_p_before_last), dp(p), dp_last(p_last), dp_before_last(p_before_last),
      dgrad_x(grad_x), dgrad_p1(grad_p1), dgrad_p2(grad_p2);
  DeviceBuffer<double> da1(a1), da2(a2), db(b), dga1(ga1), dga2(ga2), dgb(gb);
  snn::IirForwardArgs<scalar_t, double> dfa{T,
                                            N,
                                            dx.ptr,
                                            da1.ptr,
                                            optional(second_order, da2),
                                            db.ptr,
                                            optional(with_state, dp1),
                                            optional(with_state, dp2),
                                            dp.ptr,
                                            dp_last.ptr,
                                            dp_before_last.ptr};
  CUDA_OK(snn::cuda::launch_iir_forward(dfa, nullptr));
  snn::IirBackwardArgs<scalar_t, double> dba{T,
                                             N,
                                             dgrad_p.ptr,
                                             dgrad_p_last.ptr,
                                             dgrad_p_before_last.ptr,
                                             optional(want_a, dp),
                                             optional(want_b, dx),
                                             da1.ptr,
                                             optional(second_order, da2),
                                             db.ptr,
                                             optional(with_state, dp1),
                                             optional(with_state, dp2),
                                             optional(want_x, dgrad_x),
                                             optional(want_a, dga1),
                                             optional(grad_a2, dga2),
                                             optional(want_b, dgb),
                                             dgrad_p1.ptr,
                                             dgrad_p2.ptr};
  CUDA_OK(snn::cuda::launch_iir_backward(dba, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  compare(dp.to_host(), p, tol, "p");
  compare(dp_last.to_host(), p_last, tol, "p_last");
  compare(dp_before_last.to_host(), p_before_last, tol, "p_before_last");
  compare(dgrad_p1.to_host(), grad_p1, tol, "grad p1");
  compare(dgrad_p2.to_host(), grad_p2, tol, "grad p2");
  if (want_x) compare(dgrad_x.to_host(), grad_x, tol, "grad x");
  if (want_a) compare(dga1.to_host(), ga1, tol, "grad a1");
  if (grad_a2) compare(dga2.to_host(), ga2, tol, "grad a2");
  if (want_b) compare(dgb.to_host(), gb, tol, "grad b");
}

}  // namespace

int main() {
  if (const int skipped = snn_test::skip_without_gpu("test_iir_gpu")) return skipped;
  std::mt19937 rng(3);
  for (int64_t T : {1, 2, 17, 300}) {
    for (bool second_order : {false, true}) {
      for (bool with_state : {false, true}) {
        for (int mask = 0; mask < 8; ++mask) {
          const bool want_x = mask & 1, want_a = mask & 2, want_b = mask & 4;
          // FMA contraction on the GPU changes the last bits of the double computation.
          run_configuration<double>(rng, T, second_order, with_state, want_x, want_a, want_b, 1e-12);
          // float storage: each output is the double result rounded once, on either side.
          run_configuration<float>(rng, T, second_order, with_state, want_x, want_a, want_b, 3e-7);
        }
      }
    }
  }
  return snn_test::finish("test_iir_gpu");
}
