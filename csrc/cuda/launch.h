// Launch geometry shared by the per-neuron kernels (one thread per neuron, time loop inside).
#pragma once

#include <cstdint>

namespace snn {
namespace cuda {

constexpr int kThreadsPerBlock = 256;

inline unsigned int blocks_for(int64_t neurons) {
  return static_cast<unsigned int>((neurons + kThreadsPerBlock - 1) / kThreadsPerBlock);
}

}  // namespace cuda
}  // namespace snn
