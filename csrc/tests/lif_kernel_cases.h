// The CUDA LIF kernels against the CPU kernels: every reset mode x trace x detach x surrogate, T = 1 and 17, with
// and without initial states, final-state gradients, parameter gradients and the membrane sequence (its output
// and its gradient), double, float, bfloat16 and float16
// storage (computed in float), parameters per neuron or repeating with a shorter period. Run on a GPU by
// test_lif_gpu (Executor = CudaExecutor) and through the kernels' per-thread bodies on the CPU by
// test_cuda_threads_cpu (EmulatedCudaExecutor).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/lif_cpu.h"

namespace snn_test {

// Storage S, compute A (the parameters' and their gradients' type).
template <typename S, typename A, typename Executor>
void lif_kernel_case(Executor& device, const snn::LifConfig<A>& c, int64_t T_, int64_t P, bool with_state,
                     double tol, std::mt19937& rng) {
  const int64_t N = 1000;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<S> x(T_ * N), gs(T_ * N), gvs(T_ * N), v0(N), r0(N), gv(N), gr(N);
  std::vector<A> alpha(P), theta(P);
  for (auto& e : x) e = from_double<S>(u01(rng) * 1.6 - 0.3);
  for (auto& e : gs) e = from_double<S>(u01(rng) * 2 - 1);
  for (auto& e : gvs) e = from_double<S>(u01(rng) - 0.5);
  for (int64_t k = 0; k < P; ++k) {
    alpha[k] = A(0.05 + 0.9 * u01(rng));
    theta[k] = A(0.7 + 0.6 * u01(rng));
  }
  for (int64_t n = 0; n < N; ++n) {
    v0[n] = from_double<S>(u01(rng) - 0.5);
    r0[n] = from_double<S>(0.5 * u01(rng));
    gv[n] = from_double<S>(u01(rng) - 0.5);
    gr[n] = from_double<S>(u01(rng) - 0.5);
  }
  // Parameter gradients are wanted exactly when the initial states are given, so both null paths are covered; the
  // membrane sequence (and a gradient for it) in every other case, with either.
  const bool param_grads = with_state;
  const bool membrane = (T_ + P + with_state) % 2 == 0;
  // CPU
  std::vector<S> s(T_ * N), h(T_ * N), vl(N), rl(N), vs(T_ * N), gx(T_ * N), gv0(N), gr0(N);
  std::vector<A> ga(N), gt(N);
  snn::LifForwardArgs<S, A> fa{T_, N, P, c, x.data(), alpha.data(), theta.data(), optional_ptr(with_state, v0),
                               optional_ptr(with_state, r0), s.data(), h.data(), vl.data(), rl.data(),
                               optional_ptr(membrane, vs)};
  snn::cpu::lif_forward_range(fa, 0, N);
  snn::LifBackwardArgs<S, A> ba{T_, N, P, c, gs.data(), optional_ptr(with_state, gv), optional_ptr(with_state, gr),
                                h.data(), alpha.data(), theta.data(), optional_ptr(with_state, v0), gx.data(),
                                gv0.data(), gr0.data(), optional_ptr(param_grads, ga),
                                optional_ptr(param_grads, gt), nullptr, nullptr, optional_ptr(membrane, gvs)};
  snn::cpu::lif_backward_range(ba, 0, N);
  // Device; its outputs start at zero, so an element the kernel never writes shows.
  using Buffer = typename Executor::template Buffer<S>;
  using ParameterBuffer = typename Executor::template Buffer<A>;
  const std::vector<S> zeros_tn(T_ * N), zeros_n(N);
  const std::vector<A> parameter_zeros(N);
  Buffer dx(x), dgs(gs), dgvs(gvs), dv0(v0), dr0(r0), dgv(gv), dgr(gr);
  Buffer ds(zeros_tn), dh(zeros_tn), dvl(zeros_n), drl(zeros_n), dvs(zeros_tn), dgx(zeros_tn), dgv0(zeros_n),
      dgr0(zeros_n);
  ParameterBuffer dalpha(alpha), dtheta(theta), dga(parameter_zeros), dgt(parameter_zeros);
  snn::LifForwardArgs<S, A> dfa{T_, N, P, c, dx.ptr, dalpha.ptr, dtheta.ptr, optional_ptr(with_state, dv0),
                                optional_ptr(with_state, dr0), ds.ptr, dh.ptr, dvl.ptr, drl.ptr,
                                optional_ptr(membrane, dvs)};
  device.lif_forward(dfa);
  snn::LifBackwardArgs<S, A> dba{T_, N, P, c, dgs.ptr, optional_ptr(with_state, dgv), optional_ptr(with_state, dgr),
                                 dh.ptr, dalpha.ptr, dtheta.ptr, optional_ptr(with_state, dv0), dgx.ptr,
                                 dgv0.ptr, dgr0.ptr, optional_ptr(param_grads, dga),
                                 optional_ptr(param_grads, dgt), nullptr, nullptr, optional_ptr(membrane, dgvs)};
  device.lif_backward(dba);
  device.synchronize();
  // Where the device rounds as the CPU, every value must agree bit for bit, except the gradients of the surrogates
  // that go through exp on a device whose exp is its own. Otherwise spikes may flip where the CPU potential is
  // within rounding of the threshold, and those neurons' later values differ; the rest must agree to tol.
  const bool forward_exact = Executor::kRoundsAsCpu;
  const bool through_exp = c.surrogate == snn::Surrogate::gaussian || c.surrogate == snn::Surrogate::sigmoid;
  const bool backward_exact = forward_exact && (Executor::kSameExp || !through_exp);
  const double forward_tol = forward_exact ? 0 : tol, backward_tol = backward_exact ? 0 : tol;
  const auto s_device = ds.to_host();
  std::vector<bool> flipped(N, false);
  int64_t flips = 0;
  for (int64_t i = 0; i < T_ * N; ++i) {
    if (as_double(s_device[i]) != as_double(s[i])) {
      ++flips;
      flipped[i % N] = true;
    }
  }
  CHECK(flips * 1000 <= T_ * N);
  CHECK(flips == 0 || !forward_exact);
  // Each value compared only for the neurons whose spike trains agree; parameter gradients (summed over neurons
  // that share a parameter) only without flips.
  const auto compare_agreeing = [&](const std::vector<S>& actual, const std::vector<S>& expected, double t,
                                    const char* what) {
    std::vector<S> a, e;
    for (size_t i = 0; i < expected.size(); ++i) {
      if (flipped[i % N]) continue;
      a.push_back(actual[i]);
      e.push_back(expected[i]);
    }
    compare(a, e, t, what);
  };
  compare_agreeing(dh.to_host(), h, forward_tol, "h");
  compare_agreeing(dvl.to_host(), vl, forward_tol, "v_last");
  compare_agreeing(drl.to_host(), rl, forward_tol, "r_last");
  if (membrane) {
    compare_agreeing(dvs.to_host(), vs, forward_tol, "v_seq");
    // The last step's membrane is the final state.
    for (int64_t n = 0; n < N; ++n) CHECK(as_double(vs[(T_ - 1) * N + n]) == as_double(vl[n]));
  }
  compare_agreeing(dgx.to_host(), gx, backward_tol, "grad x");
  compare_agreeing(dgv0.to_host(), gv0, backward_tol, "grad v0");
  compare_agreeing(dgr0.to_host(), gr0, backward_tol, "grad r0");
  if (param_grads && flips == 0) {
    compare(dga.to_host(), ga, backward_tol * 10, "grad alpha");
    compare(dgt.to_host(), gt, backward_tol * 10, "grad theta");
  }
}

template <typename Executor>
void lif_kernel_cases(Executor& device) {
  std::mt19937 rng(5);
  const int64_t periods[] = {1000, 1, 300};  // per neuron (N = 1000), one for all, and a shorter period
  int cases = 0;
  using snn::ResetMode;
  using snn::Surrogate;
  for (ResetMode reset : {ResetMode::hard, ResetMode::soft, ResetMode::none}) {
    for (bool trace : {false, true}) {
      for (bool detach : {false, true}) {
        for (int k = 0; k < 6; ++k) {
          const auto kind = static_cast<Surrogate>(k);
          for (int64_t T : {1, 17}) {
            for (bool with_state : {false, true}) {
              const int64_t P = periods[cases++ % 3];
              const snn::LifConfig<float> config{reset, trace, detach, kind, 0.8f, -0.1f, 0.85f, 0.6f};
              lif_kernel_case<double, double>(device, {reset, trace, detach, kind, 0.8, -0.1, 0.85, 0.6}, T, P,
                                              with_state, 1e-12, rng);
              lif_kernel_case<float, float>(device, config, T, P, with_state, 1e-4, rng);
              // bfloat16 and float16: a device whose float arithmetic rounded otherwise could round h to the
              // neighbouring 16-bit value.
              lif_kernel_case<snn::bfloat16, float>(device, config, T, P, with_state, 1e-2, rng);
              lif_kernel_case<snn::float16, float>(device, config, T, P, with_state, 1e-2, rng);
            }
          }
        }
      }
    }
  }
}

}  // namespace snn_test
