// Shared by the CPU kernels: how neurons are blocked, and the runtime -> compile-time flag dispatch.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "isa.h"

namespace snn {
namespace cpu {

// Neurons per block. Each time step touches one kBlock-long run of every [T, N] tensor, so longer runs stream
// better (hardware prefetchers restart at every jump to the next row); the per-block state and parameter arrays
// (seven of floats in the LIF backward, 112 KiB; eight of doubles in the IIR backward, 256 KiB) stay in L2.
// Measured single-threaded on the build machines at [64, 64 * 4096] float32: LIF forward 17.8 -> 16.5 ms,
// backward 19.5 -> 15.5 ms going from 256 to 4096.
constexpr int64_t kBlock = 4096;
// Ranges handed to threads are multiples of this many neurons (a cache line of doubles, any vector width).
constexpr int64_t kAlign = 64;

// Software prefetch for the row sweeps. A block's time loop reads one run of len elements of each [T, N] tensor
// per step and then jumps a row ahead (or back). The compute per element fills the out-of-order window long
// before enough cache-line misses are in flight to stream one core's share of the memory bandwidth, and the
// hardware prefetchers restart at every jump. So the element loops run in chunks of kPrefetchChunk elements, and
// each chunk first prefetches the lines kPrefetchDistance elements ahead in every stream, running on into the
// start of the run the next step reads. benchmarks/cpu_kernels.cpp measures the effect (the README's performance
// table: the IIR kernels went from 56 to 77 % of a same-size copy on the build machine).
constexpr int64_t kPrefetchChunk = 64;
constexpr int64_t kPrefetchDistance = 256;

// Prefetches the lines of elements [i, i + kPrefetchChunk) shifted kPrefetchDistance ahead in a stream whose
// current run of len elements is at `row` and whose next run is at `next` (null: the sweep ends with this run).
// kWrite: the lines will be written. Prefetches never fault, but none is issued outside the two runs.
template <bool kWrite, typename T>
SNN_ALWAYS_INLINE inline void prefetch_ahead(const T* row, const T* next, int64_t i, int64_t len) {
  int64_t k = i + kPrefetchDistance;
  if (k >= len) {
    k -= len;
    row = next;
    if (row == nullptr || k >= len) return;
  }
  const char* line = reinterpret_cast<const char*>(row + k);
  constexpr int64_t kBytes = kPrefetchChunk * static_cast<int64_t>(sizeof(T));
  for (int64_t offset = 0; offset < kBytes; offset += 64) __builtin_prefetch(line + offset, kWrite ? 1 : 0, 3);
}

// Runs body(begin, end) over [0, len) in chunks of kPrefetchChunk elements, prefetch(begin) before each.
template <typename Prefetch, typename Body>
SNN_ALWAYS_INLINE inline void for_prefetched_chunks(int64_t len, Prefetch&& prefetch, Body&& body) {
  for (int64_t begin = 0; begin < len; begin += kPrefetchChunk) {
    prefetch(begin);
    body(begin, begin + kPrefetchChunk < len ? begin + kPrefetchChunk : len);
  }
}

// The values of elements [begin, begin + len) of a parameter that repeats with period P over the elements
// (element n's value at values[n % P]; core/lif_params.h) into the block array out, a contiguous run at a time.
template <typename T>
SNN_ALWAYS_INLINE inline void load_periodic(const T* SNN_RESTRICT values, int64_t P, int64_t begin, int64_t len,
                                            T* SNN_RESTRICT out) {
  int64_t k = begin % P;
  for (int64_t i = 0; i < len;) {
    const int64_t run = len - i < P - k ? len - i : P - k;
    for (int64_t j = 0; j < run; ++j) out[i + j] = values[k + j];
    i += run;
    k = 0;
  }
}

// Turns one runtime bool into a std::integral_constant and passes it on, so a kernel templated on the flag is
// instantiated for both values and its inner loop has no branch on it.
template <typename F>
void dispatch_bool(bool value, F&& f) {
  if (value) {
    f(std::integral_constant<bool, true>{});
  } else {
    f(std::integral_constant<bool, false>{});
  }
}

}  // namespace cpu
}  // namespace snn
