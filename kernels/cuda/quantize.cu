// Value quantizers on the device (see quantize.h): the CPU's integer arithmetic for fp16 and
// bf16, one thread per value; int8 one block per scale block (kInt8BlockSize = 256 threads), a
// max-reduction, the scale, then stochastic rounding with the CPU's exact double operations.
//
// Bit-exactness notes: the CPU's int8 rounding is floor(|v| * inv + u) with inv = 1 / scale and
// u = word * 2^-32; built with -march=native (FMA) GCC contracts it into one fused multiply-add
// (seen in the object code), so the device uses __fma_rn for it. Division, conversions and the
// one fp16 subnormal addition are IEEE round-to-nearest on both sides (no fast-math here).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/quantize.h"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kQBlock = kInt8BlockSize;  // threads of the int8 kernels: one per value of a block
static_assert(kQBlock == 256 && kQBlock % 32 == 0);
constexpr uint32_t kCompressionPurpose = 8;  // RngPurpose::kCompression



__device__ uint16_t to_fp16(float x) {
  uint32_t a = __float_as_uint(x);
  const auto sign = static_cast<uint16_t>((a >> 16) & 0x8000u);
  a &= 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);
  if (a >= 0x38800000u) {
    a += 0xFFFu + ((a >> 13) & 1u);
    a -= (127u - 15u) << 23;
    return static_cast<uint16_t>(sign | (a >> 13));
  }
  const float t = __fadd_rn(__uint_as_float(a), 0.5f);
  return static_cast<uint16_t>(sign | (__float_as_uint(t) - 0x3F000000u));
}

__device__ float from_fp16(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1Fu) return __uint_as_float(sign | 0x7F800000u | (m << 13));
  if (e == 0) {
    const float v = __fmul_rn(static_cast<float>(m), 0x1p-24f);
    return sign != 0 ? -v : v;
  }
  return __uint_as_float(sign | ((e + 127u - 15u) << 23) | (m << 13));
}

__device__ uint16_t to_bf16(float x) {
  const uint32_t a = __float_as_uint(x);
  if ((a & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((a >> 16) | 0x0040u);
  return static_cast<uint16_t>((a + 0x7FFFu + ((a >> 16) & 1u)) >> 16);
}

__device__ float from_bf16(uint16_t b) {
  return __uint_as_float(uint32_t{b} << 16);
}

__device__ float int8_block_scale(float max_abs) {
  if (!(max_abs >= kInt8FlushBelow)) return 0.0f;
  const double q = static_cast<double>(max_abs) / 127.0;
  float s = __double2float_rn(q);
  if (static_cast<double>(s) < q) s = nextafterf(s, INFINITY);
  uint32_t bits = __float_as_uint(s);
  if ((bits & 0xFFu) != 0) bits = (bits | 0xFFu) + 1u;
  return __uint_as_float(bits);
}

// Max over the block (every thread gets it). Order-free: max is exact.
__device__ float block_max(float v) {
  __shared__ float warp_max[kQBlock / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, d));
  if (lane == 0) warp_max[warp] = v;
  __syncthreads();
  float m = warp_max[0];
#pragma unroll
  for (int w = 1; w < kQBlock / 32; ++w) m = fmaxf(m, warp_max[w]);
  return m;
}

__global__ void fp16_round_trip_kernel(float* __restrict__ v, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) v[i] = from_fp16(to_fp16(v[i]));
}
__global__ void bf16_round_trip_kernel(float* __restrict__ v, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) v[i] = from_bf16(to_bf16(v[i]));
}

// Little-endian 16-bit values at any byte alignment.
__global__ void half_encode_kernel(const float* __restrict__ v, int64_t n, bool bf16,
                                   uint8_t* __restrict__ out) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const uint16_t h = bf16 ? to_bf16(v[i]) : to_fp16(v[i]);
    out[2 * i] = static_cast<uint8_t>(h & 0xFFu);
    out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

// One int8 block per thread block: quantizes values [j0, j0 + len) (encoded positions j0..).
// Writes the decoded values to rt (round trip, may alias in) and/or the bytes to enc.
__global__ void __launch_bounds__(kQBlock)
    int8_kernel(const float* in, int64_t n, PhiloxStreamId id, float* rt, uint8_t* enc) {
  const int64_t b = blockIdx.x;
  const int64_t j0 = b * kQBlock;
  const int64_t j = j0 + threadIdx.x;
  const bool active = j < n;
  const float v = active ? in[j] : 0.0f;
  const float a = fabsf(v);
  // The CPU's std::max(max_abs, |v|) from 0 never picks a NaN: count NaN as 0.
  const float max_abs = block_max(a == a ? a : 0.0f);
  const float scale = int8_block_scale(max_abs);
  int8_t q = 0;
  if (scale != 0.0f && active) {
    double t;
    if (a == max_abs) {
      t = 127.0;
    } else {
      const double inv = 1.0 / static_cast<double>(scale);
      const double u = static_cast<double>(philox_word(id, static_cast<uint64_t>(j))) * 0x1p-32;
      t = floor(__fma_rn(static_cast<double>(a), inv, u));
      t = 127.0 < t ? 127.0 : t;
    }
    q = static_cast<int8_t>(v < 0.0f ? -t : t);
  }
  if (active) {
    if (rt != nullptr) rt[j] = __fmul_rn(static_cast<float>(q), scale);
    if (enc != nullptr) {
      const int64_t blocks = (n + kQBlock - 1) / kQBlock;
      enc[4 * blocks + j] = static_cast<uint8_t>(q);
    }
  }
  if (enc != nullptr && threadIdx.x < 4) {
    const uint32_t bits = __float_as_uint(scale);
    enc[4 * b + threadIdx.x] = static_cast<uint8_t>(bits >> (8 * threadIdx.x));
  }
}

// first[0]: lowest int8 block with a bad scale; first[1]: lowest non-finite decoded value.
__global__ void decode_kernel(int type, const uint8_t* __restrict__ in, int64_t n,
                              float* __restrict__ out, unsigned long long* first) {
  const int64_t blocks = (n + kQBlock - 1) / kQBlock;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    float v;
    if (type == static_cast<int>(ValueType::kInt8)) {
      const int64_t b = i / kQBlock;
      const uint32_t bits = uint32_t{in[4 * b]} | (uint32_t{in[4 * b + 1]} << 8) |
                            (uint32_t{in[4 * b + 2]} << 16) | (uint32_t{in[4 * b + 3]} << 24);
      const float scale = __uint_as_float(bits);
      if (!(scale >= 0.0f && scale <= FLT_MAX)) {
        atomicMin(&first[0], static_cast<unsigned long long>(b));
      }
      v = __fmul_rn(static_cast<float>(static_cast<int8_t>(in[4 * blocks + i])), scale);
    } else if (type == static_cast<int>(ValueType::kFp32)) {
      const uint32_t bits = uint32_t{in[4 * i]} | (uint32_t{in[4 * i + 1]} << 8) |
                            (uint32_t{in[4 * i + 2]} << 16) | (uint32_t{in[4 * i + 3]} << 24);
      v = __uint_as_float(bits);
    } else {
      const auto h = static_cast<uint16_t>(in[2 * i] | (in[2 * i + 1] << 8));
      v = type == static_cast<int>(ValueType::kFp16) ? from_fp16(h) : from_bf16(h);
    }
    out[i] = v;
    if (!isfinite(v)) atomicMin(&first[1], static_cast<unsigned long long>(i));
  }
}

int64_t encoded_bytes(ValueType type, int64_t count) {
  if (count <= 0) return 0;
  switch (type) {
    case ValueType::kFp32:
      return 4 * count;
    case ValueType::kFp16:
    case ValueType::kBf16:
      return 2 * count;
    case ValueType::kInt8:
      return count + 4 * ((count + kInt8BlockSize - 1) / kInt8BlockSize);
  }
  return 0;
}

PhiloxStreamId rounding_stream(const RoundingStream& rs) {
  return make_philox_stream(rs.seed, rs.round, rs.silo | kRoundingStreamBit, kCompressionPurpose);
}

unsigned int_blocks(int64_t n) {
  return static_cast<unsigned>((n + kQBlock - 1) / kQBlock);
}

Status check_int8_size(int64_t n) {
  // One thread block per scale block: the grid's x dimension allows 2^31 - 1 blocks.
  if (n > (int64_t{1} << 31) * kQBlock / 2) return invalid_argument("int8: too many values");
  return {};
}

}  // namespace

Status round_trip_values(ValueType type, float* values, int64_t n, const RoundingStream& rs,
                         Stream s) {
  if (n <= 0 || type == ValueType::kFp32) return {};
  if (values == nullptr) return invalid_argument("round_trip_values: null values");
  const cudaStream_t stream = cuda_stream(s);
  switch (type) {
    case ValueType::kFp16:
      fp16_round_trip_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, n);
      FEDSILO_CUDA_LAUNCHED(fp16_round_trip_kernel);
      return {};
    case ValueType::kBf16:
      bf16_round_trip_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, n);
      FEDSILO_CUDA_LAUNCHED(bf16_round_trip_kernel);
      return {};
    case ValueType::kInt8:
      FEDSILO_CHECK(check_int8_size(n));
      // In place: each thread reads its value before the block's barrier (in block_max) and
      // writes only its own value after it.
      int8_kernel<<<int_blocks(n), kQBlock, 0, stream>>>(values, n, rounding_stream(rs), values,
                                                         nullptr);
      FEDSILO_CUDA_LAUNCHED(int8_kernel);
      return {};
    case ValueType::kFp32:
      return {};
  }
  return invalid_argument("round_trip_values: unknown value type");
}

Status encode_values(ValueType type, const float* values, int64_t n, uint8_t* out,
                     const RoundingStream& rs, Stream s) {
  if (n <= 0) return {};
  if (values == nullptr || out == nullptr) return invalid_argument("encode_values: null pointer");
  const cudaStream_t stream = cuda_stream(s);
  switch (type) {
    case ValueType::kFp32:
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(out, values, sizeof(float) * static_cast<size_t>(n),
                                       cudaMemcpyDeviceToDevice, stream));
      return {};
    case ValueType::kFp16:
    case ValueType::kBf16:
      half_encode_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, n,
                                                                 type == ValueType::kBf16, out);
      FEDSILO_CUDA_LAUNCHED(half_encode_kernel);
      return {};
    case ValueType::kInt8:
      FEDSILO_CHECK(check_int8_size(n));
      int8_kernel<<<int_blocks(n), kQBlock, 0, stream>>>(values, n, rounding_stream(rs), nullptr,
                                                         out);
      FEDSILO_CUDA_LAUNCHED(int8_kernel);
      return {};
  }
  return invalid_argument("encode_values: unknown value type");
}

Status decode_values(ValueType type, const uint8_t* in, int64_t in_bytes, float* out, int64_t n,
                     Workspace& ws, Stream s) {
  const int64_t want = encoded_bytes(type, n);
  if (in_bytes != want) {
    return corrupt_data("value payload of " + std::to_string(in_bytes) + " bytes, expected " +
                        std::to_string(want) + " for " + std::to_string(n) + " values");
  }
  if (n <= 0) return {};
  if (in == nullptr || out == nullptr) return invalid_argument("decode_values: null pointer");
  const cudaStream_t stream = cuda_stream(s);
  FEDSILO_ASSIGN_OR_RETURN(void* scratch, ws.reserve(2 * sizeof(unsigned long long)));
  auto* first = static_cast<unsigned long long*>(scratch);
  const unsigned long long none[2] = {~0ull, ~0ull};
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(first, none, sizeof(none), cudaMemcpyHostToDevice, stream));
  decode_kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<int>(type), in, n, out, first);
  FEDSILO_CUDA_LAUNCHED(decode_kernel);
  unsigned long long found[2];
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(found, first, sizeof(found), cudaMemcpyDeviceToHost, stream));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
  if (found[0] != ~0ull) {
    const int64_t b = static_cast<int64_t>(found[0]);
    uint32_t bits = 0;
    FEDSILO_CUDA_TRY(cudaMemcpy(&bits, in + 4 * b, sizeof(bits), cudaMemcpyDeviceToHost));
    float scale;
    static_assert(sizeof(scale) == sizeof(bits));
    std::memcpy(&scale, &bits, sizeof(scale));
    return corrupt_data("int8 block " + std::to_string(b) + " has scale " + std::to_string(scale));
  }
  if (found[1] != ~0ull) {
    return corrupt_data("decoded value " + std::to_string(found[1]) + " is not finite");
  }
  return {};
}

}  // namespace fedsilo::kernels::cuda
