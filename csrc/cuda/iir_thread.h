// What one thread of the CUDA IIR filter kernels does: element n over all t (backward: t in reverse). Free of
// CUDA headers and built-ins, so the CPU tests can run it thread by thread (csrc/tests/test_cuda_threads_cpu.cpp)
// on a machine without a GPU; iir_cuda.cu only maps the thread index to n.
//
// Recurrence and adjoint: see core/iir_step.h (the same step functions as the CPU kernels). The backward reads
// only the forward's output p and its input x, each only when a gradient needs it, and each p row once. The loads
// of several steps are issued together (time_loop.h).
#pragma once

#include <cstdint>

#include "../core/iir_params.h"
#include "time_loop.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
SNN_HD acc_t load_or_zero(const scalar_t* row, int64_t n) {
  return row ? to_acc<acc_t>(row[n]) : acc_t(0);
}

// What the backward reads at step t: the gradient g[t], x[t] (b gradient) and p[t-2] (second order) or p[t-1]
// (first order) for the a1, a2 gradients; with second order, p[t-1] is carried from step t+1's load.
template <typename acc_t>
struct IirBackwardInputs {
  acc_t g;
  acc_t x;
  acc_t p_history;
};

// Arguments by value, as the kernel receives them: a reference to a kernel parameter can cost a copy of the
// whole struct to local memory.
template <typename scalar_t, typename acc_t, bool kSecondOrder>
SNN_HD void iir_forward_thread(const IirForwardArgs<scalar_t, acc_t> a, int64_t n) {
  const int64_t k = n % a.P;  // the coefficients' index (core/iir_params.h)
  const acc_t a1 = a.a1[k];
  const acc_t a2 = kSecondOrder ? a.a2[k] : acc_t(0);
  const acc_t b = a.b[k];
  acc_t p_prev = load_or_zero<scalar_t, acc_t>(a.p1, n);
  acc_t p_prev2 = load_or_zero<scalar_t, acc_t>(a.p2, n);
  const scalar_t* SNN_RESTRICT x = a.x + n;
  scalar_t* SNN_RESTRICT p_out = a.p + n;
  batched_time_loop<acc_t>(
      a.T, false, [&](int64_t t) { return to_acc<acc_t>(x[t * a.N]); },
      [&](int64_t t, acc_t x_t) {
        const acc_t p = iir_step<kSecondOrder>(a1, a2, b, p_prev, p_prev2, x_t);
        p_out[t * a.N] = from_acc<scalar_t>(p);
        p_prev2 = p_prev;
        p_prev = p;
      });
  a.p_last[n] = from_acc<scalar_t>(p_prev);
  a.p_before_last[n] = from_acc<scalar_t>(p_prev2);
}

template <typename scalar_t, typename acc_t, bool kSecondOrder>
SNN_HD void iir_backward_thread(const IirBackwardArgs<scalar_t, acc_t> a, int64_t n) {
  // Which gradients are wanted is uniform across the grid, so these branches never diverge.
  const bool want_x = a.grad_x != nullptr, want_a = a.grad_a1 != nullptr, want_b = a.grad_b != nullptr;
  const int64_t k = n % a.P;  // the coefficients' index (core/iir_params.h)
  const acc_t a1 = a.a1[k];
  const acc_t a2 = kSecondOrder ? a.a2[k] : acc_t(0);
  const acc_t b = a.b[k];
  acc_t u1 = load_or_zero<scalar_t, acc_t>(a.grad_p_last, n);
  acc_t u2 = load_or_zero<scalar_t, acc_t>(a.grad_p_before_last, n);
  acc_t grad_a1 = acc_t(0), grad_a2 = acc_t(0), grad_b = acc_t(0);
  // p[t-1] at step t (second order), carried down from the p[t-2] loaded one step later in time.
  acc_t p_prev = kSecondOrder && want_a ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, a.T - 2), n) : acc_t(0);
  const scalar_t* SNN_RESTRICT g = a.grad_p + n;
  batched_time_loop<IirBackwardInputs<acc_t>>(
      a.T, true,
      [&](int64_t t) {
        const int64_t history = kSecondOrder ? t - 2 : t - 1;
        return IirBackwardInputs<acc_t>{
            to_acc<acc_t>(g[t * a.N]), want_b ? to_acc<acc_t>(a.x[t * a.N + n]) : acc_t(0),
            want_a ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, history), n) : acc_t(0)};
      },
      [&](int64_t t, const IirBackwardInputs<acc_t>& in) {
        const acc_t q = iir_adjoint_step<kSecondOrder>(a1, a2, in.g, u1, u2);
        if (want_x) a.grad_x[t * a.N + n] = from_acc<scalar_t>(b * q);
        if (want_b) grad_b += q * in.x;
        if (want_a) {
          if (kSecondOrder) {
            grad_a1 += q * p_prev;
            grad_a2 += q * in.p_history;
            p_prev = in.p_history;
          } else {
            grad_a1 += q * in.p_history;
          }
        }
      });
  a.grad_p1[n] = from_acc<scalar_t>(u1);
  a.grad_p2[n] = from_acc<scalar_t>(u2);
  if (want_a) {
    a.grad_a1[n] = grad_a1;
    if (kSecondOrder) a.grad_a2[n] = grad_a2;
  }
  if (want_b) a.grad_b[n] = grad_b;
}

}  // namespace cuda
}  // namespace snn
