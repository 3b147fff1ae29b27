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
  // Without the saved h the launcher refuses (recomputing h is the CPU kernels' alone) rather than launching.
  snn::LifBackwardArgs<float, float> no_h{};
  no_h.T = 1;
  no_h.N = 1;
  no_h.P = 1;
  CHECK(snn::cuda::launch_lif_backward(no_h, nullptr) == cudaErrorInvalidValue);
  return snn_test::finish("test_lif_gpu");
}
