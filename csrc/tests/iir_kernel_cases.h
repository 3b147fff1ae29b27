// The CUDA IIR filter kernels against the CPU kernels: both orders, with and without initial states, every subset
// of wanted gradients, T from 1 to 300, double, float (double compute), bfloat16 and float16 storage (float compute),
// coefficients per element or repeating with a shorter period. Run on a GPU by test_iir_gpu
// (Executor = CudaExecutor) and through the kernels' per-thread bodies on the CPU by test_cuda_threads_cpu
// (EmulatedCudaExecutor).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/iir_cpu.h"

namespace snn_test {

// Storage scalar_t, compute IirCompute (core/iir_params.h), as the torch ops.
template <typename scalar_t, typename Executor>
void iir_kernel_case(Executor& device, std::mt19937& rng, int64_t T, int64_t P, bool second_order, bool with_state,
                     bool want_x, bool want_a, bool want_b, double tol) {
  using acc_t = snn::IirCompute<scalar_t>;
  const int64_t N = 1000;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&](size_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (double& e : v) e = lo + (hi - lo) * u01(rng);
    return v;
  };
  auto storage = [&](size_t n, double lo, double hi) {
    const auto v = uniform(n, lo, hi);
    std::vector<scalar_t> out(n);
    std::transform(v.begin(), v.end(), out.begin(), from_double<scalar_t>);
    return out;
  };
  auto x = storage(T * N, -1, 1), grad_p = storage(T * N, -1, 1), p1 = storage(N, -1, 1), p2 = storage(N, -1, 1),
       grad_p_last = storage(N, -1, 1), grad_p_before_last = storage(N, -1, 1);
  const auto a = uniform(P, 0.5, 0.97), c = uniform(P, 0.5, 0.97);
  const auto gain = uniform(P, 0.2, 1.5);
  std::vector<acc_t> a1(P), a2(P), b(gain.begin(), gain.end());
  for (int64_t k = 0; k < P; ++k) {  // poles a and c: stable, up to 0.97
    a1[k] = acc_t(second_order ? a[k] + c[k] : a[k]);
    a2[k] = acc_t(-a[k] * c[k]);
  }
  const bool grad_a2 = want_a && second_order;
  // CPU
  std::vector<scalar_t> p(T * N), p_last(N), p_before_last(N), grad_x(T * N), grad_p1(N), grad_p2(N);
  std::vector<acc_t> ga1(N), ga2(N), gb(N);
  snn::IirForwardArgs<scalar_t, acc_t> fa{T,
                                           N,
                                           P,
                                           x.data(),
                                           a1.data(),
                                           optional_ptr(second_order, a2),
                                           b.data(),
                                           optional_ptr(with_state, p1),
                                           optional_ptr(with_state, p2),
                                           p.data(),
                                           p_last.data(),
                                           p_before_last.data()};
  snn::cpu::iir_forward_range(fa, 0, N);
  snn::IirBackwardArgs<scalar_t, acc_t> ba{T,
                                            N,
                                            P,
                                            grad_p.data(),
                                            grad_p_last.data(),
                                            grad_p_before_last.data(),
                                            optional_ptr(want_a, p),
                                            optional_ptr(want_b, x),
                                            a1.data(),
                                            optional_ptr(second_order, a2),
                                            b.data(),
                                            optional_ptr(with_state, p1),
                                            optional_ptr(with_state, p2),
                                            optional_ptr(want_x, grad_x),
                                            optional_ptr(want_a, ga1),
                                            optional_ptr(grad_a2, ga2),
                                            optional_ptr(want_b, gb),
                                            grad_p1.data(),
                                            grad_p2.data()};
  snn::cpu::iir_backward_range(ba, 0, N);
  // Device; its outputs start at zero, so an element the kernel never writes shows.
  using Buffer = typename Executor::template Buffer<scalar_t>;
  using CoefficientBuffer = typename Executor::template Buffer<acc_t>;
  const std::vector<scalar_t> zeros_tn(T * N), zeros_n(N);
  const std::vector<acc_t> coefficient_zeros(N);
  Buffer dx(x), dgrad_p(grad_p), dp1(p1), dp2(p2), dgrad_p_last(grad_p_last),
      dgrad_p_before_last(grad_p_before_last), dp(zeros_tn), dp_last(zeros_n), dp_before_last(zeros_n),
      dgrad_x(zeros_tn), dgrad_p1(zeros_n), dgrad_p2(zeros_n);
  CoefficientBuffer da1(a1), da2(a2), db(b), dga1(coefficient_zeros), dga2(coefficient_zeros),
      dgb(coefficient_zeros);
  snn::IirForwardArgs<scalar_t, acc_t> dfa{T,
                                            N,
                                            P,
                                            dx.ptr,
                                            da1.ptr,
                                            optional_ptr(second_order, da2),
                                            db.ptr,
                                            optional_ptr(with_state, dp1),
                                            optional_ptr(with_state, dp2),
                                            dp.ptr,
                                            dp_last.ptr,
                                            dp_before_last.ptr};
  device.iir_forward(dfa);
  snn::IirBackwardArgs<scalar_t, acc_t> dba{T,
                                             N,
                                             P,
                                             dgrad_p.ptr,
                                             dgrad_p_last.ptr,
                                             dgrad_p_before_last.ptr,
                                             optional_ptr(want_a, dp),
                                             optional_ptr(want_b, dx),
                                             da1.ptr,
                                             optional_ptr(second_order, da2),
                                             db.ptr,
                                             optional_ptr(with_state, dp1),
                                             optional_ptr(with_state, dp2),
                                             optional_ptr(want_x, dgrad_x),
                                             optional_ptr(want_a, dga1),
                                             optional_ptr(grad_a2, dga2),
                                             optional_ptr(want_b, dgb),
                                             dgrad_p1.ptr,
                                             dgrad_p2.ptr};
  device.iir_backward(dba);
  device.synchronize();
  if (Executor::kRoundsAsCpu) tol = 0;  // bit for bit
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

template <typename Executor>
void iir_kernel_cases(Executor& device) {
  std::mt19937 rng(3);
  const int64_t periods[] = {1000, 1, 300};  // per element (N = 1000), one for all, and a shorter period
  int cases = 0;
  for (int64_t T : {1, 2, 17, 300}) {
    for (bool second_order : {false, true}) {
      for (bool with_state : {false, true}) {
        for (int mask = 0; mask < 8; ++mask) {
          const bool want_x = mask & 1, want_a = mask & 2, want_b = mask & 4;
          const int64_t P = periods[cases++ % 3];
          // The tolerances apply to a device that rounds otherwise than the CPU (see kRoundsAsCpu).
          iir_kernel_case<double>(device, rng, T, P, second_order, with_state, want_x, want_a, want_b, 1e-12);
          // float storage: each output is the double result rounded once, on either side.
          iir_kernel_case<float>(device, rng, T, P, second_order, with_state, want_x, want_a, want_b, 3e-7);
          // bfloat16 and float16 storage, float compute: the outputs likewise, to a rounding step (2^-8, 2^-11).
          iir_kernel_case<snn::bfloat16>(device, rng, T, P, second_order, with_state, want_x, want_a, want_b,
                                         1e-2);
          iir_kernel_case<snn::float16>(device, rng, T, P, second_order, with_state, want_x, want_a, want_b, 2e-3);
        }
      }
    }
  }
}

}  // namespace snn_test
