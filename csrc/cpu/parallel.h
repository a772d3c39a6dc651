// hrops::parallel_for: at::parallel_for whose workers see the calling
// thread's dispatch-key exclusions.
//
// A CPU kernel runs below autograd: the dispatcher has excluded the
// Autograd (and ADInplaceOrView) keys in the calling thread. at::parallel_for's
// OpenMP workers start with empty thread-local state, so an ATen op called in
// a worker (at::mm_out on a view of a weight that requires grad, say) would
// dispatch to autograd again and fail, or record a graph, only when a second
// thread runs. Every CPU kernel uses this wrapper so that no loop body has to
// know whether it calls ATen.
#pragma once
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <utility>

namespace hrops {

template <typename F>
inline void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const c10::impl::LocalDispatchKeySet caller = c10::impl::tls_local_dispatch_key_set();
  at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
    c10::impl::ForceDispatchKeyGuard guard(caller);
    f(b, e);
  });
}

}  // namespace hrops
