// The CUDA IIR filter kernels against the CPU kernels (cases: iir_kernel_cases.h). Exits with 77 (reported by
// ctest as skipped) when no GPU is present; test_cuda_threads_cpu runs the same cases through the kernels' thread
// bodies on the CPU.
#include "check.h"
#include "cuda_executor.h"
#include "iir_kernel_cases.h"

int main() {
  if (const int skipped = snn_test::skip_without_gpu("test_iir_gpu")) return skipped;
  snn_test::CudaExecutor gpu;
  snn_test::iir_kernel_cases(gpu);
  return snn_test::finish("test_iir_gpu");
}
