// C++ tests of the torch-free IIR filter core: the CPU kernels (every instruction set) against a naive loop
// (forward) and against complex-step derivatives of that loop (every gradient), each subset of wanted gradients,
// the golden values of models.md, float storage (double compute) against double storage over a long, slow filter,
// and the instruction-set builds against each other.
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu_kernel_modes.h"
#include "cpu/iir_cpu.h"

namespace {

using snn_test::for_each_store_mode;
using snn_test::kIsas;

// One filter problem in double; the kernels run it with N elements side by side, the coefficients repeating
// with period P over them (core/iir_params.h).
struct Problem {
  int64_t T, N, P;
  bool second_order, with_state;
  std::vector<double> x, a1, a2, b, p1, p2, grad_p, grad_p_last, grad_p_before_last;
};

Problem random_problem(std::mt19937& rng, int64_t T, int64_t N, bool second_order, bool with_state,
                       int64_t P = 0) {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&](size_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (double& e : v) e = lo + (hi - lo) * u01(rng);
    return v;
  };
  Problem p{T, N, P > 0 ? P : N, second_order, with_state, uniform(T * N, -1, 1), {}, {}, {}, {}, {},
            uniform(T * N, -1, 1), uniform(N, -1, 1), uniform(N, -1, 1)};
  // Stable dual-exp poles a, c in (0.5, 0.97): a1 = a + c, a2 = -a c.
  const auto a = uniform(p.P, 0.5, 0.97), c = uniform(p.P, 0.5, 0.97);
  for (int64_t k = 0; k < p.P; ++k) {
    p.a1.push_back(second_order ? a[k] + c[k] : a[k]);
    p.a2.push_back(second_order ? -a[k] * c[k] : 0.0);
  }
  p.b = uniform(p.P, 0.2, 1.5);
  p.p1 = with_state ? uniform(N, -1, 1) : std::vector<double>(N, 0.0);
  p.p2 = with_state ? uniform(N, -1, 1) : std::vector<double>(N, 0.0);
  return p;
}

// The spec as a plain loop for element n in arithmetic V: p[t] = a1 p[t-1] + a2 p[t-2] + b x[t], t = 0 .. T-1,
// with `delta` added to the one input that `target` points to (none when null; a coefficient is perturbed in
// element n's loop alone, so derivatives are element n's part of the gradient, as the kernels write it).
template <typename V>
std::vector<V> naive_forward(const Problem& q, int64_t n, const double* target = nullptr, V delta = V(0)) {
  auto input = [&](const double& value) { return &value == target ? V(value) + delta : V(value); };
  std::vector<V> p(q.T);
  V prev = input(q.p1[n]), prev2 = input(q.p2[n]);
  for (int64_t t = 0; t < q.T; ++t) {
    const int64_t k = n % q.P;
    p[t] = input(q.a1[k]) * prev + input(q.a2[k]) * prev2 + input(q.b[k]) * input(q.x[t * q.N + n]);
    prev2 = prev;
    prev = p[t];
  }
  return p;
}

// dL/d(*target) for element n, L = sum_t grad_p[t] p[t] + grad_p_last p[T-1] + grad_p_before_last p[T-2]
// (p[T-2] is p1 when T = 1), by complex-step differentiation: a finite difference in the imaginary direction,
// Im L(v + i h) / h. No subtraction, so no cancellation: exact to rounding for this polynomial, however close
// the poles are to 1.
double derivative(const Problem& q, int64_t n, const double& target) {
  using C = std::complex<double>;
  const double h = 1e-30;
  const std::vector<C> p = naive_forward<C>(q, n, &target, C(0, h));
  C loss = 0;
  for (int64_t t = 0; t < q.T; ++t) loss += q.grad_p[t * q.N + n] * p[t];
  const C p1 = &target == &q.p1[n] ? C(q.p1[n], h) : C(q.p1[n]);
  const C before_last = q.T >= 2 ? p[q.T - 2] : p1;
  loss += q.grad_p_last[n] * p[q.T - 1] + q.grad_p_before_last[n] * before_last;
  return loss.imag() / h;
}

template <typename scalar_t>
std::vector<scalar_t> cast(const std::vector<double>& v) {
  std::vector<scalar_t> out;
  for (double value : v) out.push_back(snn_test::from_double<scalar_t>(value));
  return out;
}

// The kernels' outputs for one problem, in double.
struct Result {
  std::vector<double> p, p_last, p_before_last, grad_x, grad_a1, grad_a2, grad_b, grad_p1, grad_p2;
};

// Runs forward and backward with storage scalar_t and compute acc_t, compiled for `isa`, over two element ranges,
// so a block boundary and a partial block are both exercised. Gradients not wanted stay empty.
template <typename scalar_t, typename acc_t = double>
Result run_kernels(const Problem& q, bool want_x, bool want_a, bool want_b,
                   snn::cpu::CpuIsa isa = snn::cpu::best_supported_isa()) {
  const int64_t T = q.T, N = q.N;
  const auto x = cast<scalar_t>(q.x), p1 = cast<scalar_t>(q.p1), p2 = cast<scalar_t>(q.p2),
             grad_p = cast<scalar_t>(q.grad_p), grad_p_last = cast<scalar_t>(q.grad_p_last),
             grad_p_before_last = cast<scalar_t>(q.grad_p_before_last);
  std::vector<scalar_t> p(T * N), p_last(N), p_before_last(N), grad_x(T * N), grad_p1(N), grad_p2(N);
  std::vector<acc_t> grad_a1(N), grad_a2(N), grad_b(N);
  const auto a1 = cast<acc_t>(q.a1), a2_values = cast<acc_t>(q.a2), b = cast<acc_t>(q.b);
  const acc_t* a2 = q.second_order ? a2_values.data() : nullptr;
  const scalar_t* p1_ptr = q.with_state ? p1.data() : nullptr;
  const scalar_t* p2_ptr = q.with_state ? p2.data() : nullptr;
  snn::IirForwardArgs<scalar_t, acc_t> fa{T,        N,      q.P,    x.data(), a1.data(),     a2,
                                          b.data(), p1_ptr, p2_ptr, p.data(), p_last.data(), p_before_last.data()};
  snn::cpu::iir_forward_range(fa, 0, N / 2, isa);
  snn::cpu::iir_forward_range(fa, N / 2, N, isa);
  snn::IirBackwardArgs<scalar_t, acc_t> ba{T,
                                            N,
                                            q.P,
                                            grad_p.data(),
                                            grad_p_last.data(),
                                            grad_p_before_last.data(),
                                            want_a ? p.data() : nullptr,
                                            want_b ? x.data() : nullptr,
                                            a1.data(),
                                            a2,
                                            b.data(),
                                            p1_ptr,
                                            p2_ptr,
                                            want_x ? grad_x.data() : nullptr,
                                            want_a ? grad_a1.data() : nullptr,
                                            want_a && a2 ? grad_a2.data() : nullptr,
                                            want_b ? grad_b.data() : nullptr,
                                            grad_p1.data(),
                                            grad_p2.data()};
  snn::cpu::iir_backward_range(ba, 0, N / 2, isa);
  snn::cpu::iir_backward_range(ba, N / 2, N, isa);
  auto wide = [](const auto& v) {
    std::vector<double> out;
    for (auto value : v) out.push_back(snn_test::as_double(value));
    return out;
  };
  Result r{wide(p), wide(p_last), wide(p_before_last), {}, {}, {}, {}, wide(grad_p1), wide(grad_p2)};
  if (want_x) r.grad_x = wide(grad_x);
  if (want_a) r.grad_a1 = wide(grad_a1);
  if (want_a && a2) r.grad_a2 = wide(grad_a2);
  if (want_b) r.grad_b = wide(grad_b);
  return r;
}

void check_against_naive(const Problem& q, snn::cpu::CpuIsa isa) {
  const Result r = run_kernels<double>(q, true, true, true, isa);
  const int64_t T = q.T, N = q.N;
  const int before = snn_test::failures();
  for (int64_t n = 0; n < N && snn_test::failures() == before; ++n) {
    const std::vector<double> p = naive_forward<double>(q, n);
    for (int64_t t = 0; t < T; ++t) CHECK_NEAR(r.p[t * N + n], p[t], 1e-13, "p");
    CHECK_NEAR(r.p_last[n], p[T - 1], 1e-13, "p_last");
    CHECK_NEAR(r.p_before_last[n], T >= 2 ? p[T - 2] : q.p1[n], 1e-13, "p_before_last");
    for (int64_t t = 0; t < T; ++t) {
      CHECK_NEAR(r.grad_x[t * N + n], derivative(q, n, q.x[t * N + n]), 1e-12, "grad x");
    }
    CHECK_NEAR(r.grad_a1[n], derivative(q, n, q.a1[n % q.P]), 1e-11, "grad a1");
    if (q.second_order) CHECK_NEAR(r.grad_a2[n], derivative(q, n, q.a2[n % q.P]), 1e-11, "grad a2");
    CHECK_NEAR(r.grad_b[n], derivative(q, n, q.b[n % q.P]), 1e-12, "grad b");
    // Without initial states the kernels read zeros, and their gradients are still reported.
    CHECK_NEAR(r.grad_p1[n], derivative(q, n, q.p1[n]), 1e-12, "grad p1");
    // First order: p2 does not enter, its gradient is exactly 0.
    CHECK_NEAR(r.grad_p2[n], derivative(q, n, q.p2[n]), 1e-12, "grad p2");
  }
  if (snn_test::failures() != before) {
    std::printf("  in T=%lld P=%lld second_order=%d with_state=%d isa=%s\n", static_cast<long long>(T),
                static_cast<long long>(q.P), q.second_order, q.with_state, snn::cpu::isa_name(isa));
  }
}

void test_kernels_against_naive_loop_and_derivatives() {
  std::mt19937 rng(2024);
  int cases = 0;
  for (int64_t T : {1, 2, 3, 7, 40}) {
    for (bool second_order : {false, true}) {
      for (bool with_state : {false, true}) {
        // Coefficients per element, one for all, and repeating with a period that blocks and ranges cut across;
        // cycling with the 20 cases, each order x state pair meets each layout.
        const int64_t periods[] = {0, 1, 600};
        const int64_t P = periods[cases++ % 3];
        const Problem q = random_problem(rng, T, snn::cpu::kBlock + 45, second_order, with_state, P);
        // N = kBlock + 45 misaligns most rows for the streaming stores.
        for_each_store_mode([&](bool) {
          for (snn::cpu::CpuIsa isa : kIsas) check_against_naive(q, isa);
        });
      }
    }
  }
}

void test_each_subset_of_gradients_matches_the_full_backward() {
  std::mt19937 rng(7);
  for (bool second_order : {false, true}) {
    const Problem q = random_problem(rng, 9, 70, second_order, true);
    const Result full = run_kernels<double>(q, true, true, true);
    for (int mask = 0; mask < 8; ++mask) {
      const bool want_x = mask & 1, want_a = mask & 2, want_b = mask & 4;
      const Result r = run_kernels<double>(q, want_x, want_a, want_b);
      // Skipping work must not change what is computed (exactly: the same operations in the same order).
      CHECK(r.grad_p1 == full.grad_p1 && r.grad_p2 == full.grad_p2);
      CHECK(!want_x || r.grad_x == full.grad_x);
      CHECK(!want_a || (r.grad_a1 == full.grad_a1 && r.grad_a2 == full.grad_a2));
      CHECK(!want_b || r.grad_b == full.grad_b);
    }
  }
}

void test_golden_impulse_response() {
  // models.md section 2: dual_exp(tau_m 4, tau_s 1).
  const double a = std::exp(-1.0 / 4), c = std::exp(-1.0);
  Problem q{60, 1, 1, true, false, std::vector<double>(60, 0.0), {a + c}, {-a * c}, {a - c}, {0.0}, {0.0},
            std::vector<double>(60, 0.0), {0.0}, {0.0}};
  q.x[0] = 1;
  const Result r = run_kernels<double>(q, false, false, false);
  const double golden[] = {0.41092, 0.47120, 0.42258, 0.34956, 0.27977};
  for (int t = 0; t < 5; ++t) CHECK_NEAR(r.p[t], golden[t], 5e-6, "golden impulse response");
  for (int t = 0; t < 60; ++t) {
    CHECK_NEAR(r.p[t], std::pow(a, t + 1) - std::pow(c, t + 1), 1e-14, "h[n] = a^(n+1) - c^(n+1)");
  }
}

void test_float_storage_keeps_precision_over_long_sequences() {
  // Poles 0.995 and 0.980 (tau_m 200, tau_s 50), DC gain 150, T = 1000: float storage computes in double, so
  // every output is the double result rounded once.
  std::mt19937 rng(11);
  Problem q = random_problem(rng, 1000, 64, true, true);
  const double a = std::exp(-1.0 / 200), c = std::exp(-1.0 / 50);
  for (int64_t n = 0; n < q.N; ++n) {
    q.a1[n] = a + c;
    q.a2[n] = -a * c;
    q.b[n] = a - c;
  }
  for (double& v : q.x) v = static_cast<float>(v + 0.5);  // inputs exactly representable in float
  for (double& v : q.p1) v = static_cast<float>(v);
  for (double& v : q.p2) v = static_cast<float>(v);
  for (double& v : q.grad_p) v = static_cast<float>(v);
  const Result exact = run_kernels<double>(q, true, true, true);
  const Result single = run_kernels<float>(q, true, true, true);
  double worst = 0;
  auto relative = [&](const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
    for (size_t i = 0; i < got.size(); ++i) {
      const double err = std::fabs(got[i] - want[i]) / std::fmax(std::fabs(want[i]), 1e-30);
      worst = std::fmax(worst, err);
      if (err > tol) {
        CHECK_NEAR(got[i], want[i], tol, what);
        return;
      }
    }
  };
  const double half_ulp = 6e-8;  // one float rounding
  relative(single.p, exact.p, half_ulp, "float p");
  relative(single.grad_x, exact.grad_x, half_ulp, "float grad x");
  relative(single.grad_p1, exact.grad_p1, half_ulp, "float grad p1");
  relative(single.grad_p2, exact.grad_p2, half_ulp, "float grad p2");
  relative(single.p_last, exact.p_last, half_ulp, "float p_last");
  relative(single.p_before_last, exact.p_before_last, half_ulp, "float p_before_last");
  // Coefficient gradients sum over t in double from float-rounded p and x: within a few float roundings.
  relative(single.grad_a1, exact.grad_a1, 1e-6, "float grad a1");
  relative(single.grad_a2, exact.grad_a2, 1e-6, "float grad a2");
  relative(single.grad_b, exact.grad_b, 1e-6, "float grad b");
  std::printf("float storage, T = 1000, slow poles: worst relative error %.2e\n", worst);
}

// The per-instruction-set builds of the kernels agree bit for bit (no contraction, same operation order), for
// float storage and for float16, whose AVX2 and AVX-512 builds convert with F16C a chunk at a time where the
// baseline converts each element with integer operations (cpu/common.h); each with the compute type of the ops.
template <typename scalar_t>
void instruction_sets_agree_bitwise() {
  using acc_t = snn::IirCompute<scalar_t>;
  std::mt19937 rng(5);
  for (bool second_order : {false, true}) {
    const Problem q = random_problem(rng, 23, 1000, second_order, true);
    const Result baseline = run_kernels<scalar_t, acc_t>(q, true, true, true, snn::cpu::CpuIsa::baseline);
    for_each_store_mode([&](bool) {
      for (snn::cpu::CpuIsa isa : kIsas) {
        const Result r = run_kernels<scalar_t, acc_t>(q, true, true, true, isa);
        CHECK(r.p == baseline.p && r.p_last == baseline.p_last && r.p_before_last == baseline.p_before_last);
        CHECK(r.grad_x == baseline.grad_x && r.grad_a1 == baseline.grad_a1 && r.grad_a2 == baseline.grad_a2);
        CHECK(r.grad_b == baseline.grad_b && r.grad_p1 == baseline.grad_p1 && r.grad_p2 == baseline.grad_p2);
      }
    });
  }
}

}  // namespace

int main() {
  std::printf("test_iir_cpu: this processor runs up to %s\n", snn::cpu::isa_name(snn::cpu::best_supported_isa()));
  test_kernels_against_naive_loop_and_derivatives();
  test_each_subset_of_gradients_matches_the_full_backward();
  test_golden_impulse_response();
  test_float_storage_keeps_precision_over_long_sequences();
  instruction_sets_agree_bitwise<float>();
  instruction_sets_agree_bitwise<snn::float16>();
  return snn_test::finish("test_iir_cpu");
}
