// The LIF neuron recurrence of models.md section 1, one time step at a time, and its adjoint.
//
// Forward, per neuron, t = 0 .. T-1 (v[-1] = v0, r[-1] = r0):
//   h[t] = alpha * v[t-1] + x[t] - r[t-1]
//   s[t] = h[t] > theta
//   v[t] = hard: (1 - s) h + s v_reset | soft: h - theta s | none: h
//   r[t] = gamma r[t-1] + rho s[t]          (only with a reset trace, else r = 0)
// Adjoint, t = T-1 .. 0, with gv = dL/dv[t], gr = dL/dr[t] flowing back from later steps (plus, when the
// membrane sequence is an output, its own gradient dL/dv[t]) and ds/dh replaced by the surrogate g(h - theta):
//   gs = dL/ds[t] (direct) + [not detached] (gv dv/ds + gr rho)
//   gh = gv dv/dh + gs g;   dL/dx[t] = gh;   dL/dalpha += gh v[t-1];   dL/dtheta += -gs g + gv dv/dtheta
//   dL/dv[t-1] = alpha gh;  dL/dr[t-1] = gamma gr - gh
// v[t-1] is recomputed from the saved h[t-1] (and s[t-1] = h[t-1] > theta), so the forward saves h alone.
//
// Every function takes the configuration as plain values. The CPU kernels instantiate them with compile-time
// constants for the reset mode, the trace and the surrogate (so those switches fold away and the neuron loop
// vectorises) and pass detach_reset at run time; the CUDA kernels pass runtime values, uniform across a warp.
#pragma once

#include <cmath>

#include "platform.h"

namespace snn {

enum class ResetMode : int { hard = 0, soft = 1, none = 2 };

enum class Surrogate : int {
  rectangular = 0,
  gaussian = 1,
  sigmoid = 2,
  atan = 3,
  fast_sigmoid = 4,
  triangle = 5,
};

template <typename acc_t>
struct LifConfig {
  ResetMode reset;
  bool trace;         // reset trace r present (gamma given)
  bool detach_reset;  // s is a constant where it enters the v and r updates
  Surrogate surrogate;
  acc_t surrogate_param;
  acc_t v_reset;
  acc_t gamma;
  acc_t rho;
};

// Surrogate derivative g(u) of the Heaviside step, u = h - theta. Constants are written in full precision and
// rounded to acc_t, so float and double kernels agree with the torch reference to rounding.
template <typename acc_t>
SNN_HD acc_t surrogate_grad(Surrogate kind, acc_t u, acc_t p) {
  const acc_t one = acc_t(1);
  switch (kind) {
    case Surrogate::rectangular:
      return std::fabs(u) < p * acc_t(0.5) ? one / p : acc_t(0);
    case Surrogate::gaussian: {
      const acc_t inv_sqrt_2pi = acc_t(0.39894228040143267794);
      return std::exp(-(u * u) / (acc_t(2) * p * p)) * inv_sqrt_2pi / p;
    }
    case Surrogate::sigmoid: {
      const acc_t sig = one / (one + std::exp(-p * u));
      return p * sig * (one - sig);
    }
    case Surrogate::atan: {
      const acc_t half_pi = acc_t(1.57079632679489661923);
      const acc_t z = half_pi * p * u;
      return (p * acc_t(0.5)) / (one + z * z);
    }
    case Surrogate::fast_sigmoid: {
      const acc_t d = one + p * std::fabs(u);
      return one / (d * d);
    }
    case Surrogate::triangle: {
      const acc_t m = one - std::fabs(u) / p;
      return (m > acc_t(0) ? m : acc_t(0)) / p;
    }
  }
  return acc_t(0);
}

template <typename acc_t>
SNN_HD acc_t lif_charge(acc_t alpha, acc_t v_prev, acc_t x, acc_t r_prev) {
  return alpha * v_prev + x - r_prev;
}

// Strict '>' as in both seeds.
template <typename acc_t>
SNN_HD acc_t lif_fire(acc_t h, acc_t theta) {
  return static_cast<acc_t>(h > theta);
}

template <typename acc_t>
SNN_HD acc_t lif_reset(const LifConfig<acc_t>& c, acc_t h, acc_t s, acc_t theta) {
  switch (c.reset) {
    case ResetMode::hard:
      // A select rather than (1 - s) h + s v_reset: equal for s in {0, 1}, and it vectorises as a blend.
      return s != acc_t(0) ? c.v_reset : h;
    case ResetMode::soft:
      return h - theta * s;
    case ResetMode::none:
      break;
  }
  return h;
}

template <typename acc_t>
SNN_HD acc_t lif_trace(const LifConfig<acc_t>& c, acc_t r_prev, acc_t s) {
  return c.trace ? c.gamma * r_prev + c.rho * s : acc_t(0);
}

// Per-step gradient contributions of one neuron.
template <typename acc_t>
struct LifAdjointOut {
  acc_t grad_x;
  acc_t grad_alpha;  // to be summed over t
  acc_t grad_theta;  // to be summed over t
};

// One adjoint step. gv and gr enter as dL/dv[t], dL/dr[t] and leave as dL/dv[t-1], dL/dr[t-1].
template <typename acc_t>
SNN_HD LifAdjointOut<acc_t> lif_adjoint_step(const LifConfig<acc_t>& c, acc_t alpha, acc_t theta, acc_t h,
                                             acc_t v_prev, acc_t grad_s, acc_t& gv, acc_t& gr) {
  const acc_t s = lif_fire(h, theta);
  const acc_t g = surrogate_grad(c.surrogate, h - theta, c.surrogate_param);
  acc_t dv_dh = acc_t(1), dv_ds = acc_t(0), dv_dtheta = acc_t(0);
  if (c.reset == ResetMode::hard) {
    dv_dh = acc_t(1) - s;
    dv_ds = c.v_reset - h;
  } else if (c.reset == ResetMode::soft) {
    dv_ds = -theta;
    dv_dtheta = -s;
  }
  // A select rather than a branch: the CPU kernels take detach_reset at run time (one instantiation fewer per
  // configuration), and the select keeps their neuron loop free of control flow, so it still vectorises.
  acc_t coupled = grad_s + gv * dv_ds;
  if (c.trace) coupled += gr * c.rho;
  const acc_t gs = c.detach_reset ? grad_s : coupled;
  const acc_t gh = gv * dv_dh + gs * g;
  LifAdjointOut<acc_t> out;
  out.grad_x = gh;
  out.grad_alpha = gh * v_prev;
  out.grad_theta = gv * dv_dtheta - gs * g;
  gv = alpha * gh;
  gr = c.trace ? c.gamma * gr - gh : acc_t(0);
  return out;
}

// v[t-1] recomputed from the saved h[t-1]; used by the alpha gradient.
template <typename acc_t>
SNN_HD acc_t lif_state_from_h(const LifConfig<acc_t>& c, acc_t h, acc_t theta) {
  return lif_reset(c, h, lif_fire(h, theta), theta);
}

}  // namespace snn
