// A deliberately plain LIF implementation for the C++ tests: one neuron at a time, the whole trajectory kept,
// and the backward written from the partial derivatives of each update (not from core/lif_step.h's adjoint).
#pragma once

#include <cmath>
#include <vector>

#include "core/lif_step.h"

namespace snn_test {

struct NaiveLif {
  snn::LifConfig<double> c;
  double alpha, theta;

  struct Trajectory {
    std::vector<double> h, s, v, r;  // v[t], r[t] after step t
  };

  Trajectory forward(const std::vector<double>& x, double v0, double r0) const {
    Trajectory tr;
    double v = v0, r = c.trace ? r0 : 0.0;
    for (double xt : x) {
      const double h = alpha * v + xt - r;
      const double s = h > theta ? 1.0 : 0.0;
      if (c.reset == snn::ResetMode::hard) v = s ? c.v_reset : h;
      else if (c.reset == snn::ResetMode::soft) v = h - theta * s;
      else v = h;
      r = c.trace ? c.gamma * r + c.rho * s : 0.0;
      tr.h.push_back(h);
      tr.s.push_back(s);
      tr.v.push_back(v);
      tr.r.push_back(r);
    }
    return tr;
  }

  struct Grads {
    std::vector<double> x;
    double v0 = 0, r0 = 0, alpha = 0, theta = 0;
  };

  // Gradients of L = sum_t gs[t] s[t] + gv_last v[T-1] + gr_last r[T-1] (+ sum_t gv_seq[t] v[t] when given).
  Grads backward(const Trajectory& tr, double v0, const std::vector<double>& gs, double gv_last, double gr_last,
                 const std::vector<double>* gv_seq = nullptr) const {
    const int T = static_cast<int>(tr.h.size());
    Grads g;
    g.x.assign(T, 0.0);
    double dv = gv_last, dr = c.trace ? gr_last : 0.0;  // dL/dv[t], dL/dr[t]
    for (int t = T - 1; t >= 0; --t) {
      if (gv_seq) dv += (*gv_seq)[t];  // v[t] is also an output of its own
      const double h = tr.h[t], s = tr.s[t];
      const double v_prev = t > 0 ? tr.v[t - 1] : v0;
      const double sg = snn::surrogate_grad(c.surrogate, h - theta, c.surrogate_param);
      // Partial derivatives of v[t] = f(h, s, theta) and r[t] = gamma r[t-1] + rho s.
      double pv_ph = 1, pv_ps = 0, pv_ptheta = 0;
      if (c.reset == snn::ResetMode::hard) {
        pv_ph = 1 - s;
        pv_ps = c.v_reset - h;
      } else if (c.reset == snn::ResetMode::soft) {
        pv_ps = -theta;
        pv_ptheta = -s;
      }
      const double pr_ps = c.trace ? c.rho : 0.0;
      double dL_ds = gs[t];
      if (!c.detach_reset) dL_ds += dv * pv_ps + dr * pr_ps;
      const double dL_dh = dv * pv_ph + dL_ds * sg;
      g.theta += dv * pv_ptheta - dL_ds * sg;
      g.x[t] = dL_dh;
      g.alpha += dL_dh * v_prev;
      const double dv_prev = dL_dh * alpha;
      const double dr_prev = c.trace ? dr * c.gamma - dL_dh : 0.0;
      dv = dv_prev;
      dr = dr_prev;
    }
    g.v0 = dv;
    g.r0 = dr;
    return g;
  }
};

}  // namespace snn_test
