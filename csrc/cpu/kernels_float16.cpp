// The CPU kernels for float16 storage, compiled here once (lif_cpu.h says why).
#include "iir_cpu.h"
#include "lif_cpu.h"

namespace snn {
namespace cpu {

SNN_LIF_CPU_KERNELS(template, float16, LifCompute<float16>)
SNN_IIR_CPU_KERNELS(template, float16, IirCompute<float16>)

}  // namespace cpu
}  // namespace snn
