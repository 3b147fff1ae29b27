// The CPU kernels for bfloat16 storage, compiled here once (lif_cpu.h says why).
#include "iir_cpu.h"
#include "lif_cpu.h"

namespace snn {
namespace cpu {

SNN_LIF_CPU_KERNELS(template, bfloat16, LifCompute<bfloat16>)
SNN_IIR_CPU_KERNELS(template, bfloat16, IirCompute<bfloat16>)

}  // namespace cpu
}  // namespace snn
