// The CUDA LIF kernels against the CPU kernels, every configuration, float and double. Exits with 77 (reported
// by ctest as skipped) when no GPU is present.
#include <cuda_runtime.h>

#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/lif_cpu.h"
#include "cuda/lif_cuda.h"
#include "device_buffer.h"

namespace {

using snn_test::compare;
using snn_test::DeviceBuffer;

template <typename T>
void run_configuration(const snn::LifConfig<T>& c, std::mt19937& rng, double tol) {
  const int64_t T_ = 17, N = 1000;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<T> x(T_ * N), gs(T_ * N), alpha(N), theta(N), v0(N), r0(N), gv(N), gr(N);
  for (auto& e : x) e = T(u01(rng) * 1.6 - 0.3);
  for (auto& e : gs) e = T(u01(rng) * 2 - 1);
  for (int64_t n = 0; n < N; ++n) {
    alpha[n] = T(0.05 + 0.9 * u01(rng));
    theta[n] = T(0.7 + 0.6 * u01(rng));
    v0[n] = T(u01(rng) - 0.5);
    r0[n] = T(0.5 * u01(rng));
    gv[n] = T(u01(rng) - 0.5);
    gr[n] = T(u01(rng) - 0.5);
  }
  // CPU
  std::vector<T> s(T_ * N), h(T_ * N), vl(N), rl(N), gx(T_ * N), gv0(N), gr0(N), ga(N), gt(N);
  snn::LifForwardArgs<T, T> fa{T_, N, c, x.data(), alpha.data(), theta.data(), v0.data(), r0.data(),
                               s.data(), h.data(), vl.data(), rl.data()};
  snn::cpu::lif_forward_range(fa, 0, N);
  snn::LifBackwardArgs<T, T> ba{T_, N, c, gs.data(), gv.data(), gr.data(), h.data(), alpha.data(), theta.data(),
                                v0.data(), gx.data(), gv0.data(), gr0.data(), ga.data(), gt.data()};
  snn::cpu::lif_backward_range(ba, 0, N);
  // GPU
  DeviceBuffer<T> dx(x), dgs(gs), dalpha(alpha), dtheta(theta), dv0(v0), dr0(r0), dgv(gv), dgr(gr);
  DeviceBuffer<T> ds(s), dh(h), dvl(vl), drl(rl), dgx(gx), dgv0(gv0), dgr0(gr0), dga(ga), dgt(gt);
  snn::LifForwardArgs<T, T> dfa{T_, N, c, dx.ptr, dalpha.ptr, dtheta.ptr, dv0.ptr, dr0.ptr,
                                ds.ptr, dh.ptr, dvl.ptr, drl.ptr};
  CUDA_OK(snn::cuda::launch_lif_forward(dfa, nullptr));
  snn::LifBackwardArgs<T, T> dba{T_, N, c, dgs.ptr, dgv.ptr, dgr.ptr, dh.ptr, dalpha.ptr, dtheta.ptr,
                                 dv0.ptr, dgx.ptr, dgv0.ptr, dgr0.ptr, dga.ptr, dgt.ptr};
  CUDA_OK(snn::cuda::launch_lif_backward(dba, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  // Spikes must agree where the CPU potential is not within rounding of the threshold.
  const auto s_gpu = ds.to_host();
  int64_t flips = 0;
  for (size_t i = 0; i < s.size(); ++i) flips += s_gpu[i] != s[i];
  CHECK(flips * 1000 <= static_cast<int64_t>(s.size()));
  if (flips == 0) {
    compare(dh.to_host(), h, tol, "h");
    compare(dvl.to_host(), vl, tol, "v_last");
    compare(drl.to_host(), rl, tol, "r_last");
    compare(dgx.to_host(), gx, tol, "grad x");
    compare(dgv0.to_host(), gv0, tol, "grad v0");
    compare(dgr0.to_host(), gr0, tol, "grad r0");
    compare(dga.to_host(), ga, tol * 10, "grad alpha");
    compare(dgt.to_host(), gt, tol * 10, "grad theta");
  }
}

}  // namespace

int main() {
  if (const int skipped = snn_test::skip_without_gpu("test_lif_gpu")) return skipped;
  std::mt19937 rng(5);
  using snn::ResetMode;
  using snn::Surrogate;
  for (ResetMode reset : {ResetMode::hard, ResetMode::soft, ResetMode::none}) {
    for (bool trace : {false, true}) {
      for (bool detach : {false, true}) {
        for (int k = 0; k < 6; ++k) {
          const auto kind = static_cast<Surrogate>(k);
          run_configuration<double>({reset, trace, detach, kind, 0.8, -0.1, 0.85, 0.6}, rng, 1e-12);
          run_configuration<float>({reset, trace, detach, kind, 0.8f, -0.1f, 0.85f, 0.6f}, rng, 1e-4);
        }
      }
    }
  }
  return snn_test::finish("test_lif_gpu");
}
