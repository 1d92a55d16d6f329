// Exact top-k by magnitude on the device: the twin of kernels::topk_indices / topk_select
// (kernels/cpu/topk.h), with the same result bit for bit: the k largest |x|, ties at the
// threshold to the lower index, indices ascending, values copied. A multi-pass radix select:
// one histogram pass and one candidate pass over x, the rest over the candidates only (see
// kernels/cuda/radix_select.cuh). Deterministic run to run, no host synchronization.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"

namespace fedsilo::kernels::cuda {

/// Scratch bytes topk_in needs for n elements on the current device (~8n bytes: the worst case
/// has every element a candidate).
[[nodiscard]] Result<size_t> topk_scratch_bytes(int64_t n);

/// Indices (ascending) of the k elements of x[0, n) with the largest |x|, ties to the lower
/// index, into indices[0, min(k, n)); their values into values[] unless it is null. k <= 0 or
/// n == 0: nothing is written; k >= n: all of them. Requires 0 <= n < 2^32 (kInvalidArgument
/// otherwise) and no NaN in x (as the CPU: NaN keys rank above +inf). All pointers are device
/// memory; runs on stream s without synchronizing it.
[[nodiscard]] Status topk(const float* x, int64_t n, int64_t k, uint32_t* indices, float* values,
                          Workspace& ws, Stream s);

/// topk with caller-provided scratch of topk_scratch_bytes(n) bytes (256-byte aligned).
[[nodiscard]] Status topk_in(const float* x, int64_t n, int64_t k, uint32_t* indices, float* values,
                             void* scratch, Stream s);

}  // namespace fedsilo::kernels::cuda
