// The instruction sets the CPU kernels are compiled for, and the runtime choice among them.
//
// The extension is built for the baseline x86-64 (SSE2), where the neuron loops vectorise 4 floats wide and are
// compute-bound. Each kernel is therefore also compiled for AVX2 and AVX-512: `run_with_isa` calls a body
// through a trampoline carrying a target attribute, and the body (always inlined, as are the step functions it
// calls) is compiled for that instruction set. The body gets the instruction set as a compile-time constant too,
// for the few places that pick intrinsics by it (the float16 conversions of common.h). Both wider builds include
// F16C, which every AVX2 processor has. Floating-point contraction is off in every build (-ffp-contract=off), so
// all variants give bitwise identical results; only the vector width differs.
#pragma once

#include <cstdlib>
#include <type_traits>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define SNN_CPU_X86 1
#define SNN_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#define SNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,f16c")))
#else
#define SNN_CPU_X86 0
#endif
#define SNN_ALWAYS_INLINE __attribute__((always_inline))

// Tells the compiler that the iterations of the loop that follows are independent (the kernels' element loops
// write per-element state arrays that it cannot prove apart from their inputs), so it vectorises them. Clang
// warns where it cannot (the gaussian and sigmoid surrogates call exp, which does not vectorise; GCC leaves those
// scalar silently), so that warning is off from here on in every file that includes this one. It cannot be
// scoped tighter: Clang places it at the loop on aarch64 and at the run_* trampoline below, into which the loop
// is inlined, on x86; and it only concerns loops that ask to be vectorised.
#if defined(__clang__)
#define SNN_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#pragma clang diagnostic ignored "-Wpass-failed"
#elif defined(__GNUC__)
#define SNN_IVDEP _Pragma("GCC ivdep")
#else
#define SNN_IVDEP
#endif

namespace snn {
namespace cpu {

enum class CpuIsa : int { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::baseline: break;
  }
  return "baseline";
}

#if SNN_CPU_X86
// F16C, from CPUID leaf 1 (ECX bit 29): Clang 14's __builtin_cpu_supports rejects the name "f16c" at compile time.
// The AVX2 and AVX-512 checks below also cover the operating system's support for the wide registers F16C uses.
// Asked once: CPUID traps to the hypervisor on a virtual machine (about 2 us a call on the build machines), and
// every kernel call asks.
inline bool cpu_has_f16c() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  }();
  return has;
}
#endif

// The widest instruction set this processor runs. The AVX2 and AVX-512 builds need F16C as well (every processor
// with AVX2 has it; a virtual machine that hides it gets the baseline).
inline CpuIsa best_supported_isa() {
#if SNN_CPU_X86
  if (!cpu_has_f16c()) return CpuIsa::baseline;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
    return CpuIsa::avx512;
  }
  if (__builtin_cpu_supports("avx2")) return CpuIsa::avx2;
#endif
  return CpuIsa::baseline;
}

#if SNN_CPU_X86
template <typename F>
SNN_TARGET_AVX2 void run_avx2(F& body) {
  body(std::integral_constant<CpuIsa, CpuIsa::avx2>{});
}
template <typename F>
SNN_TARGET_AVX512 void run_avx512(F& body) {
  body(std::integral_constant<CpuIsa, CpuIsa::avx512>{});
}
#endif

// Runs `body` (a generic lambda marked SNN_ALWAYS_INLINE, taking the instruction set as a
// std::integral_constant) compiled for `isa`, or for the baseline when `isa` is not available on this processor
// or this build.
template <typename F>
void run_with_isa(CpuIsa isa, F&& body) {
  if (static_cast<int>(isa) > static_cast<int>(best_supported_isa())) isa = best_supported_isa();
#if SNN_CPU_X86
  if (isa == CpuIsa::avx512) return run_avx512(body);
  if (isa == CpuIsa::avx2) return run_avx2(body);
#endif
  body(std::integral_constant<CpuIsa, CpuIsa::baseline>{});
}

}  // namespace cpu
}  // namespace snn
