// Encoder and fully checking decoder of the allreduce wire format (see wire_format.h).
#include "mpi/wire_format.h"

#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

namespace fedsilo::mpi {

static_assert(std::endian::native == std::endian::little,
              "the wire format copies fp32 values as they lie in memory (little-endian)");

using kernels::ValueType;

const char* index_encoding_name(IndexEncoding e) {
  switch (e) {
    case IndexEncoding::kDense:
      return "dense";
    case IndexEncoding::kVarintDelta:
      return "varint";
    case IndexEncoding::kBitmap:
      return "bitmap";
  }
  return "unknown";
}

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kFp32:
      return "fp32";
    case ValueType::kFp16:
      return "fp16";
    case ValueType::kBf16:
      return "bf16";
    case ValueType::kInt8:
      return "int8";
  }
  return "unknown";
}

int64_t wire_value_bytes(ValueType t, int64_t count) {
  return kernels::encoded_value_bytes(t, count);
}

namespace {

int varint_len(uint32_t v) {
  // 7 payload bits per byte: < 2^7 one byte, < 2^14 two, ... up to five for 2^32 - 1.
  int n = 1;
  while (v >= 0x80u) {
    v >>= 7;
    ++n;
  }
  return n;
}

}  // namespace

int64_t wire_varint_index_bytes(std::span<const uint32_t> indices) {
  int64_t bytes = 0;
  uint32_t prev = 0;
  for (uint32_t idx : indices) {
    bytes += varint_len(idx - prev);
    prev = idx;
  }
  return bytes;
}

// ------------------------------------------------------------------------------- value codec
// The value types are converted by the quantizer of kernels/cpu/quantize.h, the same code the
// compressors round with, so a value the compressor already rounded re-encodes bit for bit.
// These two functions are the only place the wire format touches it.
namespace value_codec {
namespace {

/// Writes wire_value_bytes(t, v.size()) bytes at `out`; false if a value overflows `t`
/// (fp16 above 65504 and bf16 above ~3.4e38 become infinity). int8 rounds stochastically
/// from a fixed stream; values already on their block's grid re-encode exactly.
bool narrow(ValueType t, std::span<const float> v, uint8_t* out) {
  if (v.empty()) return true;  // nothing to write (and no null pointers into memcpy)
  const auto bytes = static_cast<size_t>(wire_value_bytes(t, static_cast<int64_t>(v.size())));
  kernels::encode_values(t, v, std::span<uint8_t>(out, bytes), kernels::RoundingStream{});
  if (t == ValueType::kFp16 || t == ValueType::kBf16) {
    const uint16_t exp_mask = t == ValueType::kFp16 ? 0x7c00u : 0x7f80u;
    for (size_t i = 0; i < v.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, out + 2 * i, 2);
      if ((h & exp_mask) == exp_mask) return false;
    }
  }
  return true;
}

/// Reads count values of type t (exactly wire_value_bytes bytes at `in`); kCorruptData if a
/// scale or value is not finite.
Status widen(ValueType t, const uint8_t* in, int64_t count, float* out) {
  if (count == 0) return {};
  const auto bytes = static_cast<size_t>(wire_value_bytes(t, count));
  return kernels::decode_values(t, std::span<const uint8_t>(in, bytes),
                                std::span<float>(out, static_cast<size_t>(count)));
}

}  // namespace
}  // namespace value_codec

// ------------------------------------------------------------------------------------ encoder
namespace {

void put_le(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

void write_header(const WireHeader& h, uint8_t* p) {
  put_le(p + 0, h.magic, 4);
  put_le(p + 4, h.version, 2);
  p[6] = static_cast<uint8_t>(h.index_encoding);
  p[7] = static_cast<uint8_t>(h.value_type);
  put_le(p + 8, h.round, 4);
  put_le(p + 12, static_cast<uint32_t>(h.sender), 4);
  put_le(p + 16, static_cast<uint64_t>(h.length), 8);
  put_le(p + 24, static_cast<uint64_t>(h.nnz), 8);
  put_le(p + 32, static_cast<uint64_t>(h.index_bytes), 8);
  put_le(p + 40, static_cast<uint64_t>(h.value_bytes), 8);
}

bool valid_value_type(uint8_t t) {
  return t <= static_cast<uint8_t>(ValueType::kInt8);
}

/// Writes the value section for `values` at out[pos...], growing `out`; picks fp32 instead of
/// a narrow type under kLosslessOrFp32 when a value would change. Returns the type written.
Result<ValueType> append_values(std::span<const float> values, const EncodeOptions& opt,
                                std::vector<uint8_t>& out) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return Status(StatusCode::kDiverged,
                    "wire encode: value #" + std::to_string(i) + " is not finite");
    }
  }
  const auto n = static_cast<int64_t>(values.size());
  ValueType t = opt.value_type;
  const size_t pos = out.size();
  out.resize(pos + static_cast<size_t>(wire_value_bytes(t, n)));
  bool fits = value_codec::narrow(t, values, out.data() + pos);
  if (fits && n > 0 && t != ValueType::kFp32 && opt.narrowing == Narrowing::kLosslessOrFp32) {
    // Decode what was written and compare bit for bit: one extra pass over nnz values.
    std::vector<float> back(values.size());
    fits = value_codec::widen(t, out.data() + pos, n, back.data()).ok() &&
           std::memcmp(back.data(), values.data(), values.size() * 4) == 0;
  }
  if (!fits) {
    if (opt.narrowing == Narrowing::kRound) {
      return Status(StatusCode::kDiverged, std::string("wire encode: a value does not fit ") +
                                               value_type_name(t) + " (overflow)");
    }
    t = ValueType::kFp32;
    out.resize(pos + static_cast<size_t>(wire_value_bytes(t, n)));
    value_codec::narrow(t, values, out.data() + pos);
  }
  return t;
}

}  // namespace

Status encode_sparse(const kernels::SparseVector& v, uint32_t round, int sender,
                     const EncodeOptions& options, std::vector<uint8_t>& out) {
  if (v.length < 0 || v.length > (int64_t{1} << 32)) {
    return invalid_argument("wire encode: sparse length " + std::to_string(v.length) +
                            " is outside [0, 2^32]");
  }
  if (v.indices.size() != v.values.size()) {
    return invalid_argument("wire encode: " + std::to_string(v.indices.size()) + " indices but " +
                            std::to_string(v.values.size()) + " values");
  }
  for (size_t i = 0; i < v.indices.size(); ++i) {
    if (v.indices[i] >= static_cast<uint64_t>(v.length) ||
        (i > 0 && v.indices[i] <= v.indices[i - 1])) {
      return invalid_argument(
          "wire encode: index #" + std::to_string(i) + " (" + std::to_string(v.indices[i]) +
          ") is not strictly ascending and below the length " + std::to_string(v.length));
    }
  }
  WireHeader h;
  h.round = round;
  h.sender = sender;
  h.length = v.length;
  h.nnz = v.nnz();
  const int64_t varint_bytes = wire_varint_index_bytes(v.indices);
  const int64_t bitmap_bytes = wire_bitmap_bytes(v.length);
  switch (options.index) {
    case IndexChoice::kVarintDelta:
      h.index_encoding = IndexEncoding::kVarintDelta;
      break;
    case IndexChoice::kBitmap:
      h.index_encoding = IndexEncoding::kBitmap;
      break;
    case IndexChoice::kAuto:
      // 1% of 2^24 uniformly spread: gaps ~100 -> 1 byte each, 168 KB; the bitmap is 2 MB.
      // At 20% the gaps are ~5 -> 1 byte each, 3.4 MB; the bitmap is still 2 MB.
      h.index_encoding =
          bitmap_bytes < varint_bytes ? IndexEncoding::kBitmap : IndexEncoding::kVarintDelta;
      break;
  }
  h.index_bytes = h.index_encoding == IndexEncoding::kBitmap ? bitmap_bytes : varint_bytes;

  const size_t start = out.size();
  out.resize(start + static_cast<size_t>(kWireHeaderBytes + h.index_bytes));
  uint8_t* p = out.data() + start + kWireHeaderBytes;
  if (h.index_encoding == IndexEncoding::kBitmap) {
    std::memset(p, 0, static_cast<size_t>(h.index_bytes));
    for (uint32_t idx : v.indices) p[idx >> 3] |= static_cast<uint8_t>(1u << (idx & 7));
  } else {
    uint32_t prev = 0;
    for (uint32_t idx : v.indices) {
      uint32_t d = idx - prev;
      prev = idx;
      while (d >= 0x80u) {
        *p++ = static_cast<uint8_t>(d | 0x80u);
        d >>= 7;
      }
      *p++ = static_cast<uint8_t>(d);
    }
  }
  auto t = append_values(v.values, options, out);
  if (!t.ok()) {
    out.resize(start);
    return t.status();
  }
  h.value_type = t.value();
  h.value_bytes = wire_value_bytes(h.value_type, h.nnz);
  write_header(h, out.data() + start);
  return {};
}

Status encode_dense(std::span<const float> v, uint32_t round, int sender,
                    const EncodeOptions& options, std::vector<uint8_t>& out) {
  const auto n = static_cast<int64_t>(v.size());
  if (n > kMaxWireLength) return invalid_argument("wire encode: dense length above 2^40");
  WireHeader h;
  h.index_encoding = IndexEncoding::kDense;
  h.round = round;
  h.sender = sender;
  h.length = n;
  h.nnz = n;
  h.index_bytes = 0;
  const size_t start = out.size();
  out.resize(start + kWireHeaderBytes);
  auto t = append_values(v, options, out);
  if (!t.ok()) {
    out.resize(start);
    return t.status();
  }
  h.value_type = t.value();
  h.value_bytes = wire_value_bytes(h.value_type, n);
  write_header(h, out.data() + start);
  return {};
}

// ------------------------------------------------------------------------------------ decoder
namespace {

Status corrupt(int sender, const std::string& what) {
  return corrupt_data("payload from rank " + std::to_string(sender) + ": " + what);
}

}  // namespace

Result<WireHeader> decode_header(std::span<const uint8_t> bytes, const WireExpect& expect) {
  const int s = expect.sender;
  const auto size = static_cast<int64_t>(bytes.size());
  if (size < kWireHeaderBytes) {
    return corrupt(s, std::to_string(size) + " bytes, shorter than the " +
                          std::to_string(kWireHeaderBytes) + "-byte header");
  }
  const uint8_t* p = bytes.data();
  WireHeader h;
  h.magic = static_cast<uint32_t>(get_le(p, 4));
  if (h.magic != kWireMagic) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", h.magic);
    return corrupt(s, std::string("bad magic ") + buf + ", not a fedsilo payload");
  }
  h.version = static_cast<uint16_t>(get_le(p + 4, 2));
  if (h.version != kWireVersion) {
    return corrupt(s, "wire version " + std::to_string(h.version) + ", this build reads version " +
                          std::to_string(kWireVersion));
  }
  if (p[6] > static_cast<uint8_t>(IndexEncoding::kBitmap)) {
    return corrupt(s, "unknown index encoding " + std::to_string(p[6]));
  }
  h.index_encoding = static_cast<IndexEncoding>(p[6]);
  if (!valid_value_type(p[7])) return corrupt(s, "unknown value type " + std::to_string(p[7]));
  h.value_type = static_cast<ValueType>(p[7]);
  h.round = static_cast<uint32_t>(get_le(p + 8, 4));
  if (h.round != expect.round) {
    return corrupt(
        s, "round " + std::to_string(h.round) + ", expected round " + std::to_string(expect.round));
  }
  h.sender = static_cast<int32_t>(static_cast<uint32_t>(get_le(p + 12, 4)));
  if (h.sender != expect.sender) {
    return corrupt(s, "header names sender " + std::to_string(h.sender));
  }
  const uint64_t length = get_le(p + 16, 8), nnz = get_le(p + 24, 8);
  const uint64_t index_bytes = get_le(p + 32, 8), value_bytes = get_le(p + 40, 8);
  if (length > static_cast<uint64_t>(kMaxWireLength)) {
    return corrupt(s, "length " + std::to_string(length) + " is above the limit 2^40");
  }
  h.length = static_cast<int64_t>(length);
  if (expect.length >= 0 && h.length != expect.length) {
    return corrupt(
        s, "length " + std::to_string(length) + ", expected " + std::to_string(expect.length));
  }
  if (nnz > length) {
    return corrupt(s,
                   "nnz " + std::to_string(nnz) + " is above the length " + std::to_string(length));
  }
  h.nnz = static_cast<int64_t>(nnz);
  // Section sizes are compared with the buffer before any arithmetic on them, so a forged
  // 2^63 cannot overflow the sum below.
  if (index_bytes > bytes.size() || value_bytes > bytes.size()) {
    return corrupt(s, "section sizes " + std::to_string(index_bytes) + " + " +
                          std::to_string(value_bytes) + " exceed the " +
                          std::to_string(bytes.size()) + "-byte buffer");
  }
  h.index_bytes = static_cast<int64_t>(index_bytes);
  h.value_bytes = static_cast<int64_t>(value_bytes);
  return h;
}

Status decode_payload(std::span<const uint8_t> bytes, const WireExpect& expect,
                      DecodedPayload& out) {
  FEDSILO_ASSIGN_OR_RETURN(const WireHeader h, decode_header(bytes, expect));
  const int s = expect.sender;
  out.header = h;
  out.indices.clear();
  out.values.clear();

  const int64_t want_values = wire_value_bytes(h.value_type, h.nnz);
  if (h.value_bytes != want_values) {
    return corrupt(s, "value section is " + std::to_string(h.value_bytes) + " bytes; " +
                          std::to_string(h.nnz) + " " + value_type_name(h.value_type) +
                          " values need " + std::to_string(want_values));
  }
  switch (h.index_encoding) {
    case IndexEncoding::kDense:
      if (h.nnz != h.length || h.index_bytes != 0) {
        return corrupt(s, "dense payload with nnz " + std::to_string(h.nnz) + ", length " +
                              std::to_string(h.length) + " and a " + std::to_string(h.index_bytes) +
                              "-byte index section");
      }
      break;
    case IndexEncoding::kBitmap:
      if (h.index_bytes != wire_bitmap_bytes(h.length)) {
        return corrupt(s, "bitmap is " + std::to_string(h.index_bytes) + " bytes; length " +
                              std::to_string(h.length) + " needs " +
                              std::to_string(wire_bitmap_bytes(h.length)));
      }
      [[fallthrough]];
    case IndexEncoding::kVarintDelta:
      if (h.length > (int64_t{1} << 32)) {
        return corrupt(s, "sparse length " + std::to_string(h.length) + " is above 2^32");
      }
      break;
  }
  const int64_t total = kWireHeaderBytes + h.index_bytes + h.value_bytes;
  if (total != static_cast<int64_t>(bytes.size())) {
    return corrupt(s, "header and sections make " + std::to_string(total) +
                          " bytes but the buffer has " + std::to_string(bytes.size()));
  }

  const uint8_t* ip = bytes.data() + kWireHeaderBytes;
  const uint8_t* const iend = ip + h.index_bytes;
  if (h.index_encoding == IndexEncoding::kVarintDelta) {
    // Every varint takes at least one byte: a forged nnz above the section size is caught
    // before reserving memory for it.
    if (h.nnz > h.index_bytes) {
      return corrupt(s, "nnz " + std::to_string(h.nnz) + " needs at least " +
                            std::to_string(h.nnz) + " index bytes, the section has " +
                            std::to_string(h.index_bytes));
    }
    out.indices.resize(static_cast<size_t>(h.nnz));
    uint64_t prev = 0;
    for (int64_t i = 0; i < h.nnz; ++i) {
      uint64_t d = 0;
      int shift = 0;
      for (;;) {
        if (ip == iend) {
          return corrupt(s, "index section ends inside varint #" + std::to_string(i));
        }
        const uint8_t b = *ip++;
        // A uint32 gap needs at most 5 bytes, and the fifth may carry only 4 bits (28 + 4).
        if (shift == 28 && (b & 0xf0u) != 0) {
          return corrupt(s, "varint #" + std::to_string(i) + " overflows 32 bits");
        }
        d |= uint64_t{b & 0x7fu} << shift;
        if ((b & 0x80u) == 0) break;
        shift += 7;
      }
      const uint64_t idx = prev + d;
      if (i > 0 && d == 0) {
        return corrupt(s, "index " + std::to_string(idx) + " is not above the previous index " +
                              std::to_string(prev));
      }
      if (idx >= static_cast<uint64_t>(h.length)) {
        return corrupt(s, "index " + std::to_string(idx) + " is not below the length " +
                              std::to_string(h.length));
      }
      out.indices[static_cast<size_t>(i)] = static_cast<uint32_t>(idx);
      prev = idx;
    }
    if (ip != iend) {
      return corrupt(s, "index section has " + std::to_string(iend - ip) +
                            " bytes after the last of " + std::to_string(h.nnz) + " varints");
    }
  } else if (h.index_encoding == IndexEncoding::kBitmap) {
    int64_t set = 0;
    for (const uint8_t* q = ip; q != iend; ++q) set += std::popcount(*q);
    if (set != h.nnz) {
      return corrupt(s, "bitmap has " + std::to_string(set) + " bits set, header says nnz " +
                            std::to_string(h.nnz));
    }
    const int64_t tail = h.length & 7;
    if (tail != 0 && (ip[h.index_bytes - 1] >> tail) != 0) {
      return corrupt(s, "bitmap sets a bit at or beyond the length " + std::to_string(h.length));
    }
    out.indices.resize(static_cast<size_t>(h.nnz));
    size_t k = 0;
    for (int64_t byte = 0; byte < h.index_bytes; ++byte) {
      unsigned bits = ip[byte];
      while (bits != 0) {
        const int bit = std::countr_zero(bits);
        out.indices[k++] = static_cast<uint32_t>(byte * 8 + bit);
        bits &= bits - 1;
      }
    }
  }

  out.values.resize(static_cast<size_t>(h.nnz));
  const Status values_ok = value_codec::widen(h.value_type, iend, h.nnz, out.values.data());
  if (!values_ok.ok()) {
    return corrupt(s,
                   std::string(value_type_name(h.value_type)) + " values: " + values_ok.message());
  }
  return {};
}

}  // namespace fedsilo::mpi
