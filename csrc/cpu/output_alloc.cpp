#include "cpu/output_alloc.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <pthread.h>
#include <sys/mman.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <list>
#include <mutex>
#include <string>
#include <vector>

namespace hrops {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

bool huge_pages_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("HROPS_THP");
    if (env != nullptr && std::strcmp(env, "0") == 0) return false;
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string mode;
    if (!std::getline(f, mode)) return false;  // no THP on this system
    return mode.find("[never]") == std::string::npos;
  }();
  return enabled;
}

// HROPS_CPU_CACHE_MB: a whole number of MiB (default 1024); anything else
// is an error rather than a silent "unlimited" (strtoull reads "-1" so).
size_t cache_limit_bytes() {
  static const size_t limit = [] {
    const char* env = std::getenv("HROPS_CPU_CACHE_MB");
    if (env == nullptr || *env == '\0') return size_t(1024) << 20;
    size_t mib = 0;
    bool valid = true;
    for (const char* c = env; *c != '\0'; ++c) {
      if (*c < '0' || *c > '9' || mib > (SIZE_MAX >> 20) / 10) {
        valid = false;
        break;
      }
      mib = mib * 10 + size_t(*c - '0');
    }
    TORCH_CHECK(valid && mib <= (SIZE_MAX >> 20),
                "HROPS_CPU_CACHE_MB must be a whole number of MiB >= 0 (0 turns the cache off), "
                "got '", env, "'");
    return mib << 20;
  }();
  return limit;
}

struct Block {
  void* ptr;
  size_t size;  // multiple of kHugePage
};

// Freed blocks, most recently freed first. A freed block always enters the
// cache, evicting the least recently freed ones when the total would pass
// the limit: the sizes a workload is using now stay cached, old ones go.
// Guarded by mutex_; bytes_ is the total size of the cached blocks.
class BlockCache {
 public:
  // Fork handlers (see cache()): the lock is held across fork, so the list
  // is consistent in the child when it frees its copies of the blocks.
  void before_fork() { mutex_.lock(); }
  void after_fork_in_parent() { mutex_.unlock(); }
  void after_fork_in_child() {
    release_locked();
    mutex_.unlock();
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->size == size) {
        void* p = it->ptr;
        free_.erase(it);
        bytes_ -= size;
        return p;
      }
    }
    return nullptr;
  }
  void give(Block* b) {
    std::vector<void*> evicted;
    if (b->size <= cache_limit_bytes()) {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.push_front(*b);
      bytes_ += b->size;
      while (bytes_ > cache_limit_bytes()) {
        evicted.push_back(free_.back().ptr);
        bytes_ -= free_.back().size;
        free_.pop_back();
      }
    } else {
      evicted.push_back(b->ptr);
    }
    delete b;
    for (void* p : evicted) std::free(p);  // outside the lock
  }
  int64_t clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    return release_locked();
  }
  int64_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return int64_t(bytes_);
  }

 private:
  int64_t release_locked() {
    for (const Block& b : free_) std::free(b.ptr);
    free_.clear();
    const size_t released = bytes_;
    bytes_ = 0;
    return int64_t(released);
  }

  std::mutex mutex_;
  std::list<Block> free_;
  size_t bytes_ = 0;
};

BlockCache& cache() {
  static BlockCache* c = [] {
    cache_limit_bytes();  // a bad HROPS_CPU_CACHE_MB raises here, not in a deleter
    auto* fresh = new BlockCache();  // leaked: outlives tensors freed at exit
    // A forked child (a DataLoader worker, say) starts with an empty,
    // unlocked cache instead of a copy whose lock another thread may hold.
    pthread_atfork([] { cache().before_fork(); }, [] { cache().after_fork_in_parent(); },
                   [] { cache().after_fork_in_child(); });
    return fresh;
  }();
  return *c;
}

void release_block(void* ctx) { cache().give(static_cast<Block*>(ctx)); }

class OutputAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kHugePage) return c10::GetDefaultCPUAllocator()->allocate(nbytes);
    const size_t size = (nbytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = cache().take(size);
    if (p == nullptr) {
      if (posix_memalign(&p, kHugePage, size) != 0 || p == nullptr) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "hrops: failed to allocate ", nbytes,
                         " bytes of CPU memory");
      }
      if (huge_pages_enabled()) madvise(p, size, MADV_HUGEPAGE);  // advisory
    }
    return {p, new Block{p, size}, &release_block, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  static OutputAllocator allocator;
  return at::detail::empty_generic(sizes, &allocator, c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

int64_t empty_cache() { return cache().clear(); }

int64_t cached_bytes() { return cache().bytes(); }

TORCH_LIBRARY_FRAGMENT(hrops_C, m) {
  m.def("empty_cache() -> int", &empty_cache);
  m.def("cached_bytes() -> int", &cached_bytes);
}

}  // namespace hrops
