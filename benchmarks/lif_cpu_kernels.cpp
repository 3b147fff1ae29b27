// The CPU LIF kernels alone, against a copy of the same size: what fraction of the copy bandwidth the fused
// forward and backward reach on preallocated, already-touched buffers, with no PyTorch around them.
//
// benchmarks/timestep_scaling.py times the op as a user calls it, where each call allocates fresh [T, N] outputs
// (which page-fault) and goes through autograd; this separates the kernels from that. Built by CMake
// (CMakeLists.txt) next to the C++ tests, not run by ctest:
//   build/cmake/lif_cpu_kernels [batch=16] [T=64] [threads=2] [rounds=30]
// for [T, batch, 4096] float32, hard reset, atan surrogate, no parameter gradients, h recomputed in the
// backward (as the CPU op runs). The copy, forward and backward run in turn in every round (so a change in the
// machine's load hits all three alike); each is reported as its median.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cpu/lif_cpu.h"

namespace {

using Clock = std::chrono::steady_clock;

// Calls body(begin, end) on `threads` contiguous parts of [0, n) (multiples of kAlign), one std::thread each
// but the last, which runs on the calling thread.
template <typename F>
void parallel_parts(int64_t n, int threads, F body) {
  const int64_t align = snn::cpu::kAlign;
  const int64_t part = (n / threads + align - 1) / align * align;
  std::vector<std::thread> workers;
  for (int k = 0; k + 1 < threads; ++k) {
    const int64_t begin = std::min(n, k * part), end = std::min(n, (k + 1) * part);
    workers.emplace_back([=] { body(begin, end); });
  }
  body(std::min(n, (threads - 1) * part), n);
  for (std::thread& w : workers) w.join();
}

template <typename F>
double milliseconds(F f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t batch = argc > 1 ? std::atol(argv[1]) : 16;
  const int64_t T = argc > 2 ? std::atol(argv[2]) : 64;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 30;
  if (batch < 1 || T < 1 || threads < 1 || rounds < 1) {
    std::fprintf(stderr, "usage: %s [batch >= 1] [T >= 1] [threads >= 1] [rounds >= 1]\n", argv[0]);
    return 2;
  }
  const int64_t N = batch * 4096;
  const int64_t TN = T * N;

  // Every buffer is written once here, so no page faults are timed.
  std::vector<float> x(TN), spikes(TN), grad_spikes(TN), grad_x(TN), copy(TN);
  for (int64_t i = 0; i < TN; ++i) {
    x[i] = 0.3f + 0.015f * static_cast<float>(i % 97);  // about half the neurons fire at some step
    grad_spikes[i] = 0.01f * static_cast<float>(i % 13);
  }
  std::vector<float> alpha(N, 0.5f), theta(N, 1.0f), v_last(N), r_last(N), grad_v0(N), grad_r0(N);
  const snn::LifConfig<float> config{snn::ResetMode::hard, false, false, snn::Surrogate::atan, 2.0f, 0.0f, 0.0f,
                                     1.0f};
  const snn::LifForwardArgs<float, float> fwd{T, N, config, x.data(), alpha.data(), theta.data(), nullptr,
                                              nullptr, spikes.data(), nullptr, v_last.data(), r_last.data()};
  const snn::LifBackwardArgs<float, float> bwd{T, N, config, grad_spikes.data(), nullptr, nullptr, nullptr,
                                               alpha.data(), theta.data(), nullptr, grad_x.data(), grad_v0.data(),
                                               grad_r0.data(), nullptr, nullptr, x.data(), nullptr};

  auto run_copy = [&] {
    parallel_parts(TN, threads, [&](int64_t b, int64_t e) { std::copy(x.data() + b, x.data() + e, copy.data() + b); });
  };
  auto run_fwd = [&] { parallel_parts(N, threads, [&](int64_t b, int64_t e) { snn::cpu::lif_forward_range(fwd, b, e); }); };
  auto run_bwd = [&] { parallel_parts(N, threads, [&](int64_t b, int64_t e) { snn::cpu::lif_backward_range(bwd, b, e); }); };
  run_copy(), run_fwd(), run_bwd();  // warm-up
  std::vector<double> t_copy, t_fwd, t_bwd;
  for (int r = 0; r < rounds; ++r) {
    t_copy.push_back(milliseconds(run_copy));
    t_fwd.push_back(milliseconds(run_fwd));
    t_bwd.push_back(milliseconds(run_bwd));
  }

  const double tensor_mb = static_cast<double>(TN) * sizeof(float) / 1e6;
  const double copy_ms = median(t_copy), fwd_ms = median(t_fwd), bwd_ms = median(t_bwd);
  const double gbps = 2 * tensor_mb / copy_ms;  // MB per ms = GB per s, bytes read + written
  // Bytes the kernels must move: forward reads x and writes spikes; backward reads grad_spikes and x, writes grad_x.
  auto fraction = [&](int tensors, double ms) { return tensors * tensor_mb / gbps / ms; };
  std::printf("[%lld, %lld, 4096] float32, %d threads, isa %s, median of %d rounds; tensor %.1f MB\n",
              static_cast<long long>(T), static_cast<long long>(batch), threads,
              snn::cpu::isa_name(snn::cpu::best_supported_isa()), rounds, tensor_mb);
  std::printf("copy      %8.3f ms  %.1f GB/s (the bound)\n", copy_ms, gbps);
  std::printf("forward   %8.3f ms  %3.0f %% of the bound (2 tensors)\n", fwd_ms, 100 * fraction(2, fwd_ms));
  std::printf("backward  %8.3f ms  %3.0f %% of the bound (3 tensors)\n", bwd_ms, 100 * fraction(3, bwd_ms));
  std::printf("fwd+bwd   %8.3f ms  %3.0f %% of the bound (5 tensors)\n", fwd_ms + bwd_ms,
              100 * fraction(5, fwd_ms + bwd_ms));
  return 0;
}
