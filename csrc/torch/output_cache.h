// New output tensors of the ops, and on the CPU a cache of the freed ones, so that training stops page-faulting.
//
// Why: every op returns fresh [T, N] tensors (spikes, p, grad_x). On the CPU, PyTorch takes them from glibc, which
// hands blocks above its mmap threshold (at most 32 MB by default) back to the system when they are freed; the next
// one then faults in again, page by page, zero-filled by the kernel. That costs more than the kernel that fills the
// tensor: on the 2-core build machines the LIF op at [64, 16, 4096] spends about as long in page faults as in its
// kernels. A training loop allocates the same sizes at every step, so the CPU outputs come from blocks freed
// earlier when one of exactly the same byte size is waiting, as PyTorch's caching allocator does on the GPU. The
// cache holds at most a limit (1 GiB unless set: SNN_CUDA_CPU_CACHE_MB, snn_cuda.set_cpu_cache_limit), drops the
// oldest blocks beyond it, and reports to the PyTorch profiler like PyTorch's own CPU allocator: a block counts as
// allocated while a tensor uses it, not while it waits in the cache.
#pragma once

#include <cstddef>
#include <cstdint>

#include <ATen/ATen.h>

namespace snn {
namespace torch_ops {

// An uninitialised contiguous tensor of `sizes`, with the dtype and device of `options`. CPU tensors of at least
// kMinCachedBytes come from the cache (while its limit is above zero); everything else from at::empty.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// Smaller blocks are reused by malloc without page faults already.
constexpr int64_t kMinCachedBytes = int64_t(1) << 20;
constexpr int64_t kDefaultCacheLimitBytes = int64_t(1) << 30;

struct OutputCacheStats {
  int64_t cached_bytes = 0;   // freed blocks waiting for reuse
  int64_t cached_blocks = 0;
  int64_t in_use_bytes = 0;   // blocks of the cache's allocator held by live tensors
  int64_t limit_bytes = 0;
  int64_t hits = 0;           // outputs served from a freed block
  int64_t misses = 0;         // outputs that took a new block
};

OutputCacheStats output_cache_stats();
// 0 turns the cache off (freed blocks go back to the system); blocks beyond a lowered limit are freed at once.
void set_output_cache_limit(size_t bytes);
// Frees every waiting block; tensors in use are not affected.
void empty_output_cache();

}  // namespace torch_ops
}  // namespace snn
