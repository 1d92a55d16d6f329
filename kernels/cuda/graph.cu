// CUDA graph capture and replay (see graph.h).
#include "kernels/cuda/graph.h"
#include "kernels/cuda/launch.cuh"

namespace fedsilo::kernels::cuda {

Result<Graph> Graph::capture(Stream s, const std::function<Status()>& enqueue) {
  const cudaStream_t cs = cuda_stream(s);
  if (cs == nullptr) {
    // The legacy default stream cannot be captured.
    return invalid_argument("cuda::Graph::capture: needs a created stream, not the default one");
  }
  FEDSILO_CUDA_TRY(cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal));
  const Status queued = enqueue();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(cs, &graph);
  if (!queued.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture also reports through the last error
    return queued;
  }
  if (ended != cudaSuccess) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return cuda_status(ended, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the executable graph is independent of its template
  if (inst != cudaSuccess) return cuda_status(inst, "cudaGraphInstantiate");
  Graph g;
  g.exec_ = exec;
  return Result<Graph>(std::move(g));  // explicit: nvcc (C++17) will not move implicitly
}

Graph& Graph::operator=(Graph&& o) noexcept {
  if (this != &o) {
    if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}

Graph::~Graph() {
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}

Status Graph::launch(Stream s) const {
  if (exec_ == nullptr) return invalid_argument("cuda::Graph::launch: empty graph");
  FEDSILO_CUDA_TRY(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), cuda_stream(s)));
  return {};
}

}  // namespace fedsilo::kernels::cuda
