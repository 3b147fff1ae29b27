// The CPU kernels for float64 storage, compiled here once (lif_cpu.h says why).
#include "iir_cpu.h"
#include "lif_cpu.h"

namespace snn {
namespace cpu {

SNN_LIF_CPU_KERNELS(template, double, LifCompute<double>)
SNN_IIR_CPU_KERNELS(template, double, IirCompute<double>)

}  // namespace cpu
}  // namespace snn
