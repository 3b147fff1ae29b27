// The CUDA LIF kernels against the CPU kernels (cases: lif_kernel_cases.h). Exits with 77 (reported by ctest as
// skipped) when no GPU is present; test_cuda_threads_cpu runs the same cases through the kernels' thread bodies on
// the CPU.
#include "check.h"
#include "cuda_executor.h"
#include "lif_kernel_cases.h"

int main() {
  if (const int skipped = snn_test::skip_without_gpu("test_lif_gpu")) return skipped;
  snn_test::CudaExecutor gpu;
  snn_test::lif_kernel_cases(gpu);
  return snn_test::finish("test_lif_gpu");
}
