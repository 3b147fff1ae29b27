// Shared by the CPU kernels: how neurons are blocked, prefetching, streaming stores, and the runtime -> compile-time
// flag dispatch.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../core/platform.h"
#include "isa.h"

#if SNN_CPU_X86
#include <emmintrin.h>
#endif

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

// Streaming (non-temporal) stores for the [T, N] outputs. A plain store to a line not in cache first reads the
// line (read for ownership), so an output written with plain stores costs a read and a write of memory; a
// streaming store writes the line without reading it, and does not evict the inputs from cache. Worth it only
// when the output is too large to still be in cache when it is next read: float32 and float64 outputs of at least
// stream_threshold_bytes() bytes (set from Python: snn_cuda.memory.set_cpu_streaming_threshold) are streamed.
// The default is the size of a large L3 cache. On the build machine (2-core EPYC VM, 32 MiB L3) a 512 MiB copy
// runs at 32.5 GB/s with plain stores and 44.5 GB/s streaming. `cpu_kernels <op> <batch> 64 2 20 best float32
// both` (benchmarks/cpu_kernels.cpp) times the kernels both ways in the same rounds; fwd+bwd, plain -> streamed:
// LIF [64, 64, 4096] (67 MB a tensor) 13.7 -> 12.3 ms, [64, 16, 4096] (17 MB) 3.10 -> 3.02 ms, [64, 4, 4096]
// (4 MB, in cache) 1.04 -> 1.18 ms; IIR 22.9 -> 21.7, 5.72 -> 5.83 and 2.46 -> 2.22 ms.
constexpr int64_t kDefaultStreamThresholdBytes = int64_t(32) << 20;

inline std::atomic<int64_t>& stream_threshold_bytes() {
  static std::atomic<int64_t> bytes{kDefaultStreamThresholdBytes};
  return bytes;
}

// A threshold no output reaches: plain stores only.
constexpr int64_t kNeverStream = INT64_MAX;

// Sets the threshold while it lives (the C++ tests run the kernels both ways).
class ScopedStreamThreshold {
 public:
  explicit ScopedStreamThreshold(int64_t bytes) : before_(stream_threshold_bytes().exchange(bytes)) {}
  ~ScopedStreamThreshold() { stream_threshold_bytes().store(before_); }
  ScopedStreamThreshold(const ScopedStreamThreshold&) = delete;
  ScopedStreamThreshold& operator=(const ScopedStreamThreshold&) = delete;

 private:
  int64_t before_;
};

// Whether a kernel streams an output of `elements` elements of storage type T. Never the 16-bit types: their
// kernels are bound by the conversions to and from float, not by memory, so the copy through the chunk buffer
// only adds time (LIF bfloat16 [64, 64, 4096], 32 MiB a tensor: fwd+bwd 14.5 ms plain, 15.8 ms streamed).
template <typename T>
inline bool stream_output(int64_t elements) {
  const int64_t bytes = elements * static_cast<int64_t>(sizeof(T));
  return sizeof(T) >= 4 && bytes >= stream_threshold_bytes().load(std::memory_order_relaxed);
}

// Copies count elements computed into the cache-resident buffer src to dst with streaming stores (16 bytes at a
// time, SSE2, so every instruction-set build of a kernel shares it), or plain ones where dst is not 16-byte
// aligned, for the bytes after the last whole 16, and off x86.
template <typename T>
SNN_ALWAYS_INLINE inline void stream_store(T* dst, const T* src, int64_t count) {
  const int64_t bytes = count * static_cast<int64_t>(sizeof(T));
  int64_t done = 0;
#if SNN_CPU_X86
  if (reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    char* d = reinterpret_cast<char*>(dst);
    const char* s = reinterpret_cast<const char*>(src);
    for (; done + 16 <= bytes; done += 16) {
      const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + done));
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + done), chunk);
    }
  }
#endif
  std::memcpy(reinterpret_cast<char*>(dst) + done, reinterpret_cast<const char*>(src) + done,
              static_cast<size_t>(bytes - done));
}

// The chunk [i0, i0 + count) of an output row as an element loop writes it (at data()[i - i0]): in place, or,
// when the row is streamed, into a buffer in L1 that finish() streams out. A null row (an output the kernel does
// not write) gives a null data().
template <typename T>
class OutputChunk {
 public:
  SNN_ALWAYS_INLINE OutputChunk(T* row, int64_t i0, bool stream)
      : out_(row == nullptr ? nullptr : row + i0), stream_(stream && row != nullptr) {}
  SNN_ALWAYS_INLINE T* data() { return stream_ ? buffer_ : out_; }
  SNN_ALWAYS_INLINE void finish(int64_t count) {
    if (stream_) stream_store(out_, buffer_, count);
  }

 private:
  alignas(64) T buffer_[kPrefetchChunk];
  T* out_;
  bool stream_;
};

// Orders a thread's streaming stores before whatever follows (they are weakly ordered): called at the end of
// every kernel range that streamed, before the thread that ran it signals that it is done.
inline void stream_fence() {
#if SNN_CPU_X86
  _mm_sfence();
#endif
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
