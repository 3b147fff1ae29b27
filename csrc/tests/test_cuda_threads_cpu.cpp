// The CUDA kernels' per-thread bodies (cuda/lif_thread.h, cuda/iir_thread.h) run on the CPU, one thread index at a
// time in a shuffled order, against the CPU kernels: the same cases as test_lif_gpu and test_iir_gpu, so the GPU
// code's indexing, optional arguments and arithmetic are checked on machines without a GPU.
#include "check.h"
#include "emulated_executor.h"
#include "iir_kernel_cases.h"
#include "lif_kernel_cases.h"

int main() {
  snn_test::EmulatedCudaExecutor emulated;
  snn_test::lif_kernel_cases(emulated);
  snn_test::iir_kernel_cases(emulated);
  return snn_test::finish("test_cuda_threads_cpu");
}
