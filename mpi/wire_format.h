// The wire format of every payload the allreduce algorithms send between ranks: a versioned
// 48-byte header, then the indices (LEB128 delta varints or a bitmap, whichever is smaller, or
// none for a dense payload), then the values in the chosen ValueType. The decoder trusts
// nothing: any inconsistency is kCorruptData naming the sending rank, never a crash.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::mpi {

/// How the index section is coded.
enum class IndexEncoding : uint8_t {
  kDense = 0,        // no indices: values for every position 0..length-1
  kVarintDelta = 1,  // first index, then gaps to the previous index, each as LEB128 (1-5 bytes)
  kBitmap = 2,       // ceil(length / 8) bytes, bit i (LSB first) set when index i is present
};

/// "dense", "varint", "bitmap" (or "unknown").
const char* index_encoding_name(IndexEncoding e);
/// "fp32", "fp16", "bf16", "int8" (or "unknown").
const char* value_type_name(kernels::ValueType t);

/// 'F','S','L','W' read as a little-endian uint32.
inline constexpr uint32_t kWireMagic = 0x574C5346u;
inline constexpr uint16_t kWireVersion = 1;
inline constexpr int64_t kWireHeaderBytes = 48;
/// Dense lengths above 2^40 floats (4 TiB) are refused: no model is that large, and the bound
/// keeps every size computation far from int64 overflow.
inline constexpr int64_t kMaxWireLength = int64_t{1} << 40;

/// The decoded header. Layout on the wire, little-endian, 48 bytes:
/// magic u32 | version u16 | index encoding u8 | value type u8 | round u32 | sender i32 |
/// length u64 | nnz u64 | index bytes u64 | value bytes u64.
struct WireHeader {
  uint32_t magic = kWireMagic;
  uint16_t version = kWireVersion;
  IndexEncoding index_encoding = IndexEncoding::kVarintDelta;
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  uint32_t round = 0;
  int32_t sender = 0;
  int64_t length = 0;
  int64_t nnz = 0;
  int64_t index_bytes = 0;
  int64_t value_bytes = 0;
};

/// Which index coding a sparse payload uses.
enum class IndexChoice : uint8_t { kAuto, kVarintDelta, kBitmap };

/// What a narrow value type does with a value it cannot hold exactly.
enum class Narrowing : uint8_t {
  kRound,           // round as kernels/cpu/quantize.h does (fp16/bf16 nearest, ties to even;
                    // int8 stochastic from a fixed stream, exact for values on the grid)
  kLosslessOrFp32,  // keep the narrow type only if every value survives it bit for bit, else
                    // send fp32 (for partial sums, which must not be rounded again)
};

struct EncodeOptions {
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  IndexChoice index = IndexChoice::kAuto;
  Narrowing narrowing = Narrowing::kLosslessOrFp32;
};

/// What the receiver knows about a payload before reading it.
struct WireExpect {
  uint32_t round = 0;
  int sender = 0;       // rank that sent it (named in every error; must match the header)
  int64_t length = -1;  // dense length it must have; -1 accepts any
};

/// A decoded payload: `indices` empty and `values` of `header.length` when dense.
struct DecodedPayload {
  WireHeader header;
  std::vector<uint32_t> indices;
  std::vector<float> values;
  [[nodiscard]] bool dense() const { return header.index_encoding == IndexEncoding::kDense; }
};

/// Appends the payload for `v` to `out`. kInvalidArgument if `v` is malformed (indices not
/// strictly ascending or not below the length, sizes differ, length above 2^32), kDiverged if
/// a value is not finite or does not fit the value type (fp16 above 65504).
[[nodiscard]] Status encode_sparse(const kernels::SparseVector& v, uint32_t round, int sender,
                                   const EncodeOptions& options, std::vector<uint8_t>& out);
/// Appends a dense payload (every position, no index section) to `out`.
[[nodiscard]] Status encode_dense(std::span<const float> v, uint32_t round, int sender,
                                  const EncodeOptions& options, std::vector<uint8_t>& out);

/// Reads only the header (checks magic, version, encodings, round, sender, length).
[[nodiscard]] Result<WireHeader> decode_header(std::span<const uint8_t> bytes,
                                               const WireExpect& expect);
/// Decodes and checks a whole payload: header, section sizes against the buffer exactly,
/// varint overflow, indices strictly ascending and below the length, nnz against the index
/// section, finite values. Errors are kCorruptData "payload from rank S: ...". `out`'s
/// buffers are reused.
[[nodiscard]] Status decode_payload(std::span<const uint8_t> bytes, const WireExpect& expect,
                                    DecodedPayload& out);

/// Bytes of the value section for `count` values of type `t` (int8: a 4-byte fp32 scale per
/// block of kInt8BlockSize values, then one byte per value).
int64_t wire_value_bytes(kernels::ValueType t, int64_t count);
/// Bytes of the LEB128 delta coding of `indices` (strictly ascending).
int64_t wire_varint_index_bytes(std::span<const uint32_t> indices);
/// Bytes of a bitmap over `length` positions.
inline int64_t wire_bitmap_bytes(int64_t length) {
  return (length + 7) / 8;
}

}  // namespace fedsilo::mpi
