// A fixed team of threads for the CPU backend: run(fn) calls fn(0..size-1) in parallel (fn(0)
// on the caller) and returns when all are done. Waiting threads spin briefly, then sleep on a
// futex (std::atomic::wait), so a team on a shared, oversubscribed node yields its cores
// instead of burning them.
//
// Why not OpenMP: libgomp's waiting threads spin up to GOMP_SPINCOUNT (300,000 pauses) at every
// barrier, and the policy can only be changed through the environment. Measured here with other
// processes on both cores, a 2-thread CNN step loop fell from ~33,000 to ~2,700 samples/s under
// the default policy (the waiting thread burns the CPU time its preempted partner needs);
// passive waiting kept ~33,000.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace fedsilo::kernels {

class ThreadTeam {
 public:
  /// Starts threads - 1 workers (none for threads <= 1).
  explicit ThreadTeam(int threads);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  [[nodiscard]] int size() const { return size_; }

  /// Runs fn(i) for every i in [0, size()), i = 0 on the calling thread, and returns when all
  /// calls have returned. One run at a time (not reentrant, not for concurrent callers).
  template <typename F>
  void run(F&& fn) {
    run_impl([](void* ctx, int i) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i); },
             const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using Task = void (*)(void*, int);
  void run_impl(Task task, void* ctx);
  void worker(int index);

  int size_;
  std::vector<std::thread> workers_;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint64_t> generation_{0};  // bumped once per run; workers wait for a change
  std::atomic<int> pending_{0};          // workers still running the current task
  std::atomic<bool> stop_{false};
};

}  // namespace fedsilo::kernels
