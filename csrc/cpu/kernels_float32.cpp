// The CPU kernels for float32 storage, compiled here once (lif_cpu.h says why).
#include "iir_cpu.h"
#include "lif_cpu.h"

namespace snn {
namespace cpu {

SNN_LIF_CPU_KERNELS(template, float, LifCompute<float>)
SNN_IIR_CPU_KERNELS(template, float, IirCompute<float>)

}  // namespace cpu
}  // namespace snn
