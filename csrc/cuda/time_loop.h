// The time loop of one CUDA thread, with the loads of several steps issued together.
//
// A thread's steps depend on each other through its state, so the memory-level parallelism of a kernel is what
// each thread has in flight times the threads resident on a multiprocessor. Written as a plain loop (load x[t],
// step, store), the compiler keeps one load in flight per thread: it cannot move the next step's load above this
// step's stores, which it must assume may alias (the SASS of the sm_90 build showed load, compute, store, load, ...).
// Loading the inputs of kBatch steps first, into registers, and only then running those steps puts kBatch loads in
// flight per thread, which a memory-bound kernel needs to approach the device's bandwidth, all the more with
// 16-bit storage (fewer bytes per load). Free of CUDA, like the thread bodies that use it.
#pragma once

#include <cstdint>

#include "../core/platform.h"

namespace snn {
namespace cuda {

// Steps whose loads are issued together. An H200 moving about 4.3 TB/s with a memory latency of roughly 700 ns
// needs some 3 MB in flight, about 23 KB per multiprocessor. With one load per thread that takes 2048 threads of
// 4-byte loads per multiprocessor, and 16-bit storage can never get there; with 8 it takes a few hundred, which
// leaves room for the registers the batch costs (sm_90 build: LIF forward 68-72 registers, up from 32; no spills).
// Not yet measured on a GPU.
constexpr int kBatch = 8;

// Runs step(t, in) for t = 0 .. T-1 (backward = false) or T-1 .. 0 (backward = true), where in = load(t) was read
// with the loads of up to kBatch - 1 other steps before any of those steps ran.
template <typename Inputs, typename Load, typename Step>
SNN_HD void batched_time_loop(int64_t T, bool backward, Load load, Step step) {
  for (int64_t first = 0; first < T; first += kBatch) {
    Inputs in[kBatch];
    SNN_UNROLL
    for (int k = 0; k < kBatch; ++k) {
      const int64_t i = first + k;
      if (i < T) in[k] = load(backward ? T - 1 - i : i);
    }
    SNN_UNROLL
    for (int k = 0; k < kBatch; ++k) {
      const int64_t i = first + k;
      if (i < T) step(backward ? T - 1 - i : i, in[k]);
    }
  }
}

}  // namespace cuda
}  // namespace snn
