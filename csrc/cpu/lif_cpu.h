// Fused LIF forward and backward on the CPU over a range of neurons [n_begin, n_end).
//
// Recurrence and adjoint: see core/lif_step.h. Neurons are processed in blocks of kBlock whose state lives in stack
// arrays (BlockArrays, common.h); the time loop is outside and the neuron loop inside, so each row of a block is a
// contiguous, vectorisable run of memory, prefetched in software (common.h). The configuration (reset mode, trace,
// surrogate) is a template argument: the mode switches in the step functions fold to constants and the inner loop has
// no branches. detach_reset is a select in the adjoint step (core/lif_step.h) and whether the backward recomputes h
// only changes where h is read from, so both stay runtime values: every template flag multiplies the kernels each
// build compiles (per dtype and instruction set), and with them the build time. The element loops read and write each
// row a chunk at a time through InputChunk / OutputChunk (common.h), which convert float16 with F16C in the AVX2 and
// AVX-512 builds.
// Torch-free: the torch binding calls these from at::parallel_for; the C++ tests call them directly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/lif_params.h"
#include "common.h"
#include "isa.h"

namespace snn {
namespace cpu {

template <typename acc_t, ResetMode kReset, bool kTrace, Surrogate kSurrogate>
inline LifConfig<acc_t> fixed_config(const LifConfig<acc_t>& runtime) {
  LifConfig<acc_t> c = runtime;
  c.reset = kReset;
  c.trace = kTrace;
  c.surrogate = kSurrogate;
  return c;
}

// Initial state of neurons [b, b + len) into the block arrays v, r (zeros where v0 / r0 are null).
template <typename scalar_t, typename acc_t, bool kTrace>
SNN_ALWAYS_INLINE inline void load_initial_state(const scalar_t* v0, const scalar_t* r0, int64_t b, int64_t len,
                                                 acc_t* v, acc_t* r) {
  for (int64_t i = 0; i < len; ++i) {
    v[i] = v0 ? to_acc<acc_t>(v0[b + i]) : acc_t(0);
    r[i] = (kTrace && r0) ? to_acc<acc_t>(r0[b + i]) : acc_t(0);
  }
}

// The recurrence over all T steps for one block of len neurons: x rows at x + t * N; spikes (if kStoreS) at
// s_out + t * N, with streaming stores if stream_s (common.h); h (if kStoreH) at h_out + t * h_stride; the
// membrane sequence (if v_out is non-null) at v_out + t * N. v and r hold the state in and out. The forward op
// stores spikes (and h when a backward will read it); the backward's recompute stores only h, into a scratch
// block, so both run literally the same steps and the recomputed h equals the forward's bit for bit.
template <CpuIsa kIsa, typename scalar_t, typename acc_t, ResetMode kReset, bool kTrace, bool kStoreS,
          bool kStoreH>
SNN_ALWAYS_INLINE inline void lif_forward_steps(const LifConfig<acc_t>& c, int64_t T, int64_t N, int64_t len,
                                                const scalar_t* x_block, scalar_t* s_out, bool stream_s,
                                                scalar_t* h_out, int64_t h_stride, scalar_t* v_out,
                                                const acc_t* alpha, const acc_t* theta, acc_t* v, acc_t* r) {
  for (int64_t t = 0; t < T; ++t) {
    const scalar_t* SNN_RESTRICT x = x_block + t * N;
    scalar_t* SNN_RESTRICT s_row = kStoreS ? s_out + t * N : nullptr;
    scalar_t* SNN_RESTRICT h_row = kStoreH ? h_out + t * h_stride : nullptr;
    const bool last = t + 1 == T;
    for_prefetched_chunks(
        len,
        [&](int64_t i) SNN_ALWAYS_INLINE {
          prefetch_ahead<false>(x, last ? nullptr : x + N, i, len);
          // A streamed row is not prefetched: that would read the lines the streaming stores avoid reading.
          if (kStoreS && !stream_s) prefetch_ahead<true>(s_row, last ? nullptr : s_row + N, i, len);
          if (kStoreH) prefetch_ahead<true>(h_row, last ? nullptr : h_row + h_stride, i, len);
        },
        [&](int64_t i0, int64_t i1) SNN_ALWAYS_INLINE {
          const InputChunk<kIsa, scalar_t> x_chunk(x, i0, i1 - i0);
          const auto* SNN_RESTRICT x_src = x_chunk.data();
          // h is read back by the backward (from cache, when this is its scratch block): plain stores.
          OutputChunk<kIsa, scalar_t> s_chunk(s_row, i0, stream_s), h_chunk(h_row, i0, false);
          auto* SNN_RESTRICT s_dst = s_chunk.data();
          auto* SNN_RESTRICT h_dst = h_chunk.data();
          using out_t = typename decltype(s_chunk)::element;
          SNN_IVDEP
          for (int64_t i = i0; i < i1; ++i) {
            const acc_t h = lif_charge(alpha[i], v[i], to_acc<acc_t>(x_src[i - i0]), kTrace ? r[i] : acc_t(0));
            // The spike is decided on h as stored, so the backward recomputes exactly the same spike.
            const acc_t h_stored = round_to_storage<scalar_t>(h);
            const acc_t s = lif_fire(h_stored, theta[i]);
            if (kStoreH) h_dst[i - i0] = from_acc<out_t>(h_stored);
            if (kStoreS) s_dst[i - i0] = from_acc<out_t>(s);
            v[i] = lif_reset(c, h, s, theta[i]);
            if (kTrace) r[i] = lif_trace(c, r[i], s);
          }
          s_chunk.finish(i1 - i0);
          h_chunk.finish(i1 - i0);
        });
    // The membrane sequence is an optional output: a loop of its own over the row just computed (in cache)
    // keeps the loop above as it is when it is not asked for.
    if (v_out) {
      scalar_t* SNN_RESTRICT v_row = v_out + t * N;
      for (int64_t i = 0; i < len; ++i) v_row[i] = from_acc<scalar_t>(v[i]);
    }
  }
}

template <CpuIsa kIsa, typename scalar_t, typename acc_t, ResetMode kReset, bool kTrace, bool kStoreH>
SNN_ALWAYS_INLINE inline void lif_forward_block_range(const LifForwardArgs<scalar_t, acc_t>& a, int64_t n_begin,
                                                      int64_t n_end) {
  const LifConfig<acc_t> c = fixed_config<acc_t, kReset, kTrace, Surrogate::atan>(a.config);
  const int64_t N = a.N;
  BlockArrays<acc_t, 4> arrays;  // common.h
  acc_t* SNN_RESTRICT const v = arrays[0];
  acc_t* SNN_RESTRICT const r = arrays[1];
  acc_t* SNN_RESTRICT const alpha = arrays[2];
  acc_t* SNN_RESTRICT const theta = arrays[3];
  const bool stream = stream_output<scalar_t>(a.T * N);
  for (int64_t b = n_begin; b < n_end; b += kBlock) {
    const int64_t len = std::min(kBlock, n_end - b);
    load_initial_state<scalar_t, acc_t, kTrace>(a.v0, a.r0, b, len, v, r);
    load_periodic(a.alpha, a.P, b, len, alpha);
    load_periodic(a.theta, a.P, b, len, theta);
    lif_forward_steps<kIsa, scalar_t, acc_t, kReset, kTrace, true, kStoreH>(
        c, a.T, N, len, a.x + b, a.spikes + b, stream, kStoreH ? a.h + b : nullptr, N,
        a.v_seq ? a.v_seq + b : nullptr, alpha, theta, v, r);
    for (int64_t i = 0; i < len; ++i) {
      a.v_last[b + i] = from_acc<scalar_t>(v[i]);
      a.r_last[b + i] = from_acc<scalar_t>(r[i]);
    }
  }
  if (stream) stream_fence();
}

// Neurons per block when the backward recomputes h: the scratch block [T, len] must stay in L2 between the
// recompute and the reverse sweep that reads it (at T = 64, float32: 1024 neurons, 256 KiB).
template <typename scalar_t>
inline int64_t recompute_block(int64_t T) {
  constexpr int64_t kScratchBytes = 256 * 1024;
  const int64_t fit = kScratchBytes / static_cast<int64_t>(sizeof(scalar_t)) / std::max<int64_t>(T, 1);
  return std::clamp(fit / kAlign * kAlign, kAlign, kBlock);
}

template <CpuIsa kIsa, typename scalar_t, typename acc_t, ResetMode kReset, bool kTrace, Surrogate kSurrogate,
          bool kParamGrads>
SNN_ALWAYS_INLINE inline void lif_backward_block_range(const LifBackwardArgs<scalar_t, acc_t>& a, int64_t n_begin,
                                                       int64_t n_end) {
  const LifConfig<acc_t> c = fixed_config<acc_t, kReset, kTrace, kSurrogate>(a.config);
  const int64_t N = a.N;
  BlockArrays<acc_t, 7> arrays;  // common.h
  acc_t* SNN_RESTRICT const gv = arrays[0];
  acc_t* SNN_RESTRICT const gr = arrays[1];
  acc_t* SNN_RESTRICT const galpha = arrays[2];
  acc_t* SNN_RESTRICT const gtheta = arrays[3];
  acc_t* SNN_RESTRICT const v_prev = arrays[4];
  acc_t* SNN_RESTRICT const alpha = arrays[5];
  acc_t* SNN_RESTRICT const theta = arrays[6];
  // Without a saved h, each block first runs the forward again into this scratch block (see recompute_block).
  const bool recompute = a.h == nullptr;
  const bool stream = stream_output<scalar_t>(a.T * N);
  // No longer than this thread's range: with few neurons per thread (small N, or N not a multiple of 64 in the
  // last range) a block of recompute_block's 64+ neurons would allocate [T, 64] per thread for [T, 1] of work,
  // 64x the input at N = 1. So the scratch never exceeds the thread's share of x.
  const int64_t block = recompute ? std::min(recompute_block<scalar_t>(a.T), n_end - n_begin) : kBlock;
  std::vector<scalar_t> scratch(recompute ? a.T * block : 0);
  const int64_t h_stride = recompute ? block : N;
  for (int64_t b = n_begin; b < n_end; b += block) {
    const int64_t len = std::min(block, n_end - b);
    load_periodic(a.alpha, a.P, b, len, alpha);
    load_periodic(a.theta, a.P, b, len, theta);
    const scalar_t* h_block = recompute ? scratch.data() : a.h + b;
    if (recompute) {
      // gv and gr serve as the forward's v and r here; they are set for the backward just below.
      load_initial_state<scalar_t, acc_t, kTrace>(a.v0, a.r0, b, len, gv, gr);
      lif_forward_steps<kIsa, scalar_t, acc_t, kReset, kTrace, false, true>(
          c, a.T, N, len, a.x + b, nullptr, false, scratch.data(), block, nullptr, alpha, theta, gv, gr);
    }
    for (int64_t i = 0; i < len; ++i) {
      gv[i] = a.grad_v_last ? to_acc<acc_t>(a.grad_v_last[b + i]) : acc_t(0);
      gr[i] = (kTrace && a.grad_r_last) ? to_acc<acc_t>(a.grad_r_last[b + i]) : acc_t(0);
      galpha[i] = acc_t(0);
      gtheta[i] = acc_t(0);
    }
    for (int64_t t = a.T - 1; t >= 0; --t) {
      const scalar_t* SNN_RESTRICT gs_in = a.grad_spikes + t * N + b;
      const scalar_t* SNN_RESTRICT h_row = h_block + t * h_stride;
      scalar_t* SNN_RESTRICT gx_out = a.grad_x + t * N + b;
      if (a.grad_v_seq) {
        // dL/dv[t] of the membrane sequence joins the gradient carried back to v[t]; a loop of its own, as the
        // v[t-1] loop below, so that the main loop is the same with or without it.
        const scalar_t* SNN_RESTRICT gv_in = a.grad_v_seq + t * N + b;
        for (int64_t i = 0; i < len; ++i) gv[i] += to_acc<acc_t>(gv_in[i]);
      }
      if (kParamGrads) {
        // v[t-1] for the alpha gradient, in its own loop so the main loop below has no branches.
        if (t > 0) {
          const scalar_t* SNN_RESTRICT h_prev_row = h_block + (t - 1) * h_stride;
          // Read in chunks, as the main loop reads rows (float16 converted with F16C); not prefetched: the
          // recomputed h (the CPU op's case) is in cache.
          for_prefetched_chunks(
              len, [](int64_t) SNN_ALWAYS_INLINE {},
              [&](int64_t i0, int64_t i1) SNN_ALWAYS_INLINE {
                const InputChunk<kIsa, scalar_t> h_chunk(h_prev_row, i0, i1 - i0);
                const auto* SNN_RESTRICT h_src = h_chunk.data();
                for (int64_t i = i0; i < i1; ++i) {
                  v_prev[i] = lif_state_from_h(c, to_acc<acc_t>(h_src[i - i0]), theta[i]);
                }
              });
        } else {
          for (int64_t i = 0; i < len; ++i) v_prev[i] = a.v0 ? to_acc<acc_t>(a.v0[b + i]) : acc_t(0);
        }
      }
      const bool first = t == 0;
      for_prefetched_chunks(
          len,
          [&](int64_t i) SNN_ALWAYS_INLINE {
            prefetch_ahead<false>(gs_in, first ? nullptr : gs_in - N, i, len);
            if (!stream) prefetch_ahead<true>(gx_out, first ? nullptr : gx_out - N, i, len);
            // A recomputed h is in the scratch block, in cache already.
            if (!recompute) prefetch_ahead<false>(h_row, first ? nullptr : h_row - h_stride, i, len);
          },
          [&](int64_t i0, int64_t i1) SNN_ALWAYS_INLINE {
            const InputChunk<kIsa, scalar_t> h_chunk(h_row, i0, i1 - i0);
            const InputChunk<kIsa, scalar_t> gs_chunk(gs_in, i0, i1 - i0);
            const auto* SNN_RESTRICT h_src = h_chunk.data();
            const auto* SNN_RESTRICT gs_src = gs_chunk.data();
            OutputChunk<kIsa, scalar_t> gx_chunk(gx_out, i0, stream);
            auto* SNN_RESTRICT gx_dst = gx_chunk.data();
            using gx_t = typename decltype(gx_chunk)::element;
            SNN_IVDEP
            for (int64_t i = i0; i < i1; ++i) {
              // Without a trace gr stays 0: keep it in a register instead of storing zeros every step.
              acc_t gr_i = kTrace ? gr[i] : acc_t(0);
              const LifAdjointOut<acc_t> o = lif_adjoint_step(c, alpha[i], theta[i], to_acc<acc_t>(h_src[i - i0]),
                                                              kParamGrads ? v_prev[i] : acc_t(0),
                                                              to_acc<acc_t>(gs_src[i - i0]), gv[i], gr_i);
              if (kTrace) gr[i] = gr_i;
              gx_dst[i - i0] = from_acc<gx_t>(o.grad_x);
              if (kParamGrads) {
                galpha[i] += o.grad_alpha;
                gtheta[i] += o.grad_theta;
              }
            }
            gx_chunk.finish(i1 - i0);
          });
    }
    for (int64_t i = 0; i < len; ++i) {
      a.grad_v0[b + i] = from_acc<scalar_t>(gv[i]);
      a.grad_r0[b + i] = from_acc<scalar_t>(gr[i]);
      if (kParamGrads) {
        a.grad_alpha[b + i] = galpha[i];
        a.grad_theta[b + i] = gtheta[i];
      }
    }
  }
  if (stream) stream_fence();
}

// Runtime -> compile-time dispatch of the LIF modes, as dispatch_bool (common.h) does for flags, so the kernels
// above are instantiated for every combination once.
template <typename F>
void dispatch_reset(ResetMode mode, F&& f) {
  switch (mode) {
    case ResetMode::hard: f(std::integral_constant<ResetMode, ResetMode::hard>{}); break;
    case ResetMode::soft: f(std::integral_constant<ResetMode, ResetMode::soft>{}); break;
    case ResetMode::none: f(std::integral_constant<ResetMode, ResetMode::none>{}); break;
  }
}

template <typename F>
void dispatch_surrogate(Surrogate kind, F&& f) {
  switch (kind) {
    case Surrogate::rectangular: f(std::integral_constant<Surrogate, Surrogate::rectangular>{}); break;
    case Surrogate::gaussian: f(std::integral_constant<Surrogate, Surrogate::gaussian>{}); break;
    case Surrogate::sigmoid: f(std::integral_constant<Surrogate, Surrogate::sigmoid>{}); break;
    case Surrogate::atan: f(std::integral_constant<Surrogate, Surrogate::atan>{}); break;
    case Surrogate::fast_sigmoid: f(std::integral_constant<Surrogate, Surrogate::fast_sigmoid>{}); break;
    case Surrogate::triangle: f(std::integral_constant<Surrogate, Surrogate::triangle>{}); break;
  }
}

// Forward over neurons [n_begin, n_end), compiled for `isa` (capped at what the processor runs); h is stored
// when a backward will follow (a.h non-null).
template <typename scalar_t, typename acc_t>
void lif_forward_range(const LifForwardArgs<scalar_t, acc_t>& a, int64_t n_begin, int64_t n_end,
                       CpuIsa isa = best_supported_isa()) {
  dispatch_reset(a.config.reset, [&](auto reset) {
    dispatch_bool(a.config.trace, [&](auto trace) {
      dispatch_bool(a.h != nullptr, [&](auto store_h) {
        run_with_isa(isa, [&](auto isa_built) SNN_ALWAYS_INLINE {
          lif_forward_block_range<decltype(isa_built)::value, scalar_t, acc_t, decltype(reset)::value,
                                  decltype(trace)::value, decltype(store_h)::value>(a, n_begin, n_end);
        });
      });
    });
  });
}

// Backward over neurons [n_begin, n_end) for one reset mode, compiled for `isa`. lif_backward_range below picks
// the mode; this level exists so that each mode's kernels can be compiled in a translation unit of their own.
template <typename scalar_t, typename acc_t, ResetMode kReset>
void lif_backward_range_for_reset(const LifBackwardArgs<scalar_t, acc_t>& a, int64_t n_begin, int64_t n_end,
                                  CpuIsa isa) {
  dispatch_bool(a.config.trace, [&](auto trace) {
    dispatch_surrogate(a.config.surrogate, [&](auto surrogate) {
      dispatch_bool(a.grad_alpha != nullptr, [&](auto param_grads) {
        run_with_isa(isa, [&](auto isa_built) SNN_ALWAYS_INLINE {
          lif_backward_block_range<decltype(isa_built)::value, scalar_t, acc_t, kReset, decltype(trace)::value,
                                   decltype(surrogate)::value, decltype(param_grads)::value>(a, n_begin, n_end);
        });
      });
    });
  });
}

// Backward over neurons [n_begin, n_end), compiled for `isa`; alpha and theta gradients are written when
// grad_alpha is non-null. With a.h null, h is recomputed from x, v0 and r0.
template <typename scalar_t, typename acc_t>
void lif_backward_range(const LifBackwardArgs<scalar_t, acc_t>& a, int64_t n_begin, int64_t n_end,
                        CpuIsa isa = best_supported_isa()) {
  dispatch_reset(a.config.reset, [&](auto reset) {
    lif_backward_range_for_reset<scalar_t, acc_t, decltype(reset)::value>(a, n_begin, n_end, isa);
  });
}

// The kernels for the storage / compute pairs the torch ops and the tests use are compiled once, in
// cpu/instances/ (rather than in every file that calls them): instantiated for every configuration and instruction
// set, they are most of the build time. A build compiles its translation units in parallel, each on one core, so
// none should dwarf the others: per storage type, the LIF forward, the IIR kernels, and the LIF backward once per
// reset mode (the backward's six surrogates make it the bulk: as one unit, float16's took 250 s to compile on the
// build machine, split by reset mode 80 s each). Other storage / compute pairs instantiate where they are called.
#define SNN_LIF_CPU_FORWARD_KERNELS(prefix, scalar_t, acc_t)                                                     \
  prefix void lif_forward_range<scalar_t, acc_t>(const LifForwardArgs<scalar_t, acc_t>&, int64_t, int64_t,      \
                                                 CpuIsa);
#define SNN_LIF_CPU_BACKWARD_KERNELS(prefix, scalar_t, acc_t, reset)                                             \
  prefix void lif_backward_range_for_reset<scalar_t, acc_t, ResetMode::reset>(                                  \
      const LifBackwardArgs<scalar_t, acc_t>&, int64_t, int64_t, CpuIsa);
#define SNN_LIF_CPU_EXTERN_KERNELS(scalar_t, acc_t)                                                              \
  SNN_LIF_CPU_FORWARD_KERNELS(extern template, scalar_t, acc_t)                                                  \
  SNN_LIF_CPU_BACKWARD_KERNELS(extern template, scalar_t, acc_t, hard)                                           \
  SNN_LIF_CPU_BACKWARD_KERNELS(extern template, scalar_t, acc_t, soft)                                           \
  SNN_LIF_CPU_BACKWARD_KERNELS(extern template, scalar_t, acc_t, none)
SNN_LIF_CPU_EXTERN_KERNELS(float, LifCompute<float>)
SNN_LIF_CPU_EXTERN_KERNELS(double, LifCompute<double>)
SNN_LIF_CPU_EXTERN_KERNELS(bfloat16, LifCompute<bfloat16>)
SNN_LIF_CPU_EXTERN_KERNELS(float16, LifCompute<float16>)

}  // namespace cpu
}  // namespace snn
