// The IIR filter recurrence of models.md section 2, one time step at a time, and its adjoint.
//
// Forward, per element, t = 0 .. T-1 (p[-1] = p1, p[-2] = p2, zeros when not given):
//   p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]
// Adjoint, t = T-1 .. 0, with g[t] = dL/dp[t] (dL/dp_last added at T-1, dL/dp_before_last at T-2):
//   q[t] = g[t] + a1 q[t+1] + a2 q[t+2]                       (q[T] = q[T+1] = 0)
//   dL/dx[t] = b q[t]
//   dL/da1 = sum_t q[t] p[t-1],  dL/da2 = sum_t q[t] p[t-2],  dL/db = sum_t q[t] x[t]
//   dL/dp1 = a1 q[0] + a2 q[1],  dL/dp2 = a2 q[0]
// The adjoint runs in transposed form with two carries, u1 = a1 q[t+1] + a2 q[t+2] and u2 = a2 q[t+1] (what
// later steps add to q[t] and to q[t-1]), so q[t] = g[t] + u1. Starting from u1 = dL/dp_last and
// u2 = dL/dp_before_last adds the final-state gradients at T-1 and T-2 with no branch in the time loop, and is
// right for T = 1 too, where p_before_last is p1 itself (u2 then lands in dL/dp1). After t = 0 the carries are
// exactly dL/dp1 and dL/dp2.
//
// First order (a2 = 0) is a compile-time specialisation: no a2 term, no a2 gradient.
#pragma once

#include "platform.h"

namespace snn {

// Summed in the order of the spec (and of the torch reference), so a float kernel without FMA contraction
// rounds exactly as the reference does.
template <bool kSecondOrder, typename acc_t>
SNN_HD acc_t iir_step(acc_t a1, acc_t a2, acc_t b, acc_t p_prev, acc_t p_prev2, acc_t x) {
  if (kSecondOrder) return a1 * p_prev + a2 * p_prev2 + b * x;
  return a1 * p_prev + b * x;
}

// One adjoint step: returns q[t]. The carries enter holding what later steps add to q[t], q[t-1] and leave
// holding what steps t.. add to q[t-1], q[t-2].
template <bool kSecondOrder, typename acc_t>
SNN_HD acc_t iir_adjoint_step(acc_t a1, acc_t a2, acc_t g, acc_t& u1, acc_t& u2) {
  const acc_t q = g + u1;
  u1 = a1 * q + u2;
  u2 = kSecondOrder ? a2 * q : acc_t(0);
  return q;
}

}  // namespace snn
