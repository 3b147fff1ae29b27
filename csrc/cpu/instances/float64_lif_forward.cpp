// float64 storage: the LIF forward (cpu/lif_cpu.h says why the kernels are split into these units).
#include "../lif_cpu.h"
namespace snn::cpu {
SNN_LIF_CPU_FORWARD_KERNELS(template, double, LifCompute<double>)
}  // namespace snn::cpu
