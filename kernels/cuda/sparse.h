// Sparse vectors on the device (the kernels::SparseVector layout: ascending unique uint32
// indices and their float values, as two device arrays): gather from a dense buffer, densify,
// and the scatter-add merge of a sparse vector into a dense sum. The CPU twins are the loops of
// mpi/algorithm.cpp (densify, check_contribution) and of the sparse allreduce merges
// (out[indices[j]] += values[j], one contribution after the other in rank order).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"

namespace fedsilo::kernels::cuda {

/// values[j] = x[indices[j]] for j < nnz (indices < the length of x; not checked).
[[nodiscard]] Status gather(const float* x, const uint32_t* indices, int64_t nnz, float* values,
                            Stream s);

/// out[i] = i for i < n (n < 2^32): the index list of "all coordinates".
[[nodiscard]] Status fill_iota(uint32_t* out, int64_t n, Stream s);

/// out[0, length) = 0, then out[indices[j]] = values[j]. Indices >= length are skipped (never
/// written out of bounds; check_sparse reports them).
[[nodiscard]] Status densify(const uint32_t* indices, const float* values, int64_t nnz, float* out,
                             int64_t length, Stream s);

/// out[indices[j]] += values[j] for j < nnz: one thread per entry and no atomics, so the indices
/// must be unique (a SparseVector's are strictly ascending); then each sum is the CPU's
/// `out[i] += v` bit for bit, and merging contributions by successive calls in rank order gives
/// the rank-ordered CPU sum. Indices >= length are skipped.
[[nodiscard]] Status scatter_add(const uint32_t* indices, const float* values, int64_t nnz,
                                 float* out, int64_t length, Stream s);

/// The device twin of mpi::check_contribution: kInvalidArgument naming the first entry whose
/// index is not strictly ascending or not below `length`; else kDiverged naming the first
/// non-finite value; else ok. Synchronizes the stream (the answer comes back to the host).
[[nodiscard]] Status check_sparse(const uint32_t* indices, const float* values, int64_t nnz,
                                  int64_t length, Workspace& ws, Stream s);

}  // namespace fedsilo::kernels::cuda
