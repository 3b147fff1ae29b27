// Fused IIR filter forward and backward on the CPU over a range of elements [n_begin, n_end).
//
//   forward:  p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]                  (p[-1] = p1, p[-2] = p2)
//   adjoint:  q[t] = g[t] + a1 q[t+1] + a2 q[t+2]                      (g = dL/dp plus the final-state grads)
//             dL/dx[t] = b q[t];  dL/da1 = sum_t q[t] p[t-1];  dL/da2 = sum_t q[t] p[t-2];
//             dL/db = sum_t q[t] x[t];  dL/dp1 = a1 q[0] + a2 q[1];  dL/dp2 = a2 q[0]
// (derivation and the carried form in core/iir_step.h). The backward reads only the forward's output p and its
// input x, and each only when a gradient needs it: no other [T, N] tensor is saved.
//
// Elements are processed in blocks of kBlock whose state lives in stack arrays (BlockArrays, common.h); the time loop
// is outside and the element loop inside, so each row of a block is a contiguous, vectorisable run of memory,
// prefetched in software (common.h). The order and which gradients are wanted are template arguments, so the inner
// loops have no branches. Each kernel is compiled for the baseline, AVX2 and AVX-512 and chosen at run time (isa.h),
// so everything it calls is always inlined. The element loops see rows through InputChunk / OutputChunk (common.h),
// as the LIF kernels do.
// Coefficient gradients are per-element sums over t in acc_t (double for float32 storage): deterministic.
// Torch-free: the torch binding calls these from at::parallel_for; the C++ tests call them directly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "../core/iir_params.h"
#include "common.h"
#include "isa.h"

namespace snn {
namespace cpu {

// The widest instruction set the IIR kernels run with (the ops, and benchmarks/cpu_kernels.cpp by default). On the
// build machine (AMD EPYC with AVX-512) their AVX-512 build ran 13-35 % slower than their AVX2 build (fwd+bwd at
// [64, 64, 4096]: 15.5 vs 12.6 ms; at [64, 16, 4096]: 3.9-4.5 vs 3.3-3.4 ms; `cpu_kernels iir {64,16} 64 2 30
// {avx512,avx2}`), while the LIF kernels' two builds ran equal. Both are memory-bound, so the wider vectors have
// little to give them.
constexpr CpuIsa kIirWidestIsa = CpuIsa::avx2;

// An optional [N] state of storage type as acc_t; zeros when absent.
template <typename scalar_t, typename acc_t>
SNN_ALWAYS_INLINE inline void load_state_block(const scalar_t* SNN_RESTRICT state, int64_t begin, int64_t len,
                                               acc_t* SNN_RESTRICT out) {
  for (int64_t i = 0; i < len; ++i) out[i] = state ? to_acc<acc_t>(state[begin + i]) : acc_t(0);
}

template <CpuIsa kIsa, typename scalar_t, typename acc_t, bool kSecondOrder>
SNN_ALWAYS_INLINE inline void iir_forward_block_range(const IirForwardArgs<scalar_t, acc_t>& a, int64_t n_begin,
                                                      int64_t n_end) {
  const int64_t N = a.N;
  // p[t-1] and p[t-2] (second order) in two arrays whose roles swap every step: p[t] overwrites p[t-2], so no
  // state is copied. The state arrays and coefficients are the per-step traffic besides x and p.
  BlockArrays<acc_t, 5> arrays;  // common.h
  acc_t* const state[2] = {arrays[0], arrays[1]};
  acc_t* SNN_RESTRICT const a1 = arrays[2];
  acc_t* SNN_RESTRICT const a2 = arrays[3];
  acc_t* SNN_RESTRICT const b = arrays[4];
  const bool stream = stream_output<scalar_t>(a.T * N);  // common.h
  for (int64_t begin = n_begin; begin < n_end; begin += kBlock) {
    const int64_t len = std::min(kBlock, n_end - begin);
    acc_t* p_prev = state[0];
    acc_t* p_prev2 = state[1];
    load_state_block(a.p1, begin, len, p_prev);
    if (kSecondOrder) load_state_block(a.p2, begin, len, p_prev2);
    load_periodic(a.a1, a.P, begin, len, a1);
    if (kSecondOrder) load_periodic(a.a2, a.P, begin, len, a2);
    load_periodic(a.b, a.P, begin, len, b);
    for (int64_t t = 0; t < a.T; ++t) {
      const scalar_t* SNN_RESTRICT x = a.x + t * N + begin;
      scalar_t* SNN_RESTRICT p_out = a.p + t * N + begin;
      acc_t* SNN_RESTRICT prev = p_prev;
      acc_t* SNN_RESTRICT prev2 = p_prev2;
      const bool last = t + 1 == a.T;
      for_prefetched_chunks(
          len,
          [&](int64_t i) SNN_ALWAYS_INLINE {
            prefetch_ahead<false>(x, last ? nullptr : x + N, i, len);
            if (!stream) prefetch_ahead<true>(p_out, last ? nullptr : p_out + N, i, len);
          },
          [&](int64_t i0, int64_t i1) SNN_ALWAYS_INLINE {
            const InputChunk<kIsa, scalar_t> x_chunk(x, i0, i1 - i0);
            const auto* SNN_RESTRICT x_src = x_chunk.data();
            OutputChunk<kIsa, scalar_t> p_chunk(p_out, i0, stream);
            auto* SNN_RESTRICT p_dst = p_chunk.data();
            using p_t = typename decltype(p_chunk)::element;
            SNN_IVDEP
            for (int64_t i = i0; i < i1; ++i) {
              const acc_t p = iir_step<kSecondOrder>(a1[i], kSecondOrder ? a2[i] : acc_t(0), b[i], prev[i],
                                                     kSecondOrder ? prev2[i] : acc_t(0), to_acc<acc_t>(x_src[i - i0]));
              p_dst[i - i0] = from_acc<p_t>(p);
              (kSecondOrder ? prev2 : prev)[i] = p;
            }
            p_chunk.finish(i1 - i0);
          });
      if (kSecondOrder) std::swap(p_prev, p_prev2);
    }
    if (stream) stream_fence();  // before_last below reads a streamed row back
    // p[T-2] as stored (the state rounded to scalar_t, as p_before_last is), or p[-1] when T = 1.
    const scalar_t* before_last = a.T >= 2 ? a.p + (a.T - 2) * N : a.p1;
    for (int64_t i = 0; i < len; ++i) {
      a.p_last[begin + i] = from_acc<scalar_t>(p_prev[i]);
      a.p_before_last[begin + i] = before_last ? before_last[begin + i] : from_acc<scalar_t>(acc_t(0));
    }
  }
}

template <CpuIsa kIsa, typename scalar_t, typename acc_t, bool kSecondOrder, bool kGradX, bool kGradA, bool kGradB>
SNN_ALWAYS_INLINE inline void iir_backward_block_range(const IirBackwardArgs<scalar_t, acc_t>& a, int64_t n_begin,
                                                       int64_t n_end) {
  const int64_t N = a.N;
  BlockArrays<acc_t, 8> arrays;  // common.h
  acc_t* SNN_RESTRICT const u1 = arrays[0];
  acc_t* SNN_RESTRICT const u2 = arrays[1];
  acc_t* SNN_RESTRICT const a1 = arrays[2];
  acc_t* SNN_RESTRICT const a2 = arrays[3];
  acc_t* SNN_RESTRICT const b = arrays[4];
  acc_t* SNN_RESTRICT const grad_a1 = arrays[5];
  acc_t* SNN_RESTRICT const grad_a2 = arrays[6];
  acc_t* SNN_RESTRICT const grad_b = arrays[7];
  // Stands in for an absent initial state in the a1, a2 gradients of the first steps.
  const scalar_t zeros[kBlock] = {};
  const bool stream = kGradX && stream_output<scalar_t>(a.T * N);  // common.h
  for (int64_t begin = n_begin; begin < n_end; begin += kBlock) {
    const int64_t len = std::min(kBlock, n_end - begin);
    load_state_block(a.grad_p_last, begin, len, u1);
    load_state_block(a.grad_p_before_last, begin, len, u2);
    load_periodic(a.a1, a.P, begin, len, a1);
    if (kSecondOrder) load_periodic(a.a2, a.P, begin, len, a2);
    load_periodic(a.b, a.P, begin, len, b);
    for (int64_t i = 0; i < len; ++i) grad_a1[i] = grad_a2[i] = grad_b[i] = acc_t(0);
    auto history = [&](int64_t k) SNN_ALWAYS_INLINE -> const scalar_t* {
      const scalar_t* row = iir_history_row(a, k);
      return row ? row + begin : zeros;
    };
    for (int64_t t = a.T - 1; t >= 0; --t) {
      const scalar_t* SNN_RESTRICT g = a.grad_p + t * N + begin;
      const scalar_t* SNN_RESTRICT x = kGradB ? a.x + t * N + begin : nullptr;
      const scalar_t* SNN_RESTRICT p_prev = kGradA ? history(t - 1) : nullptr;
      const scalar_t* SNN_RESTRICT p_prev2 = kGradA && kSecondOrder ? history(t - 2) : nullptr;
      scalar_t* SNN_RESTRICT grad_x = kGradX ? a.grad_x + t * N + begin : nullptr;
      // The history row read first at this step (p[t-1] is the previous step's p[t-2] in second order).
      const int64_t lead = kSecondOrder ? t - 2 : t - 1;
      const bool first = t == 0;
      for_prefetched_chunks(
          len,
          [&](int64_t i) SNN_ALWAYS_INLINE {
            prefetch_ahead<false>(g, first ? nullptr : g - N, i, len);
            if (kGradX && !stream) prefetch_ahead<true>(grad_x, first ? nullptr : grad_x - N, i, len);
            if (kGradB) prefetch_ahead<false>(x, first ? nullptr : x - N, i, len);
            if (kGradA && lead >= 0) {
              const scalar_t* row = a.p + lead * N + begin;
              prefetch_ahead<false>(row, lead >= 1 ? row - N : nullptr, i, len);
            }
          },
          [&](int64_t i0, int64_t i1) SNN_ALWAYS_INLINE {
            const InputChunk<kIsa, scalar_t> g_chunk(g, i0, i1 - i0);
            const InputChunk<kIsa, scalar_t> x_chunk(x, i0, i1 - i0);
            const InputChunk<kIsa, scalar_t> p_prev_chunk(p_prev, i0, i1 - i0);
            const InputChunk<kIsa, scalar_t> p_prev2_chunk(p_prev2, i0, i1 - i0);
            const auto* SNN_RESTRICT g_src = g_chunk.data();
            const auto* SNN_RESTRICT x_src = x_chunk.data();
            const auto* SNN_RESTRICT p_prev_src = p_prev_chunk.data();
            const auto* SNN_RESTRICT p_prev2_src = p_prev2_chunk.data();
            OutputChunk<kIsa, scalar_t> gx_chunk(grad_x, i0, stream);
            auto* SNN_RESTRICT gx_dst = gx_chunk.data();
            using gx_t = typename decltype(gx_chunk)::element;
            SNN_IVDEP
            for (int64_t i = i0; i < i1; ++i) {
              const acc_t q = iir_adjoint_step<kSecondOrder>(a1[i], kSecondOrder ? a2[i] : acc_t(0),
                                                             to_acc<acc_t>(g_src[i - i0]), u1[i], u2[i]);
              if (kGradX) gx_dst[i - i0] = from_acc<gx_t>(b[i] * q);
              if (kGradA) grad_a1[i] += q * to_acc<acc_t>(p_prev_src[i - i0]);
              if (kGradA && kSecondOrder) grad_a2[i] += q * to_acc<acc_t>(p_prev2_src[i - i0]);
              if (kGradB) grad_b[i] += q * to_acc<acc_t>(x_src[i - i0]);
            }
            gx_chunk.finish(i1 - i0);
          });
    }
    for (int64_t i = 0; i < len; ++i) {
      a.grad_p1[begin + i] = from_acc<scalar_t>(u1[i]);
      a.grad_p2[begin + i] = from_acc<scalar_t>(u2[i]);
      if (kGradA) a.grad_a1[begin + i] = grad_a1[i];
      if (kGradA && kSecondOrder) a.grad_a2[begin + i] = grad_a2[i];
      if (kGradB) a.grad_b[begin + i] = grad_b[i];
    }
  }
  if (stream) stream_fence();
}

// Forward over elements [n_begin, n_end), compiled for `isa` (capped at what the processor runs); first order
// when a2 is null.
template <typename scalar_t, typename acc_t>
void iir_forward_range(const IirForwardArgs<scalar_t, acc_t>& a, int64_t n_begin, int64_t n_end,
                       CpuIsa isa = best_supported_isa()) {
  dispatch_bool(a.a2 != nullptr, [&](auto second_order) {
    run_with_isa(isa, [&](auto isa_built) SNN_ALWAYS_INLINE {
      iir_forward_block_range<decltype(isa_built)::value, scalar_t, acc_t, decltype(second_order)::value>(
          a, n_begin, n_end);
    });
  });
}

// Backward over elements [n_begin, n_end), compiled for `isa`; each gradient output that is null is skipped.
// grad_a1 stands for both feedback coefficients: null skips a1 and a2, otherwise second order writes grad_a2 too.
template <typename scalar_t, typename acc_t>
void iir_backward_range(const IirBackwardArgs<scalar_t, acc_t>& a, int64_t n_begin, int64_t n_end,
                        CpuIsa isa = best_supported_isa()) {
  dispatch_bool(a.a2 != nullptr, [&](auto second_order) {
    dispatch_bool(a.grad_x != nullptr, [&](auto grad_x) {
      dispatch_bool(a.grad_a1 != nullptr, [&](auto grad_a) {
        dispatch_bool(a.grad_b != nullptr, [&](auto grad_b) {
          run_with_isa(isa, [&](auto isa_built) SNN_ALWAYS_INLINE {
            iir_backward_block_range<decltype(isa_built)::value, scalar_t, acc_t, decltype(second_order)::value,
                                     decltype(grad_x)::value, decltype(grad_a)::value, decltype(grad_b)::value>(
                a, n_begin, n_end);
          });
        });
      });
    });
  });
}

// Compiled once per storage type in cpu/instances/<dtype>_iir.cpp, as the LIF kernels (lif_cpu.h says why).
#define SNN_IIR_CPU_KERNELS(prefix, scalar_t, acc_t)                                                             \
  prefix void iir_forward_range<scalar_t, acc_t>(const IirForwardArgs<scalar_t, acc_t>&, int64_t, int64_t,      \
                                                 CpuIsa);                                                        \
  prefix void iir_backward_range<scalar_t, acc_t>(const IirBackwardArgs<scalar_t, acc_t>&, int64_t, int64_t,    \
                                                  CpuIsa);
SNN_IIR_CPU_KERNELS(extern template, float, IirCompute<float>)
SNN_IIR_CPU_KERNELS(extern template, double, IirCompute<double>)
SNN_IIR_CPU_KERNELS(extern template, bfloat16, IirCompute<bfloat16>)
SNN_IIR_CPU_KERNELS(extern template, float16, IirCompute<float16>)

}  // namespace cpu
}  // namespace snn
