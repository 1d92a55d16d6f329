// Elementwise accumulation and the L2 norm over flat device arrays: the CUDA twins of
// kernels/cpu/reduce.h. The norm is a fixed-order reduction: the same bits run to run.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// dst[i] += src[i] for i < n.
[[nodiscard]] Status add_into(float* dst, const float* src, int64_t n, Stream s);

/// Bytes of device scratch l2_norm needs for n elements (one double per block of the first
/// pass, at most 1024 blocks: <= 8 KiB); the workspace must be 8-byte aligned.
int64_t l2_norm_workspace_bytes(int64_t n);

/// *norm = sqrt(sum_i x[i]^2), squares summed in double (norm is a device pointer; the result
/// stays on the device). Two launches: per-block sums over a grid that depends only on n, then
/// one block adds them by a fixed tree, so the bits repeat run to run.
[[nodiscard]] Status l2_norm(const float* x, int64_t n, float* norm, void* workspace,
                             int64_t workspace_bytes, Stream s);

}  // namespace fedsilo::kernels::cuda
