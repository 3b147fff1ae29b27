// float64 storage: the LIF backward, reset "hard" (cpu/lif_cpu.h says why the kernels are split into these units).
#include "../lif_cpu.h"
namespace snn::cpu {
SNN_LIF_CPU_BACKWARD_KERNELS(template, double, LifCompute<double>, hard)
}  // namespace snn::cpu
