// ThreadTeam: spin-then-sleep fork/join over a fixed set of std::threads.
#include "kernels/cpu/thread_team.h"

#include <chrono>

namespace fedsilo::kernels {

namespace {

// How long a waiting thread spins before it sleeps. On an idle machine the partner of a
// 2-thread step arrives within a few to tens of microseconds (chunk imbalance), which spinning
// catches without a futex wake-up (~5-50 us); on a busy machine a preempted partner is gone
// for a scheduler slice (milliseconds), and spinning longer would only take its CPU.
constexpr auto kSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until `value` differs from `old`: spin for kSpin, then futex wait.
template <typename T>
T wait_change(const std::atomic<T>& value, T old) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    const T now = value.load(std::memory_order_acquire);
    if (now != old) return now;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
  }
  for (;;) {
    value.wait(old, std::memory_order_acquire);
    const T now = value.load(std::memory_order_acquire);
    if (now != old) return now;
  }
}

}  // namespace

ThreadTeam::ThreadTeam(int threads) : size_(threads < 1 ? 1 : threads) {
  workers_.reserve(static_cast<size_t>(size_ - 1));
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadTeam::~ThreadTeam() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadTeam::run_impl(Task task, void* ctx) {
  if (size_ == 1) {
    task(ctx, 0);
    return;
  }
  task_ = task;
  ctx_ = ctx;
  pending_.store(size_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes task_, ctx_
  generation_.notify_all();
  task(ctx, 0);
  for (int left = pending_.load(std::memory_order_acquire); left != 0;) {
    left = wait_change(pending_, left);
  }
}

void ThreadTeam::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    seen = wait_change(generation_, seen);
    if (stop_.load(std::memory_order_relaxed)) return;
    task_(ctx_, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace fedsilo::kernels
