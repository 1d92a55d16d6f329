// The small kernels around a training step that let the GPU trainer replay the step as a CUDA
// graph with no host synchronisation inside an epoch: the batch is gathered by a step counter
// the device keeps (so one captured graph serves every batch), and each step's loss and
// finiteness are recorded on the device and read once per epoch. Plus the correct-prediction
// count of evaluation. Plain C++ (no CUDA types).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// Per-call training state in device memory (one struct, read back with one copy).
struct StepCounters {
  /// Sum over steps, in step order, of float(batch loss / rows) * rows: the CPU trainer's sum.
  double loss_sum;
  /// Steps since the epoch began: the batch index the next step gathers.
  int32_t step;
  /// Batch index (in its epoch, from 0) of the first step whose mean loss was not finite; -1: none.
  int32_t first_bad_loss;
  /// Batch index of the first step after whose update a parameter was not finite; -1: none.
  int32_t first_bad_params;
  /// sgd_update's flag (set once any updated parameter is not finite; never cleared by it).
  uint32_t params_nonfinite;
  /// 1 when the first non-finite loss was NaN, 0 when it was infinite.
  uint32_t bad_loss_is_nan;
  uint32_t unused;
};

/// whole: every field to its initial value (loss_sum 0, step 0, first_bad_* -1, flags 0), at the
/// start of a train call. Otherwise only step = 0, at the start of an epoch. One tiny launch.
[[nodiscard]] Status reset_step_counters(StepCounters* c, bool whole, Stream s);

/// Gathers batch c->step of an epoch: for r < rows, sample order[c->step * batch + r] of
/// x [n x sample_size] / y [n] into xb [rows x sample_size] / yb [rows]. `batch` is the epoch's
/// batch size (the stride), rows <= batch the size of this batch (smaller for the last one).
/// A position past n (a caller's bug) gathers zeros with label -1, which makes the loss NaN.
[[nodiscard]] Status gather_batch(const float* x, const int32_t* y, int64_t n, int64_t sample_size,
                                  const int32_t* order, const StepCounters* c, int batch, int rows,
                                  float* xb, int32_t* yb, Stream s);

/// After a step's update: with mean = float(*batch_loss / rows) (batch_loss: the summed loss
/// softmax_xent wrote), records the step in first_bad_loss / first_bad_params when mean or a
/// parameter went non-finite (first occurrence only), adds mean * rows to loss_sum and advances
/// step. One thread.
[[nodiscard]] Status end_step(const double* batch_loss, int rows, StepCounters* c, Stream s);

/// end_step for DP-SGD's Poisson batch of *count real samples (a device int): mean =
/// float(*batch_loss / count), 0 for an empty batch; and *samples += count.
[[nodiscard]] Status end_dp_step(const double* batch_loss, const int32_t* count, StepCounters* c,
                                 long long* samples, Stream s);

/// *correct (+)= the number of i < rows with pred[i] == labels[i]; an integer sum, the same
/// whatever the order. `accumulate` false overwrites.
[[nodiscard]] Status count_correct(const int32_t* pred, const int32_t* labels, int rows,
                                   unsigned long long* correct, bool accumulate, Stream s);

}  // namespace fedsilo::kernels::cuda
