// bfloat16 storage: the LIF backward, reset "soft" (cpu/lif_cpu.h says why the kernels are split into these units).
#include "../lif_cpu.h"
namespace snn::cpu {
SNN_LIF_CPU_BACKWARD_KERNELS(template, bfloat16, LifCompute<bfloat16>, soft)
}  // namespace snn::cpu
