// The ways a CPU kernel test runs each kernel: every instruction-set build, and plain or streaming stores for the
// outputs (cpu/common.h). Shared by test_lif_cpu and test_iir_cpu.
#pragma once

#include <cstdint>

#include "cpu/common.h"
#include "cpu/isa.h"

namespace snn_test {

// Each is capped at what this processor runs; best_supported_isa() is printed so the log says what ran.
inline constexpr snn::cpu::CpuIsa kIsas[] = {snn::cpu::CpuIsa::baseline, snn::cpu::CpuIsa::avx2,
                                             snn::cpu::CpuIsa::avx512};

// Runs body(streamed) with every output written by plain stores (streamed = false), then with every output
// streamed (true), whatever its size.
template <typename Body>
void for_each_store_mode(Body&& body) {
  for (bool streamed : {false, true}) {
    const snn::cpu::ScopedStreamThreshold threshold(streamed ? 0 : snn::cpu::kNeverStream);
    body(streamed);
  }
}

}  // namespace snn_test
