// What one thread of the CUDA LIF kernels does: neuron n over all t (backward: t in reverse). Free of CUDA
// headers and built-ins, so the CPU tests can run it thread by thread (csrc/tests/test_cuda_threads_cpu.cpp) on a
// machine without a GPU; lif_cuda.cu only maps the thread index to n.
//
// Recurrence and adjoint: see core/lif_step.h (the same step functions as the CPU kernels). Each [T, N] tensor is
// read or written once per thread; h[t] is carried from one backward step to the next. The loads of several
// steps are issued together (time_loop.h).
#pragma once

#include <cstdint>

#include "../core/lif_params.h"
#include "time_loop.h"

namespace snn {
namespace cuda {

// What the backward reads at step t: the spike gradient, h[t-1] (for v[t-1]; h[t] is carried from step t+1) and
// the membrane sequence's gradient (0 when it has none).
template <typename acc_t>
struct LifBackwardInputs {
  acc_t grad_s;
  acc_t h_prev;
  acc_t grad_v;
};

// Arguments by value, as the kernel receives them: a reference to a kernel parameter can cost a copy of the
// whole struct to local memory.
template <typename scalar_t, typename acc_t>
SNN_HD void lif_forward_thread(const LifForwardArgs<scalar_t, acc_t> a, int64_t n) {
  const LifConfig<acc_t> c = a.config;
  const acc_t alpha = a.alpha[n % a.P];
  const acc_t theta = a.theta[n % a.P];
  acc_t v = a.v0 ? to_acc<acc_t>(a.v0[n]) : acc_t(0);
  acc_t r = (c.trace && a.r0) ? to_acc<acc_t>(a.r0[n]) : acc_t(0);
  const scalar_t* SNN_RESTRICT x = a.x + n;
  scalar_t* SNN_RESTRICT spikes = a.spikes + n;
  scalar_t* SNN_RESTRICT h_out = a.h ? a.h + n : nullptr;
  scalar_t* SNN_RESTRICT v_out = a.v_seq ? a.v_seq + n : nullptr;
  batched_time_loop<acc_t>(
      a.T, false, [&](int64_t t) { return to_acc<acc_t>(x[t * a.N]); },
      [&](int64_t t, acc_t x_t) {
        const acc_t h = lif_charge(alpha, v, x_t, r);
        // The spike is decided on h as stored, so the backward recomputes exactly the same spike.
        const scalar_t h_stored = from_acc<scalar_t>(h);
        const acc_t s = lif_fire(to_acc<acc_t>(h_stored), theta);
        if (h_out) h_out[t * a.N] = h_stored;
        spikes[t * a.N] = from_acc<scalar_t>(s);
        v = lif_reset(c, h, s, theta);
        r = lif_trace(c, r, s);
        if (v_out) v_out[t * a.N] = from_acc<scalar_t>(v);
      });
  a.v_last[n] = from_acc<scalar_t>(v);
  a.r_last[n] = from_acc<scalar_t>(r);
}

// Reads the saved h (a.h); the CUDA backward has no recompute-from-x path.
template <typename scalar_t, typename acc_t>
SNN_HD void lif_backward_thread(const LifBackwardArgs<scalar_t, acc_t> a, int64_t n) {
  const LifConfig<acc_t> c = a.config;
  const bool param_grads = a.grad_alpha != nullptr;
  const acc_t alpha = a.alpha[n % a.P];
  const acc_t theta = a.theta[n % a.P];
  const acc_t v0 = a.v0 ? to_acc<acc_t>(a.v0[n]) : acc_t(0);
  acc_t gv = a.grad_v_last ? to_acc<acc_t>(a.grad_v_last[n]) : acc_t(0);
  acc_t gr = (c.trace && a.grad_r_last) ? to_acc<acc_t>(a.grad_r_last[n]) : acc_t(0);
  acc_t galpha = acc_t(0), gtheta = acc_t(0);
  const scalar_t* SNN_RESTRICT h = a.h + n;
  const scalar_t* SNN_RESTRICT grad_s = a.grad_spikes + n;
  scalar_t* SNN_RESTRICT grad_x = a.grad_x + n;
  const scalar_t* SNN_RESTRICT grad_v = a.grad_v_seq ? a.grad_v_seq + n : nullptr;
  acc_t h_t = to_acc<acc_t>(h[(a.T - 1) * a.N]);
  batched_time_loop<LifBackwardInputs<acc_t>>(
      a.T, true,
      [&](int64_t t) {
        return LifBackwardInputs<acc_t>{to_acc<acc_t>(grad_s[t * a.N]),
                                        t > 0 ? to_acc<acc_t>(h[(t - 1) * a.N]) : acc_t(0),
                                        grad_v ? to_acc<acc_t>(grad_v[t * a.N]) : acc_t(0)};
      },
      [&](int64_t t, const LifBackwardInputs<acc_t>& in) {
        if (grad_v) gv += in.grad_v;  // not gv + 0 without one: that would turn a -0 into +0
        const acc_t v_prev = t > 0 ? lif_state_from_h(c, in.h_prev, theta) : v0;
        const LifAdjointOut<acc_t> o = lif_adjoint_step(c, alpha, theta, h_t, v_prev, in.grad_s, gv, gr);
        grad_x[t * a.N] = from_acc<scalar_t>(o.grad_x);
        galpha += o.grad_alpha;
        gtheta += o.grad_theta;
        h_t = in.h_prev;
      });
  a.grad_v0[n] = from_acc<scalar_t>(gv);
  a.grad_r0[n] = from_acc<scalar_t>(gr);
  if (param_grads) {
    a.grad_alpha[n] = galpha;
    a.grad_theta[n] = gtheta;
  }
}

}  // namespace cuda
}  // namespace snn
