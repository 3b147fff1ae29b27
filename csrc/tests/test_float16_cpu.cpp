// C++ tests of the CPU kernels' float16 conversions, over every half and every float: the integer conversions of
// core/platform.h against the processor's F16C instructions (the chunk conversions of cpu/common.h, which the
// AVX2 and AVX-512 kernels use), and round_to_storage<float16> against the two conversions it stands for.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "cpu/common.h"
#include "cpu/isa.h"

using snn::float16;

namespace {

SNN_ALWAYS_INLINE inline float float_of(uint32_t word) {
  float value;
  std::memcpy(&value, &word, sizeof(value));
  return value;
}

SNN_ALWAYS_INLINE inline uint32_t word_of(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof(word));
  return word;
}

[[maybe_unused]] SNN_ALWAYS_INLINE inline bool is_nan_half(uint16_t bits) { return (bits & 0x7fffu) > 0x7c00u; }

// How many float bit patterns a check flags, and the first it flags.
struct Mismatches {
  uint64_t count = 0, first = 0;
};

// Runs over every float bit pattern, kChunk at a time: prepare(values) once a chunk, then differs(values, i) for
// each. Counted in a loop without branches (it vectorises); the first mismatch is looked for only when there is one.
constexpr int64_t kChunk = 1 << 16;
template <typename Prepare, typename Differs>
SNN_ALWAYS_INLINE inline Mismatches check_every_float(Prepare&& prepare, Differs&& differs) {
  Mismatches found;
  std::vector<float> values(kChunk);
  for (uint64_t first = 0; first < (uint64_t(1) << 32); first += kChunk) {
    for (int64_t i = 0; i < kChunk; ++i) values[i] = float_of(static_cast<uint32_t>(first + i));
    prepare(values.data());
    uint32_t count = 0;
    for (int64_t i = 0; i < kChunk; ++i) count += differs(values.data(), i);
    for (int64_t i = 0; count > 0 && found.count == 0 && i < kChunk; ++i) {
      if (differs(values.data(), i)) found.first = first + i;
    }
    found.count += count;
  }
  return found;
}

void report(const Mismatches& found, const char* what) {
  if (found.count > 0) {
    std::printf("%s: %llu floats differ, first 0x%08llx\n", what, static_cast<unsigned long long>(found.count),
                static_cast<unsigned long long>(found.first));
  }
  CHECK(found.count == 0);
}

// round_to_storage<float16>(v) is to_acc(from_acc(v)) bit for bit, NaN included. Run in the widest build (the
// kernels' builds agree bit for bit, test_lif_cpu), where it takes a fraction of the baseline's time.
void test_round_to_storage_matches_conversions() {
  Mismatches found;
  snn::cpu::run_with_isa(snn::cpu::best_supported_isa(), [&](auto) SNN_ALWAYS_INLINE {
    found = check_every_float(
        [](const float*) SNN_ALWAYS_INLINE {},
        [](const float* values, int64_t i) SNN_ALWAYS_INLINE {
          return word_of(snn::round_to_storage<float16>(values[i])) !=
                 word_of(snn::to_acc<float>(snn::from_acc<float16>(values[i])));
        });
  });
  report(found, "round_to_storage<float16> against the conversions");
}

// The integer conversions against F16C. Results are compared bit for bit, except that a NaN only has to stay a
// NaN of the same sign: F16C keeps what it can of a NaN's payload, the integer conversions (as c10::Half) give
// the one quiet NaN.
void test_conversions_match_f16c() {
  bool ran = false;
  // widen_halves / narrow_floats exist only in builds that convert chunks with F16C (GCC on x86; common.h): a
  // discarded `if constexpr` branch still needs the names it calls, so other builds (Clang, aarch64) skip it here.
#if SNN_CPU_F16C_CHUNKS
  snn::cpu::run_with_isa(snn::cpu::CpuIsa::avx2, [&](auto isa) SNN_ALWAYS_INLINE {
    if constexpr (snn::cpu::kChunkConverted<decltype(isa)::value, float16>) {
      ran = true;
      std::vector<float16> halves(1 << 16);
      std::vector<float> widened(1 << 16);
      for (uint32_t h = 0; h < (1u << 16); ++h) halves[h] = static_cast<float16>(h);
      snn::cpu::widen_halves(halves.data(), widened.data(), 1 << 16);
      int64_t widen_mismatches = 0;
      for (uint32_t h = 0; h < (1u << 16); ++h) {
        const uint32_t ours = word_of(snn::to_acc<float>(halves[h]));
        const uint32_t f16c = word_of(widened[h]);
        const bool same = is_nan_half(static_cast<uint16_t>(h))
                              ? (ours & 0x7fffffffu) > 0x7f800000u && (f16c & 0x7fffffffu) > 0x7f800000u &&
                                    (ours >> 31) == (f16c >> 31)
                              : ours == f16c;
        widen_mismatches += !same;
      }
      CHECK(widen_mismatches == 0);

      std::vector<float16> narrowed(kChunk);
      const Mismatches found = check_every_float(
          [&](const float* values) SNN_ALWAYS_INLINE { snn::cpu::narrow_floats(values, narrowed.data(), kChunk); },
          [&](const float* values, int64_t i) SNN_ALWAYS_INLINE {
            const uint16_t ours = static_cast<uint16_t>(snn::from_acc<float16>(values[i]));
            const uint16_t f16c = static_cast<uint16_t>(narrowed[i]);
            return is_nan_half(ours) ? !(is_nan_half(f16c) && (ours >> 15) == (f16c >> 15)) : ours != f16c;
          });
      report(found, "from_acc<float16> against F16C");
    }
  });
#endif
  // Not a silent pass: the log says when there was no F16C to compare with.
  if (!ran) std::printf("test_float16_cpu: no F16C on this processor or build; F16C comparison not run\n");
}

}  // namespace

int main() {
  test_round_to_storage_matches_conversions();
  test_conversions_match_f16c();
  return snn_test::finish("test_float16_cpu");
}
