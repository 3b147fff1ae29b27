// How the CPU op implementations run the kernels: the storage and compute types, the instruction set PyTorch
// uses, and the parallel loop over neuron ranges.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include "../core/platform.h"
#include "../cpu/common.h"
#include "../cpu/isa.h"

namespace snn {
namespace torch_ops {

// Maps ATen element types to the CPU kernels' storage types (identical layouts): bfloat16 and half are stored as
// snn::bfloat16 and snn::float16. The compute types are LifCompute and IirCompute (core/).
template <typename scalar_t>
struct CpuTypes {
  using storage = scalar_t;
};
template <>
struct CpuTypes<at::BFloat16> {
  using storage = bfloat16;
};
template <>
struct CpuTypes<at::Half> {
  using storage = float16;
};
static_assert(sizeof(bfloat16) == sizeof(at::BFloat16) && alignof(bfloat16) == alignof(at::BFloat16),
              "snn::bfloat16 must have c10::BFloat16's layout");
static_assert(sizeof(float16) == sizeof(at::Half) && alignof(float16) == alignof(at::Half),
              "snn::float16 must have c10::Half's layout");

// The dtypes the CPU kernels implement (snn_cuda/ops/_backend.py lists the same).
#define SNN_DISPATCH_CPU_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

// The instruction set PyTorch itself uses, so ATEN_CPU_CAPABILITY=default|avx2|avx512 sets ours too.
inline cpu::CpuIsa torch_cpu_isa() {
  static const cpu::CpuIsa isa = [] {
    const std::string name = at::get_cpu_capability();
    if (name == "AVX512") return cpu::CpuIsa::avx512;
    if (name == "AVX2") return cpu::CpuIsa::avx2;
    return cpu::CpuIsa::baseline;
  }();
  return isa;
}

// Calls body(n_begin, n_end) over [0, N): threads get contiguous ranges of whole kAlign-neuron groups; the
// kernels split each range into blocks.
template <typename F>
void parallel_over_neurons(int64_t N, int64_t T, F&& body) {
#ifdef _OPENMP
  // at::parallel_for runs on the OpenMP runtime this library was compiled with. With GCC that is the libgomp
  // torch loaded, whose thread count torch.set_num_threads sets; with Clang it is LLVM's libomp, a second runtime
  // torch does not know, which ran 2 threads whatever torch was set to. It gets torch's count here.
  const int threads = at::get_num_threads();
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
#endif
  const int64_t groups = (N + cpu::kAlign - 1) / cpu::kAlign;
  // Enough work per task to amortise the thread hand-off: about 64k neuron-steps.
  const int64_t grain = std::max<int64_t>(1, 65536 / (cpu::kAlign * std::max<int64_t>(T, 1)));
  at::parallel_for(0, groups, grain, [&](int64_t begin, int64_t end) {
    body(begin * cpu::kAlign, std::min(N, end * cpu::kAlign));
  });
}

}  // namespace torch_ops
}  // namespace snn
