// CUDA graphs in plain C++ (no CUDA types): capture the work a function queues on a stream once,
// then replay it with one launch. The GPU trainer replays a whole training step (gather, forward,
// loss, backward, update: ~40 launches) this way, so a small batch is not bound by launch cost.
#pragma once

#include <functional>
#include <utility>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// An instantiated, replayable graph (cudaGraphExec_t). Move-only; empty when default-made.
/// A graph keeps the kernel arguments it was captured with (pointers, sizes, scalars): replay it
/// only while every buffer it touches is alive and unmoved.
class Graph {
 public:
  /// Runs `enqueue` with `s` in capture mode (thread-local: other threads may keep using CUDA)
  /// and instantiates what it queued. Nothing runs during the capture. The capture is always
  /// ended, also when `enqueue` fails; its error comes back then. Inside `enqueue`: no
  /// allocation, no synchronisation, no host reads of device memory (see the CUDA
  /// programming guide, "stream capture").
  [[nodiscard]] static Result<Graph> capture(Stream s, const std::function<Status()>& enqueue);

  Graph() = default;
  Graph(Graph&& o) noexcept : exec_(std::exchange(o.exec_, nullptr)) {}
  Graph& operator=(Graph&& o) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();

  /// Queues one replay on `s` (asynchronous).
  [[nodiscard]] Status launch(Stream s) const;
  [[nodiscard]] bool empty() const { return exec_ == nullptr; }

 private:
  void* exec_ = nullptr;  // cudaGraphExec_t
};

}  // namespace fedsilo::kernels::cuda
