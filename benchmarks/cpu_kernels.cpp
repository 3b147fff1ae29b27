// The CPU kernels alone, against a copy of the same size: what fraction of the copy bandwidth the fused forward
// and backward reach on preallocated, already-touched buffers, with no PyTorch around them.
//
// benchmarks/timestep_scaling.py times the ops as a user calls them, where each call allocates fresh [T, N]
// outputs (which page-fault) and goes through autograd; this separates the kernels from that. Built by CMake
// (CMakeLists.txt) into build/cmake/cpu_kernels:
//   build/cmake/cpu_kernels [lif|iir] [batch=16] [T=64] [threads=2] [rounds=30] [isa=best|avx512|avx2|baseline]
//                           [dtype=float32|float16|bfloat16] [stream=auto|on|off|both]
// for [T, batch, 4096]; isa "best" is the widest the op runs (iir: at most AVX2, cpu/iir_cpu.h). lif: hard reset,
// atan surrogate, no parameter gradients, h recomputed in the backward (as the CPU op runs), computed in float32.
// iir: second order (dual exponential, tau 4 / 1) computed in float64 (float32 for 16-bit storage, as the op
// does), every gradient (x, a1, a2, b) as for learnable coefficients. The copy moves a tensor of the same bytes.
// stream: the outputs written as the ops write them ("auto": streaming stores from 32 MiB, cpu/common.h), always
// streamed ("on"), never ("off"), or "both": the kernels run without and then with streaming in every round.
// The copy, forward and backward run in turn in every round (so a change in the machine's load hits all three
// alike); each is reported as its median.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cpu/iir_cpu.h"
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


// The forward and backward of one op on [T, N] buffers, and how many [T, N] tensors each must move.
struct Kernels {
  std::function<void(int64_t, int64_t)> forward, backward;
  int forward_tensors, backward_tensors;
};

// Every buffer is written here, so no page faults are timed. Storage S, compute float.
template <typename S>
struct LifBuffers {
  std::vector<S> x, spikes, grad_spikes, grad_x, v_last, r_last, grad_v0, grad_r0;
  std::vector<float> alpha, theta;
  snn::LifForwardArgs<S, float> fwd;
  snn::LifBackwardArgs<S, float> bwd;

  LifBuffers(int64_t T, int64_t N)
      : x(T * N), spikes(T * N), grad_spikes(T * N), grad_x(T * N), v_last(N), r_last(N), grad_v0(N),
        grad_r0(N), alpha(N, 0.5f), theta(N, 1.0f) {
    for (int64_t i = 0; i < T * N; ++i) {
      // about half the neurons fire at some step
      x[i] = snn::from_acc<S>(0.3f + 0.015f * static_cast<float>(i % 97));
      grad_spikes[i] = snn::from_acc<S>(0.01f * static_cast<float>(i % 13));
    }
    const snn::LifConfig<float> config{snn::ResetMode::hard, false, false, snn::Surrogate::atan, 2.0f, 0.0f, 0.0f,
                                       1.0f};
    fwd = {T, N, N, config, x.data(), alpha.data(), theta.data(), nullptr, nullptr, spikes.data(), nullptr,
           v_last.data(), r_last.data(), nullptr};
    bwd = {T, N, N, config, grad_spikes.data(), nullptr, nullptr, nullptr, alpha.data(), theta.data(), nullptr,
           grad_x.data(), grad_v0.data(), grad_r0.data(), nullptr, nullptr, x.data(), nullptr, nullptr};
  }
  // forward: read x, write spikes; backward: read grad_spikes and x, write grad_x
  Kernels kernels(snn::cpu::CpuIsa isa) {
    return {[this, isa](int64_t b, int64_t e) { snn::cpu::lif_forward_range(fwd, b, e, isa); },
            [this, isa](int64_t b, int64_t e) { snn::cpu::lif_backward_range(bwd, b, e, isa); }, 2, 3};
  }
};

// Storage S, compute A (snn::IirCompute<S>, as the op).
template <typename S, typename A>
struct IirBuffers {
  std::vector<S> x, p, grad_p, grad_x, p_last, p_before_last, grad_p1, grad_p2;
  std::vector<A> a1, a2, b, grad_a1, grad_a2, grad_b;
  snn::IirForwardArgs<S, A> fwd;
  snn::IirBackwardArgs<S, A> bwd;

  IirBuffers(int64_t T, int64_t N)
      : x(T * N), p(T * N), grad_p(T * N), grad_x(T * N), p_last(N), p_before_last(N), grad_p1(N), grad_p2(N),
        a1(N, std::exp(-0.25) + std::exp(-1.0)), a2(N, -std::exp(-1.25)), b(N, 1.0), grad_a1(N), grad_a2(N),
        grad_b(N) {
    for (int64_t i = 0; i < T * N; ++i) {
      x[i] = snn::from_acc<S>(0.01f * static_cast<float>(i % 101));
      grad_p[i] = snn::from_acc<S>(0.01f * static_cast<float>(i % 13));
    }
    fwd = {T, N, N, x.data(), a1.data(), a2.data(), b.data(), nullptr, nullptr, p.data(), p_last.data(),
           p_before_last.data()};
    bwd = {T, N, N, grad_p.data(), nullptr, nullptr, p.data(), x.data(), a1.data(), a2.data(), b.data(), nullptr,
           nullptr, grad_x.data(), grad_a1.data(), grad_a2.data(), grad_b.data(), grad_p1.data(), grad_p2.data()};
  }
  // forward: read x, write p; backward: read grad_p, p and x, write grad_x
  Kernels kernels(snn::cpu::CpuIsa isa) {
    return {[this, isa](int64_t b, int64_t e) { snn::cpu::iir_forward_range(fwd, b, e, isa); },
            [this, isa](int64_t b, int64_t e) { snn::cpu::iir_backward_range(bwd, b, e, isa); }, 2, 4};
  }
};

// Times the copy, forward and backward of `op` in storage S and prints the medians and bandwidth fractions.
// thresholds: the streaming thresholds to run the kernels under (cpu/common.h), each every round.
template <typename S>
void run(const std::string& op, const char* dtype, int64_t batch, int64_t T, int threads, int rounds,
         snn::cpu::CpuIsa isa, const std::vector<int64_t>& thresholds) {
  const int64_t N = batch * 4096;
  const int64_t TN = T * N;
  std::unique_ptr<LifBuffers<S>> lif;
  std::unique_ptr<IirBuffers<S, snn::IirCompute<S>>> iir;
  Kernels k;
  if (op == "lif") {
    lif = std::make_unique<LifBuffers<S>>(T, N);
    k = lif->kernels(isa);
  } else {
    iir = std::make_unique<typename decltype(iir)::element_type>(T, N);
    k = iir->kernels(isa);
  }
  const std::vector<S> source(TN, snn::from_acc<S>(1.0f));
  std::vector<S> copy(TN);

  auto run_copy = [&] {
    parallel_parts(TN, threads,
                   [&](int64_t b, int64_t e) { std::copy(source.data() + b, source.data() + e, copy.data() + b); });
  };
  auto run_fwd = [&] { parallel_parts(N, threads, k.forward); };
  auto run_bwd = [&] { parallel_parts(N, threads, k.backward); };
  run_copy(), run_fwd(), run_bwd();  // warm-up
  std::vector<double> t_copy;
  std::vector<std::vector<double>> t_fwd(thresholds.size()), t_bwd(thresholds.size());
  for (int r = 0; r < rounds; ++r) {
    t_copy.push_back(milliseconds(run_copy));
    for (size_t v = 0; v < thresholds.size(); ++v) {
      const snn::cpu::ScopedStreamThreshold streaming(thresholds[v]);
      t_fwd[v].push_back(milliseconds(run_fwd));
      t_bwd[v].push_back(milliseconds(run_bwd));
    }
  }

  const double tensor_mb = static_cast<double>(TN) * sizeof(S) / 1e6;
  const double copy_ms = median(t_copy);
  const double gbps = 2 * tensor_mb / copy_ms;  // MB per ms = GB per s, bytes read + written
  auto fraction = [&](int tensors, double ms) { return tensors * tensor_mb / gbps / ms; };
  std::printf("%s, [%lld, %lld, 4096] %s, %d threads, isa %s, median of %d rounds; tensor %.1f MB\n", op.c_str(),
              static_cast<long long>(T), static_cast<long long>(batch), dtype, threads, snn::cpu::isa_name(isa),
              rounds, tensor_mb);
  std::printf("copy      %8.3f ms  %.1f GB/s (the bound)\n", copy_ms, gbps);
  for (size_t v = 0; v < thresholds.size(); ++v) {
    const snn::cpu::ScopedStreamThreshold streaming(thresholds[v]);
    const bool streamed = snn::cpu::stream_output<S>(TN);
    std::printf("outputs %s:\n", streamed ? "streamed" : "written with plain stores");
    const double fwd_ms = median(t_fwd[v]), bwd_ms = median(t_bwd[v]);
    std::printf("forward   %8.3f ms  %3.0f %% of the bound (%d tensors)\n", fwd_ms,
                100 * fraction(k.forward_tensors, fwd_ms), k.forward_tensors);
    std::printf("backward  %8.3f ms  %3.0f %% of the bound (%d tensors)\n", bwd_ms,
                100 * fraction(k.backward_tensors, bwd_ms), k.backward_tensors);
    const int total = k.forward_tensors + k.backward_tensors;
    std::printf("fwd+bwd   %8.3f ms  %3.0f %% of the bound (%d tensors)\n", fwd_ms + bwd_ms,
                100 * fraction(total, fwd_ms + bwd_ms), total);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string op = argc > 1 ? argv[1] : "lif";
  const int64_t batch = argc > 2 ? std::atol(argv[2]) : 16;
  const int64_t T = argc > 3 ? std::atol(argv[3]) : 64;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const int rounds = argc > 5 ? std::atoi(argv[5]) : 30;
  const std::string isa_arg = argc > 6 ? argv[6] : "best";
  const std::string dtype = argc > 7 ? argv[7] : "float32";
  // Streaming stores for the outputs (cpu/common.h): "auto" streams outputs of the default threshold and more;
  // "both" runs the kernels without and with, alternating within every round.
  const std::string stream = argc > 8 ? argv[8] : "auto";
  // "best", or an instruction set this processor runs.
  using snn::cpu::CpuIsa;
  const CpuIsa best = snn::cpu::best_supported_isa();
  CpuIsa isa = best;
  bool isa_ok = isa_arg == "best";
  for (const CpuIsa candidate : {CpuIsa::baseline, CpuIsa::avx2, CpuIsa::avx512}) {
    if (isa_arg == snn::cpu::isa_name(candidate) && static_cast<int>(candidate) <= static_cast<int>(best)) {
      isa = candidate;
      isa_ok = true;
    }
  }
  if ((op != "lif" && op != "iir") || batch < 1 || T < 1 || threads < 1 || rounds < 1 || !isa_ok ||
      (dtype != "float32" && dtype != "float16" && dtype != "bfloat16") ||
      (stream != "auto" && stream != "on" && stream != "off" && stream != "both")) {
    std::fprintf(stderr,
                 "usage: %s [lif|iir] [batch >= 1] [T >= 1] [threads >= 1] [rounds >= 1] [isa: best, or one of "
                 "baseline .. %s] [float32|float16|bfloat16] [stream: auto|on|off|both]\n",
                 argv[0], snn::cpu::isa_name(best));
    return 2;
  }
  std::vector<int64_t> thresholds{snn::cpu::kDefaultStreamThresholdBytes};
  if (stream == "on") thresholds = {0};
  if (stream == "off") thresholds = {snn::cpu::kNeverStream};
  if (stream == "both") thresholds = {snn::cpu::kNeverStream, 0};
  if (op == "iir" && isa_arg == "best") isa = std::min(isa, snn::cpu::kIirWidestIsa);
  if (dtype == "float32") {
    run<float>(op, "float32", batch, T, threads, rounds, isa, thresholds);
  } else if (dtype == "float16") {
    run<snn::float16>(op, "float16", batch, T, threads, rounds, isa, thresholds);
  } else {
    run<snn::bfloat16>(op, "bfloat16", batch, T, threads, rounds, isa, thresholds);
  }
  return 0;
}
