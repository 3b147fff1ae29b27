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
#include <immintrin.h>
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

// The per-block state and parameter arrays of a kernel: kCount arrays of kBlock values in one object, each
// starting three cache lines further along the cache's sets than the one before. Declared as separate arrays they
// would start 16 or 32 KiB apart, a multiple of the L1 cache's way size (64 sets of 64-byte lines: 4 KiB), so
// element i of every array would fall in the same set; with the rows of the [T, N] tensors (whose stride is
// often a multiple of 4 KiB too) the element loop then touches more lines of one set than it has ways (8 on the
// build machines), and its loads evict each other. `cpu_kernels iir` on a 2-core EPYC (Zen 3), staggered against
// separate arrays, medians of alternating runs: the IIR backward 0.45 -> 0.36 ms at [64, 1, 4096] on one thread
// (in cache), 24 -> 13 ms at [64, 64, 4096] on two; the LIF kernels unchanged (within noise).
template <typename T, int kCount>
class BlockArrays {
 public:
  SNN_ALWAYS_INLINE T* operator[](int k) { return data_ + k * kStride; }

 private:
  static constexpr int64_t kStaggerBytes = 3 * 64;
  static constexpr int64_t kStride = kBlock + kStaggerBytes / static_cast<int64_t>(sizeof(T));
  alignas(64) T data_[kCount * kStride];
};

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
// kernels are bound by compute (the conversions, and the float steps), not by memory, so the copy through the
// chunk buffer only adds time (LIF bfloat16 [64, 64, 4096], 32 MiB a tensor: fwd+bwd 14.5 ms plain, 15.8 ms
// streamed).
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

// float16 rows in the AVX2 and AVX-512 builds are converted to and from float a chunk at a time with F16C, 8
// values an instruction, outside the element loops: GCC does not vectorise the LIF backward loop with the integer
// conversions of core/platform.h inlined in it (it reports control flow in the loop), and they cost some twenty
// instructions a value where they do vectorise. Every other storage type is converted per element in the loops.
#if SNN_CPU_X86 && !defined(__clang__)
#define SNN_CPU_F16C_CHUNKS 1
#else
#define SNN_CPU_F16C_CHUNKS 0
#endif
template <CpuIsa kIsa, typename T>
constexpr bool kChunkConverted = SNN_CPU_F16C_CHUNKS && kIsa != CpuIsa::baseline && std::is_same<T, float16>::value;

// The type an element loop reads and writes a chunk of a row of storage type T as.
template <CpuIsa kIsa, typename T>
using ChunkElement = std::conditional_t<kChunkConverted<kIsa, T>, float, T>;

#if SNN_CPU_F16C_CHUNKS
// float16 <-> float for count values, 8 at a time with F16C (rounding to nearest even, as from_acc), the rest one
// at a time with the conversions of core/platform.h. Only the F16C builds (kChunkConverted) call these. They use
// the compiler's builtins rather than the <immintrin.h> intrinsics: those are functions with a target attribute,
// which GCC refuses to inline into the (target-less) chunk classes, even though these end up inlined into a
// kernel compiled with F16C. GCC checks builtins only where they are finally compiled; Clang checks them in the
// function they are written in, so Clang builds convert per element. The vector types never
// cross a call, so the ABI note GCC gives about them (-Wpsabi) does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef short snn_v8hi __attribute__((vector_size(16)));
typedef float snn_v8sf __attribute__((vector_size(32)));

SNN_ALWAYS_INLINE inline void widen_halves(const float16* SNN_RESTRICT src, float* SNN_RESTRICT dst, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    snn_v8hi halves;
    std::memcpy(&halves, src + i, sizeof(halves));
    const snn_v8sf floats = __builtin_ia32_vcvtph2ps256(halves);
    std::memcpy(dst + i, &floats, sizeof(floats));
  }
  for (; i < count; ++i) dst[i] = to_acc<float>(src[i]);
}
SNN_ALWAYS_INLINE inline void narrow_floats(const float* SNN_RESTRICT src, float16* SNN_RESTRICT dst, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    snn_v8sf floats;
    std::memcpy(&floats, src + i, sizeof(floats));
    const snn_v8hi halves = __builtin_ia32_vcvtps2ph256(floats, _MM_FROUND_TO_NEAREST_INT);
    std::memcpy(dst + i, &halves, sizeof(halves));
  }
  for (; i < count; ++i) dst[i] = from_acc<float16>(src[i]);
}
#pragma GCC diagnostic pop
#endif

// The chunk [i0, i0 + count) of an input row as an element loop reads it (at data()[i - i0]): in place, or
// converted into a buffer in L1 (kChunkConverted). A null row gives a null data().
template <CpuIsa kIsa, typename T>
class InputChunk {
 public:
  using element = ChunkElement<kIsa, T>;
  SNN_ALWAYS_INLINE InputChunk(const T* row, int64_t i0, int64_t count) {
    if constexpr (kChunkConverted<kIsa, T>) {
      data_ = row == nullptr ? nullptr : buffer_;
      if (row != nullptr) widen_halves(row + i0, buffer_, count);
    } else {
      data_ = row == nullptr ? nullptr : row + i0;
    }
  }
  SNN_ALWAYS_INLINE const element* data() const { return data_; }

 private:
  alignas(64) element buffer_[kChunkConverted<kIsa, T> ? kPrefetchChunk : 1];
  const element* data_;
};

// The chunk [i0, i0 + count) of an output row as an element loop writes it (at data()[i - i0]): in place, or into
// a buffer in L1 that finish() streams out when the row is streamed, or converts out (kChunkConverted). A null row
// (an output the kernel does not write) gives a null data().
template <CpuIsa kIsa, typename T>
class OutputChunk {
 public:
  using element = ChunkElement<kIsa, T>;
  SNN_ALWAYS_INLINE OutputChunk(T* row, int64_t i0, bool stream)
      : out_(row == nullptr ? nullptr : row + i0), stream_(stream && row != nullptr) {}
  SNN_ALWAYS_INLINE element* data() {
    if constexpr (kChunkConverted<kIsa, T>) {
      return out_ == nullptr ? nullptr : buffer_;
    } else {
      return stream_ ? buffer_ : out_;
    }
  }
  SNN_ALWAYS_INLINE void finish(int64_t count) {
    if constexpr (kChunkConverted<kIsa, T>) {
      if (out_ != nullptr) narrow_floats(buffer_, out_, count);
    } else {
      if (stream_) stream_store(out_, buffer_, count);
    }
  }

 private:
  alignas(64) element buffer_[kPrefetchChunk];
  T* out_;
  bool stream_;  // never set for 16-bit types (stream_output)
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
