// float32 storage: the IIR filter kernels (cpu/lif_cpu.h says why the kernels are split into these units).
#include "../iir_cpu.h"
namespace snn::cpu {
SNN_IIR_CPU_KERNELS(template, float, IirCompute<float>)
}  // namespace snn::cpu
