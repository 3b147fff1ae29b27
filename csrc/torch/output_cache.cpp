#include "output_cache.h"

#include <list>
#include <mutex>
#include <vector>

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/accumulate.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define SNN_HAS_FORK 1
#endif

namespace snn {
namespace torch_ops {
namespace {

struct Block {
  void* data;
  size_t bytes;
};

class OutputCache;
OutputCache& instance();

// A c10::Allocator, so the tensors' storages know where their memory came from (a resize goes through it too).
// Memory comes from c10::alloc_cpu, as PyTorch's own CPU allocator takes it (alignment, huge pages where
// THP_MEM_ALLOC_ENABLE=1); each DataPtr's context is its Block, which the deleter hands back to the cache.
class OutputCache final : public c10::Allocator {
 public:
#if SNN_HAS_FORK
  OutputCache() { register_fork_handlers(); }  // they run only at a fork, once instance() is set
#endif

  c10::DataPtr allocate(size_t bytes) override {
    void* data = take(bytes);
    if (data == nullptr) {
      try {
        data = c10::alloc_cpu(bytes);
      } catch (const c10::Error&) {  // out of memory: the waiting blocks go first
        clear();
        data = c10::alloc_cpu(bytes);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_use_bytes_ += bytes;
    }
    report(data, static_cast<int64_t>(bytes));
    return {data, new Block{data, bytes}, &OutputCache::deleter, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, size_t count) const override { default_copy_data(dest, src, count); }

  bool enabled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_ > 0;
  }

  OutputCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    OutputCacheStats s;
    s.cached_bytes = static_cast<int64_t>(cached_bytes_);
    s.cached_blocks = static_cast<int64_t>(free_.size());
    s.in_use_bytes = static_cast<int64_t>(in_use_bytes_);
    s.limit_bytes = static_cast<int64_t>(limit_);
    s.hits = hits_;
    s.misses = misses_;
    return s;
  }

  void set_limit(size_t bytes) {
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
      evict_until_fits(0, evicted);
    }
    free_blocks(evicted);
  }

  void clear() {
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      evicted.assign(free_.begin(), free_.end());
      free_.clear();
      cached_bytes_ = 0;
    }
    free_blocks(evicted);
  }

#if SNN_HAS_FORK
  // fork() copies the cache into the child (its waiting blocks become the child's own copies of the memory), but
  // if another thread held the lock at that moment the child would find it locked for ever, and the lists perhaps
  // half changed. So the lock is taken around fork: the forking thread waits for any critical section to end, and
  // parent and child each release their copy of it. (DataLoader workers are forked processes.)
  static void register_fork_handlers() {
    pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                   [] { instance().mutex_.unlock(); });
  }
#endif

 private:
  static void deleter(void* context) {
    Block* block = static_cast<Block*>(context);
    const Block b = *block;
    delete block;
    instance().give_back(b);
  }

  // A waiting block of exactly `bytes`, the most recently freed (warmest) first; nullptr if there is none.
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (it->bytes == bytes) {
        void* data = it->data;
        cached_bytes_ -= bytes;
        free_.erase(std::next(it).base());
        ++hits_;
        return data;
      }
    }
    ++misses_;
    return nullptr;
  }

  void give_back(const Block& b) {
    report(b.data, -static_cast<int64_t>(b.bytes));
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_use_bytes_ -= b.bytes;
      if (b.bytes <= limit_) {
        evict_until_fits(b.bytes, evicted);
        free_.push_back(b);
        cached_bytes_ += b.bytes;
      } else {
        evicted.push_back(b);
      }
    }
    free_blocks(evicted);  // outside the lock: returning memory to the system can take a while
  }

  // Moves the oldest waiting blocks to `evicted` until `incoming` more bytes fit under the limit. Caller holds
  // the lock.
  void evict_until_fits(size_t incoming, std::vector<Block>& evicted) {
    while (!free_.empty() && cached_bytes_ + incoming > limit_) {
      evicted.push_back(free_.front());
      cached_bytes_ -= free_.front().bytes;
      free_.pop_front();
    }
  }

  static void free_blocks(const std::vector<Block>& blocks) {
    for (const Block& b : blocks) c10::free_cpu(b.data);
  }

  // As PyTorch's CPU allocator reports to the profiler (torch.profiler with profile_memory=True).
  void report(void* data, int64_t delta) {
    if (!c10::memoryProfilingEnabled()) return;
    size_t in_use, reserved;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_use = in_use_bytes_;
      reserved = in_use_bytes_ + cached_bytes_;
    }
    c10::reportMemoryUsageToProfiler(data, delta, in_use, reserved, c10::Device(c10::DeviceType::CPU));
  }

  std::mutex mutex_;
  std::list<Block> free_;  // oldest first
  size_t cached_bytes_ = 0;
  size_t in_use_bytes_ = 0;
  size_t limit_ = static_cast<size_t>(kDefaultCacheLimitBytes);
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

// Never destroyed: tensors freed while the process exits still hand their blocks back to it.
OutputCache& instance() {
  static OutputCache* cache = new OutputCache();
  return *cache;
}

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t bytes = c10::multiply_integers(sizes) * static_cast<int64_t>(options.dtype().itemsize());
  if (options.device().is_cpu() && bytes >= kMinCachedBytes && instance().enabled()) {
    return at::detail::empty_generic(sizes, &instance(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                     c10::typeMetaToScalarType(options.dtype()), std::nullopt);
  }
  return at::empty(sizes, options);
}

OutputCacheStats output_cache_stats() { return instance().stats(); }

void set_output_cache_limit(size_t bytes) { instance().set_limit(bytes); }

void empty_output_cache() { instance().clear(); }

}  // namespace torch_ops
}  // namespace snn
