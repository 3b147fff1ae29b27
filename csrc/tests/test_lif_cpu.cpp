// C++ tests of the torch-free LIF core: surrogates against closed forms, the CPU kernels against a naive
// trajectory-keeping implementation (every configuration, forward and backward), and the backward kernel
// against finite differences where the op is smooth.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu_kernel_modes.h"
#include "cpu/lif_cpu.h"
#include "lif_naive.h"

using snn::LifConfig;
using snn::ResetMode;
using snn::Surrogate;

namespace {

using snn_test::for_each_store_mode;
using snn_test::kIsas;

const Surrogate kSurrogates[] = {Surrogate::rectangular, Surrogate::gaussian,     Surrogate::sigmoid,
                                 Surrogate::atan,        Surrogate::fast_sigmoid, Surrogate::triangle};

void test_surrogate_closed_forms() {
  const double pi = 3.14159265358979323846;
  CHECK_NEAR(snn::surrogate_grad(Surrogate::rectangular, 0.1, 0.5), 2.0, 1e-15, "rectangular inside");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::rectangular, 0.3, 0.5), 0.0, 1e-15, "rectangular outside");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::gaussian, 0.0, 0.4), 0.997356, 1e-6, "gaussian peak (models.md)");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::sigmoid, 0.0, 4.0), 1.0, 1e-15, "sigmoid peak alpha/4");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::atan, 0.0, 2.0), 1.0, 1e-15, "atan peak alpha/2");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::atan, 1.0 / pi, 2.0), 0.5, 1e-15, "atan at 1/pi");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::fast_sigmoid, 0.2, 25.0), 1.0 / 36.0, 1e-15, "fast sigmoid");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::triangle, 0.25, 1.0), 0.75, 1e-15, "triangle");
  CHECK_NEAR(snn::surrogate_grad(Surrogate::triangle, -1.5, 1.0), 0.0, 1e-15, "triangle outside");
  // Each g is the derivative of a step of height 1 (fast_sigmoid: of 2/k), so its integral is known.
  for (Surrogate kind : kSurrogates) {
    const double p = kind == Surrogate::fast_sigmoid ? 25.0 : 0.7;
    const double expected = kind == Surrogate::fast_sigmoid ? 2.0 / p : 1.0;
    double integral = 0;
    const double du = 1e-4;
    for (double u = -2000.0; u < 2000.0; u += (std::fabs(u) < 20 ? du : 1.0)) {
      integral += snn::surrogate_grad(kind, u, p) * (std::fabs(u) < 20 ? du : 1.0);
    }
    CHECK_NEAR(integral, expected, 2e-3, "surrogate integral");
  }
}

// alpha and theta repeat with period P over the neurons (core/lif_params.h).
struct Problem {
  int64_t T, N, P;
  std::vector<double> x, alpha, theta, v0, r0, gs, gv_last, gr_last;
  std::vector<double> gv_seq;  // a gradient for the membrane sequence, [T, N]
};

Problem random_problem(std::mt19937& rng, int64_t T, int64_t N, int64_t P = 0) {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  Problem p{T, N, P > 0 ? P : N, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  for (int64_t i = 0; i < T * N; ++i) {
    p.x.push_back(u01(rng) * 1.6 - 0.3);
    p.gs.push_back(u01(rng) * 2 - 1);
    p.gv_seq.push_back(u01(rng) - 0.5);
  }
  for (int64_t k = 0; k < p.P; ++k) {
    p.alpha.push_back(0.05 + 0.9 * u01(rng));
    p.theta.push_back(0.7 + 0.6 * u01(rng));
  }
  for (int64_t n = 0; n < N; ++n) {
    p.v0.push_back(u01(rng) - 0.5);
    p.r0.push_back(0.5 * u01(rng));
    p.gv_last.push_back(u01(rng) * 2 - 1);
    p.gr_last.push_back(u01(rng) * 2 - 1);
  }
  return p;
}

// With `membrane`, the kernels also write the membrane sequence and take a gradient for it.
int compare_kernel_with_naive(const Problem& p, const LifConfig<double>& c, snn::cpu::CpuIsa isa, bool membrane) {
  const int64_t T = p.T, N = p.N;
  std::vector<double> spikes(T * N), h(T * N), v_last(N), r_last(N), v_seq(T * N);
  snn::LifForwardArgs<double, double> fa{T, N, p.P, c, p.x.data(), p.alpha.data(), p.theta.data(), p.v0.data(),
                                         p.r0.data(), spikes.data(), h.data(), v_last.data(), r_last.data(),
                                         membrane ? v_seq.data() : nullptr};
  // Two ranges, so a block boundary and a partial block are both exercised.
  snn::cpu::lif_forward_range(fa, 0, N / 2, isa);
  snn::cpu::lif_forward_range(fa, N / 2, N, isa);

  std::vector<double> gx(T * N), gv0(N), gr0(N), galpha(N), gtheta(N);
  snn::LifBackwardArgs<double, double> ba{T, N, p.P, c, p.gs.data(), p.gv_last.data(), p.gr_last.data(),
                                          h.data(), p.alpha.data(), p.theta.data(), p.v0.data(), gx.data(),
                                          gv0.data(), gr0.data(), galpha.data(), gtheta.data(), nullptr, nullptr,
                                          membrane ? p.gv_seq.data() : nullptr};
  snn::cpu::lif_backward_range(ba, 0, N, isa);

  const int before = snn_test::failures();
  // Without h the backward recomputes it from x, v0, r0 (in blocks of recompute_block(T) neurons): every
  // gradient must be bit for bit the one computed from the stored h.
  std::vector<double> rx(T * N), rv0(N), rr0(N), ralpha(N), rtheta(N);
  snn::LifBackwardArgs<double, double> rb = ba;
  rb.h = nullptr;
  rb.x = p.x.data();
  rb.r0 = p.r0.data();
  rb.grad_x = rx.data();
  rb.grad_v0 = rv0.data();
  rb.grad_r0 = rr0.data();
  rb.grad_alpha = ralpha.data();
  rb.grad_theta = rtheta.data();
  snn::cpu::lif_backward_range(rb, 0, N / 3, isa);
  snn::cpu::lif_backward_range(rb, N / 3, N, isa);
  CHECK(rx == gx && rv0 == gv0 && rr0 == gr0 && ralpha == galpha && rtheta == gtheta);

  for (int64_t n = 0; n < N && snn_test::failures() == before; ++n) {
    snn_test::NaiveLif naive{c, p.alpha[n % p.P], p.theta[n % p.P]};
    std::vector<double> x(T), gs(T), gv_seq(T);
    for (int64_t t = 0; t < T; ++t) {
      x[t] = p.x[t * N + n];
      gs[t] = p.gs[t * N + n];
      gv_seq[t] = p.gv_seq[t * N + n];
    }
    const auto tr = naive.forward(x, p.v0[n], p.r0[n]);
    const auto g = naive.backward(tr, p.v0[n], gs, p.gv_last[n], p.gr_last[n], membrane ? &gv_seq : nullptr);
    for (int64_t t = 0; t < T; ++t) {
      CHECK(spikes[t * N + n] == tr.s[t]);
      CHECK_NEAR(h[t * N + n], tr.h[t], 1e-12, "h");
      if (membrane) CHECK_NEAR(v_seq[t * N + n], tr.v[t], 1e-12, "v_seq");
      CHECK_NEAR(gx[t * N + n], g.x[t], 1e-10, "grad x");
    }
    CHECK_NEAR(v_last[n], tr.v[T - 1], 1e-12, "v_last");
    CHECK_NEAR(r_last[n], tr.r[T - 1], 1e-12, "r_last");
    CHECK_NEAR(gv0[n], g.v0, 1e-10, "grad v0");
    CHECK_NEAR(gr0[n], g.r0, 1e-10, "grad r0");
    CHECK_NEAR(galpha[n], g.alpha, 1e-9, "grad alpha");
    CHECK_NEAR(gtheta[n], g.theta, 1e-9, "grad theta");
  }
  return snn_test::failures() - before;
}

void test_kernels_against_naive() {
  std::mt19937 rng(1234);
  int configs = 0;
  for (ResetMode reset : {ResetMode::hard, ResetMode::soft, ResetMode::none}) {
    for (bool trace : {false, true}) {
      for (bool detach : {false, true}) {
        for (Surrogate kind : kSurrogates) {
          const LifConfig<double> c{reset, trace, detach, kind, 0.8, -0.1, 0.85, 0.6};
          // Parameters per neuron, one for all, and repeating with a period that blocks and ranges cut across;
          // shifted by one every six configurations, so each surrogate meets each parameter layout.
          const int64_t periods[] = {0, 1, 600};
          const Problem p = random_problem(rng, 13, snn::cpu::kBlock + 45, periods[(configs + configs / 6) % 3]);
          // N = kBlock + 45 misaligns most rows for the streaming stores. The membrane sequence is an output,
          // with a gradient, in every other configuration.
          const bool membrane = configs % 2 == 1;
          for_each_store_mode([&](bool streamed) {
            for (snn::cpu::CpuIsa isa : kIsas) {
              if (compare_kernel_with_naive(p, c, isa, membrane) != 0) {
                std::printf("  in configuration reset=%d trace=%d detach=%d surrogate=%d isa=%s streamed=%d "
                            "membrane=%d\n",
                            static_cast<int>(reset), trace, detach, static_cast<int>(kind),
                            snn::cpu::isa_name(isa), streamed, membrane);
              }
            }
          });
          ++configs;
        }
      }
    }
  }
  CHECK(configs == 72);
}

void test_backward_matches_finite_differences() {
  // No reset and a threshold no potential reaches: v_last is linear in x, v0 and alpha's powers.
  std::mt19937 rng(7);
  Problem p = random_problem(rng, 9, 3);
  for (double& th : p.theta) th = 1e9;
  const LifConfig<double> c{ResetMode::none, false, false, Surrogate::atan, 2.0, 0.0, 0.0, 1.0};
  const int64_t T = p.T, N = p.N;
  auto v_last_of = [&](const std::vector<double>& x, const std::vector<double>& alpha) {
    std::vector<double> spikes(T * N), v_last(N), r_last(N);
    snn::LifForwardArgs<double, double> fa{T, N, N, c, x.data(), alpha.data(), p.theta.data(), p.v0.data(),
                                           nullptr, spikes.data(), nullptr, v_last.data(), r_last.data(), nullptr};
    snn::cpu::lif_forward_range(fa, 0, N);
    return v_last;
  };
  std::vector<double> spikes(T * N), h(T * N), v_last(N), r_last(N);
  snn::LifForwardArgs<double, double> fa{T, N, N, c, p.x.data(), p.alpha.data(), p.theta.data(), p.v0.data(),
                                         nullptr, spikes.data(), h.data(), v_last.data(), r_last.data(), nullptr};
  snn::cpu::lif_forward_range(fa, 0, N);
  std::vector<double> zeros(T * N, 0.0), ones(N, 1.0), gx(T * N), gv0(N), gr0(N), galpha(N), gtheta(N);
  snn::LifBackwardArgs<double, double> ba{T, N, N, c, zeros.data(), ones.data(), nullptr, h.data(),
                                          p.alpha.data(), p.theta.data(), p.v0.data(), gx.data(), gv0.data(),
                                          gr0.data(), galpha.data(), gtheta.data(), nullptr, nullptr, nullptr};
  snn::cpu::lif_backward_range(ba, 0, N);
  const double eps = 1e-6;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t t = 0; t < T; ++t) {
      auto xp = p.x, xm = p.x;
      xp[t * N + n] += eps;
      xm[t * N + n] -= eps;
      const double fd = (v_last_of(xp, p.alpha)[n] - v_last_of(xm, p.alpha)[n]) / (2 * eps);
      CHECK_NEAR(gx[t * N + n], fd, 1e-7, "grad x vs finite difference");
    }
    auto ap = p.alpha, am = p.alpha;
    ap[n] += eps;
    am[n] -= eps;
    const double fd = (v_last_of(p.x, ap)[n] - v_last_of(p.x, am)[n]) / (2 * eps);
    CHECK_NEAR(galpha[n], fd, 1e-7, "grad alpha vs finite difference");
  }
}

void test_float_kernel_matches_double() {
  std::mt19937 rng(99);
  const Problem p = random_problem(rng, 40, 300);
  const LifConfig<double> cd{ResetMode::soft, true, false, Surrogate::sigmoid, 4.0, 0.0, 0.9, 0.5};
  const LifConfig<float> cf{ResetMode::soft, true, false, Surrogate::sigmoid, 4.0f, 0.0f, 0.9f, 0.5f};
  const int64_t T = p.T, N = p.N;
  std::vector<float> xf(p.x.begin(), p.x.end()), af(p.alpha.begin(), p.alpha.end()),
      tf(p.theta.begin(), p.theta.end()), sf(T * N), hf(T * N), vf(N), rf(N);
  std::vector<double> sd(T * N), hd(T * N), vd(N), rd(N);
  snn::LifForwardArgs<float, float> ff{T, N, N, cf, xf.data(), af.data(), tf.data(), nullptr, nullptr,
                                       sf.data(), hf.data(), vf.data(), rf.data(), nullptr};
  snn::LifForwardArgs<double, double> fd{T, N, N, cd, p.x.data(), p.alpha.data(), p.theta.data(), nullptr, nullptr,
                                         sd.data(), hd.data(), vd.data(), rd.data(), nullptr};
  snn::cpu::lif_forward_range(ff, 0, N);
  snn::cpu::lif_forward_range(fd, 0, N);
  int64_t flips = 0;
  for (int64_t i = 0; i < T * N; ++i) flips += sf[i] != sd[i];
  CHECK(flips * 1000 < T * N);  // rounding moves only potentials within ~1e-7 of theta
  // A neuron whose spikes all agree follows the double trajectory within float rounding (accumulated over T).
  int64_t compared = 0;
  for (int64_t n = 0; n < N; ++n) {
    bool agree = true;
    for (int64_t t = 0; t < T; ++t) agree = agree && sf[t * N + n] == sd[t * N + n];
    if (!agree) continue;
    ++compared;
    for (int64_t t = 0; t < T; ++t) CHECK_NEAR(hf[t * N + n], hd[t * N + n], 1e-5, "float h vs double");
    CHECK_NEAR(vf[n], vd[n], 1e-5, "float v_last vs double");
    CHECK_NEAR(rf[n], rd[n], 1e-5, "float r_last vs double");
  }
  CHECK(compared * 10 > N * 9);
}

// The per-instruction-set builds of the float kernels agree bit for bit (no contraction, same operation order),
// for every storage type computed in float: float16 too, whose AVX2 and AVX-512 builds convert with F16C a chunk
// at a time where the baseline converts each element with integer operations (cpu/common.h).
template <typename scalar_t>
void instruction_sets_agree_bitwise() {
  std::mt19937 rng(11);
  const Problem p = random_problem(rng, 23, 1000);
  const int64_t T = p.T, N = p.N;
  auto storage = [](const std::vector<double>& values) {
    std::vector<scalar_t> out;
    for (double v : values) out.push_back(snn_test::from_double<scalar_t>(v));
    return out;
  };
  std::vector<scalar_t> x = storage(p.x), gs = storage(p.gs);
  std::vector<float> alpha(p.alpha.begin(), p.alpha.end()), theta(p.theta.begin(), p.theta.end());
  for (Surrogate kind : kSurrogates) {
    const LifConfig<float> c{ResetMode::soft, true, false, kind, 0.9f, 0.0f, 0.8f, 0.5f};
    std::vector<std::vector<double>> outputs;
    for_each_store_mode([&](bool) {
      for (snn::cpu::CpuIsa isa : kIsas) {
        std::vector<scalar_t> s(T * N), h(T * N), vl(N), rl(N), gx(T * N), gv0(N), gr0(N), rgx(T * N);
        std::vector<float> ga(N), gt(N);
        snn::LifForwardArgs<scalar_t, float> fa{T, N, N, c, x.data(), alpha.data(), theta.data(), nullptr, nullptr,
                                                s.data(), h.data(), vl.data(), rl.data(), nullptr};
        snn::cpu::lif_forward_range(fa, 0, N, isa);
        snn::LifBackwardArgs<scalar_t, float> ba{T, N, N, c, gs.data(), nullptr, nullptr, h.data(), alpha.data(),
                                                 theta.data(), nullptr, gx.data(), gv0.data(), gr0.data(), ga.data(),
                                                 gt.data(), nullptr, nullptr, nullptr};
        snn::cpu::lif_backward_range(ba, 0, N, isa);
        // And with h recomputed from x (through the scratch block).
        snn::LifBackwardArgs<scalar_t, float> rb = ba;
        rb.h = nullptr;
        rb.x = x.data();
        rb.grad_x = rgx.data();
        rb.grad_alpha = nullptr;
        rb.grad_theta = nullptr;
        snn::cpu::lif_backward_range(rb, 0, N, isa);
        std::vector<double> all;
        for (const auto* v : {&s, &h, &vl, &rl, &gx, &gv0, &gr0, &rgx}) {
          for (scalar_t value : *v) all.push_back(snn_test::as_double(value));
        }
        all.insert(all.end(), ga.begin(), ga.end());
        all.insert(all.end(), gt.begin(), gt.end());
        outputs.push_back(all);
      }
    });
    for (size_t i = 1; i < outputs.size(); ++i) CHECK(outputs[i] == outputs[0]);
  }
}

}  // namespace

int main() {
  std::printf("test_lif_cpu: this processor runs up to %s\n", snn::cpu::isa_name(snn::cpu::best_supported_isa()));
  test_surrogate_closed_forms();
  test_kernels_against_naive();
  test_backward_matches_finite_differences();
  test_float_kernel_matches_double();
  instruction_sets_agree_bitwise<float>();
  instruction_sets_agree_bitwise<snn::float16>();
  instruction_sets_agree_bitwise<snn::bfloat16>();
  return snn_test::finish("test_lif_cpu");
}
