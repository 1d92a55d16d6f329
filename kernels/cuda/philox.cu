// Philox words into a device buffer (see philox.h): one thread per word, grid-stride.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/philox.h"

namespace fedsilo::kernels::cuda {
namespace {

__global__ void philox_words_kernel(PhiloxStreamId id, uint64_t first_word, int64_t count,
                                    uint32_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    out[i] = philox_word(id, first_word + static_cast<uint64_t>(i));
  }
}

}  // namespace

Status philox_words(uint64_t seed, uint32_t round, uint32_t silo, uint32_t purpose,
                    uint64_t first_word, int64_t count, uint32_t* out, Stream s) {
  if (count < 0) return invalid_argument("philox_words: negative count");
  if (count == 0) return {};
  if (out == nullptr) return invalid_argument("philox_words: null output");
  philox_words_kernel<<<blocks_for(count), kThreads, 0, static_cast<cudaStream_t>(s.handle)>>>(
      make_philox_stream(seed, round, silo, purpose), first_word, count, out);
  FEDSILO_CUDA_LAUNCHED(philox_words_kernel);
  return {};
}

}  // namespace fedsilo::kernels::cuda
