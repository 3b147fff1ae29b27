// What one thread of the CUDA IIR filter kernels does: element n over all t (backward: t in reverse). Free of
// CUDA headers and built-ins, so the CPU tests can run it thread by thread (csrc/tests/test_cuda_threads_cpu.cpp)
// on a machine without a GPU; iir_cuda.cu only maps the thread index to n.
//
// Recurrence and adjoint: see core/iir_step.h (the same step functions as the CPU kernels). The backward reads
// only the forward's output p and its input x, each only when a gradient needs it; p[t-1] and p[t-2] are carried
// in registers, so each p row is loaded once.
#pragma once

#include <cstdint>

#include "../core/iir_params.h"

namespace snn {
namespace cuda {

template <typename scalar_t, typename acc_t>
SNN_HD acc_t load_or_zero(const scalar_t* row, int64_t n) {
  return row ? to_acc<acc_t>(row[n]) : acc_t(0);
}

// Arguments by value, as the kernel receives them: a reference to a kernel parameter can cost a copy of the
// whole struct to local memory.
template <typename scalar_t, typename acc_t, bool kSecondOrder>
SNN_HD void iir_forward_thread(const IirForwardArgs<scalar_t, acc_t> a, int64_t n) {
  const acc_t a1 = a.a1[n];
  const acc_t a2 = kSecondOrder ? a.a2[n] : acc_t(0);
  const acc_t b = a.b[n];
  acc_t p_prev = load_or_zero<scalar_t, acc_t>(a.p1, n);
  acc_t p_prev2 = load_or_zero<scalar_t, acc_t>(a.p2, n);
  const scalar_t* SNN_RESTRICT x = a.x + n;
  scalar_t* SNN_RESTRICT p_out = a.p + n;
  SNN_UNROLL(4)
  for (int64_t t = 0; t < a.T; ++t) {
    const acc_t p = iir_step<kSecondOrder>(a1, a2, b, p_prev, p_prev2, to_acc<acc_t>(x[t * a.N]));
    p_out[t * a.N] = from_acc<scalar_t>(p);
    p_prev2 = p_prev;
    p_prev = p;
  }
  a.p_last[n] = from_acc<scalar_t>(p_prev);
  a.p_before_last[n] = from_acc<scalar_t>(p_prev2);
}

template <typename scalar_t, typename acc_t, bool kSecondOrder>
SNN_HD void iir_backward_thread(const IirBackwardArgs<scalar_t, acc_t> a, int64_t n) {
  // Which gradients are wanted is uniform across the grid, so these branches never diverge.
  const bool want_x = a.grad_x != nullptr, want_a = a.grad_a1 != nullptr, want_b = a.grad_b != nullptr;
  const acc_t a1 = a.a1[n];
  const acc_t a2 = kSecondOrder ? a.a2[n] : acc_t(0);
  const acc_t b = a.b[n];
  acc_t u1 = load_or_zero<scalar_t, acc_t>(a.grad_p_last, n);
  acc_t u2 = load_or_zero<scalar_t, acc_t>(a.grad_p_before_last, n);
  acc_t grad_a1 = acc_t(0), grad_a2 = acc_t(0), grad_b = acc_t(0);
  // p[t-1] and p[t-2] for the a1, a2 gradients, shifted down one step per iteration.
  acc_t p_prev = acc_t(0), p_prev2 = acc_t(0);
  if (want_a) {
    p_prev = load_or_zero<scalar_t, acc_t>(iir_history_row(a, a.T - 2), n);
    if (kSecondOrder) p_prev2 = load_or_zero<scalar_t, acc_t>(iir_history_row(a, a.T - 3), n);
  }
  const scalar_t* SNN_RESTRICT g = a.grad_p + n;
  SNN_UNROLL(4)
  for (int64_t t = a.T - 1; t >= 0; --t) {
    const acc_t q = iir_adjoint_step<kSecondOrder>(a1, a2, to_acc<acc_t>(g[t * a.N]), u1, u2);
    if (want_x) a.grad_x[t * a.N + n] = from_acc<scalar_t>(b * q);
    if (want_b) grad_b += q * to_acc<acc_t>(a.x[t * a.N + n]);
    if (want_a) {
      grad_a1 += q * p_prev;
      if (kSecondOrder) {
        grad_a2 += q * p_prev2;
        p_prev = p_prev2;
        p_prev2 = t >= 1 ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, t - 3), n) : acc_t(0);
      } else {
        p_prev = t >= 1 ? load_or_zero<scalar_t, acc_t>(iir_history_row(a, t - 2), n) : acc_t(0);
      }
    }
  }
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
