// Wire format: round trips for every index encoding x value type, precise rejection of
// malformed payloads, and thousands of random and mutated buffers that must never crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/sparse_vector.h"
#include "mpi/wire_format.h"

namespace fedsilo::mpi {
namespace {

using kernels::SparseVector;
using kernels::ValueType;

constexpr ValueType kTypes[] = {ValueType::kFp32, ValueType::kFp16, ValueType::kBf16,
                                ValueType::kInt8};

// Values every type holds exactly: integers in [-127, 127] with +-127 in every int8 block of
// 256 (so the block scale is exactly 1), which fp16 (11 bits) and bf16 (8 bits) hold too.
SparseVector exact_vector(int64_t length, int64_t stride, int64_t offset) {
  SparseVector v;
  v.length = length;
  int64_t k = 0;
  for (int64_t i = offset; i < length; i += stride, ++k) {
    v.indices.push_back(static_cast<uint32_t>(i));
    const int64_t pos = k % kernels::kInt8BlockSize;
    v.values.push_back(pos == 0 ? (k % 2 ? -127.0f : 127.0f)
                                : static_cast<float>((k * 37) % 255 - 127));
  }
  return v;
}

void patch(std::vector<uint8_t>& b, size_t off, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

std::vector<uint8_t> encoded(const SparseVector& v, IndexChoice index,
                             ValueType t = ValueType::kFp32, uint32_t round = 6, int sender = 3) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(encode_sparse(v, round, sender, {t, index, Narrowing::kRound}, out).ok());
  return out;
}

std::string decode_error(const std::vector<uint8_t>& b, int64_t length = -1) {
  DecodedPayload d;
  const Status st = decode_payload(b, {6, 3, length}, d);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kCorruptData);
  return st.message();
}

TEST(WireFormat, RoundTripsEveryIndexEncodingAndValueTypeExactly) {
  for (const IndexChoice index :
       {IndexChoice::kVarintDelta, IndexChoice::kBitmap, IndexChoice::kAuto}) {
    for (const ValueType t : kTypes) {
      for (const auto& [length, stride, offset] :
           std::vector<std::tuple<int64_t, int64_t, int64_t>>{{0, 1, 0},
                                                              {1, 1, 0},
                                                              {1, 2, 1},
                                                              {9, 1, 0},
                                                              {1000, 3, 2},
                                                              {70000, 131, 5},
                                                              {5000, 1, 0},
                                                              {(int64_t{1} << 20) + 3, 977, 999}}) {
        const SparseVector v = exact_vector(length, stride, offset);
        for (const Narrowing narrowing : {Narrowing::kRound, Narrowing::kLosslessOrFp32}) {
          std::vector<uint8_t> b;
          ASSERT_TRUE(encode_sparse(v, 11, 2, {t, index, narrowing}, b).ok());
          DecodedPayload d;
          const Status st = decode_payload(b, {11, 2, length}, d);
          ASSERT_TRUE(st.ok()) << st.message();
          EXPECT_EQ(d.header.value_type, t) << value_type_name(t);  // no fp32 fallback
          if (index == IndexChoice::kBitmap) {
            EXPECT_EQ(d.header.index_encoding, IndexEncoding::kBitmap);
          }
          if (index == IndexChoice::kVarintDelta) {
            EXPECT_EQ(d.header.index_encoding, IndexEncoding::kVarintDelta);
          }
          EXPECT_EQ(d.indices, v.indices);
          EXPECT_EQ(d.values, v.values) << value_type_name(t) << " length " << length;
          EXPECT_EQ(d.header.nnz, v.nnz());
        }
      }
    }
  }
}

TEST(WireFormat, AutoPicksTheSmallerIndexCoding) {
  // 1 in 100: one varint byte per index beats a bitmap's 100 bits; 1 in 2 the other way.
  auto sparse = encoded(exact_vector(100000, 100, 0), IndexChoice::kAuto);
  auto dense = encoded(exact_vector(100000, 2, 0), IndexChoice::kAuto);
  DecodedPayload d;
  ASSERT_TRUE(decode_payload(sparse, {6, 3, -1}, d).ok());
  EXPECT_EQ(d.header.index_encoding, IndexEncoding::kVarintDelta);
  EXPECT_EQ(d.header.index_bytes, 1000);
  ASSERT_TRUE(decode_payload(dense, {6, 3, -1}, d).ok());
  EXPECT_EQ(d.header.index_encoding, IndexEncoding::kBitmap);
  EXPECT_EQ(d.header.index_bytes, 12500);
  EXPECT_EQ(static_cast<int64_t>(dense.size()), kWireHeaderBytes + 12500 + 4 * 50000);
}

TEST(WireFormat, DensePayloadRoundTripsForEveryValueType) {
  for (const ValueType t : kTypes) {
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{300}, int64_t{1} << 16}) {
      const SparseVector v = exact_vector(n, 1, 0);
      std::vector<uint8_t> b;
      ASSERT_TRUE(encode_dense(v.values, 4, 1, {t, IndexChoice::kAuto, Narrowing::kRound}, b).ok());
      EXPECT_EQ(static_cast<int64_t>(b.size()), kWireHeaderBytes + wire_value_bytes(t, n));
      DecodedPayload d;
      ASSERT_TRUE(decode_payload(b, {4, 1, n}, d).ok());
      EXPECT_TRUE(d.dense());
      EXPECT_TRUE(d.indices.empty());
      EXPECT_EQ(d.values, v.values);
    }
  }
}

TEST(WireFormat, LosslessNarrowingFallsBackToFp32WhenValuesWouldChange) {
  SparseVector v;
  v.length = 10;
  v.indices = {1, 4};
  v.values = {0.1f, -3.0f};  // 0.1 is not an fp16 or bf16 value
  for (const ValueType t : {ValueType::kFp16, ValueType::kBf16, ValueType::kInt8}) {
    std::vector<uint8_t> b;
    ASSERT_TRUE(
        encode_sparse(v, 0, 0, {t, IndexChoice::kAuto, Narrowing::kLosslessOrFp32}, b).ok());
    DecodedPayload d;
    ASSERT_TRUE(decode_payload(b, {0, 0, 10}, d).ok());
    EXPECT_EQ(d.header.value_type, ValueType::kFp32);
    EXPECT_EQ(d.values, v.values);
  }
}

TEST(WireFormat, Fp16RoundsToNearestEvenAndRefusesOverflow) {
  SparseVector v;
  v.length = 3;
  v.indices = {0, 1, 2};
  v.values = {1.0f + 0x1.0p-11f, 1.0f + 3 * 0x1.0p-11f, -2.5f};  // ties: to 1.0 and 1 + 2^-9
  auto b = encoded(v, IndexChoice::kAuto, ValueType::kFp16);
  DecodedPayload d;
  ASSERT_TRUE(decode_payload(b, {6, 3, 3}, d).ok());
  EXPECT_EQ(d.values, (std::vector<float>{1.0f, 1.0f + 0x1.0p-9f, -2.5f}));
  v.values[1] = 70000.0f;
  std::vector<uint8_t> out;
  const Status st =
      encode_sparse(v, 0, 0, {ValueType::kFp16, IndexChoice::kAuto, Narrowing::kRound}, out);
  EXPECT_EQ(st.code(), StatusCode::kDiverged);
  EXPECT_TRUE(out.empty());
}

TEST(WireFormat, EncoderRejectsMalformedVectors) {
  SparseVector v;
  v.length = 10;
  v.indices = {3, 3};
  v.values = {1.0f, 2.0f};
  std::vector<uint8_t> out;
  EXPECT_EQ(encode_sparse(v, 0, 0, {}, out).code(), StatusCode::kInvalidArgument);
  v.indices = {3, 10};
  EXPECT_EQ(encode_sparse(v, 0, 0, {}, out).code(), StatusCode::kInvalidArgument);
  v.indices = {3};
  EXPECT_EQ(encode_sparse(v, 0, 0, {}, out).code(), StatusCode::kInvalidArgument);
  v.indices = {3, 4};
  v.values = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_EQ(encode_sparse(v, 0, 0, {}, out).code(), StatusCode::kDiverged);
  EXPECT_TRUE(out.empty());
}

TEST(WireFormat, DecoderNamesTheSenderAndTheFault) {
  SparseVector v;
  v.length = 100;
  v.indices = {5, 17, 18};
  v.values = {1.0f, 2.0f, 3.0f};
  const auto good = encoded(v, IndexChoice::kVarintDelta);
  ASSERT_EQ(good.size(), 48u + 3 + 12);  // varints 5, 12, 1: one byte each

  auto b = good;
  b[50] = 0;  // third gap 1 -> 0: a repeated index
  EXPECT_EQ(decode_error(b), "payload from rank 3: index 17 is not above the previous index 17");

  b = good;
  b[49] = 95;  // 5 + 95 = 100
  EXPECT_EQ(decode_error(b), "payload from rank 3: index 100 is not below the length 100");

  EXPECT_EQ(decode_error(std::vector<uint8_t>(good.begin(), good.begin() + 10)),
            "payload from rank 3: 10 bytes, shorter than the 48-byte header");

  b = good;
  b[0] ^= 1;
  EXPECT_EQ(decode_error(b).rfind("payload from rank 3: bad magic 0x", 0), 0u);

  b = good;
  patch(b, 4, 2, 2);
  EXPECT_EQ(decode_error(b), "payload from rank 3: wire version 2, this build reads version 1");

  b = good;
  patch(b, 8, 5, 4);
  EXPECT_EQ(decode_error(b), "payload from rank 3: round 5, expected round 6");

  b = good;
  patch(b, 12, 4, 4);
  EXPECT_EQ(decode_error(b), "payload from rank 3: header names sender 4");

  EXPECT_EQ(decode_error(good, 101), "payload from rank 3: length 100, expected 101");

  b = good;
  b[6] = 9;
  EXPECT_EQ(decode_error(b), "payload from rank 3: unknown index encoding 9");
  b = good;
  b[7] = 4;
  EXPECT_EQ(decode_error(b), "payload from rank 3: unknown value type 4");

  b = good;
  b.push_back(0);
  EXPECT_EQ(decode_error(b),
            "payload from rank 3: header and sections make 63 bytes but the buffer has 64");

  b = good;
  patch(b, 24, 101, 8);
  EXPECT_EQ(decode_error(b), "payload from rank 3: nnz 101 is above the length 100");

  b = good;
  patch(b, 24, 2, 8);  // nnz 2 -> value section should be 8 bytes
  EXPECT_EQ(decode_error(b),
            "payload from rank 3: value section is 12 bytes; 2 fp32 values need 8");

  b = good;
  patch(b, 40, uint64_t{1} << 62, 8);
  EXPECT_NE(decode_error(b).find("exceed the 63-byte buffer"), std::string::npos);

  b = good;
  const float nan = std::numeric_limits<float>::infinity();
  std::memcpy(b.data() + 48 + 3 + 4, &nan, 4);
  EXPECT_EQ(decode_error(b), "payload from rank 3: fp32 values: decoded value 1 is not finite");
}

TEST(WireFormat, DecoderRejectsVarintOverflowAndLeftoverBytes) {
  SparseVector v;
  v.length = 100;
  v.indices = {1, 2};
  v.values = {1.0f, 2.0f};
  auto good = encoded(v, IndexChoice::kVarintDelta);  // varints: 1, 1
  // Six-byte varint (continuation on the fifth byte) in a section sized to hold it.
  std::vector<uint8_t> b(good.begin(), good.begin() + 48);
  for (int i = 0; i < 5; ++i) b.push_back(0xff);
  b.push_back(0x01);
  b.push_back(0x01);
  patch(b, 32, 7, 8);
  for (int i = 0; i < 8; ++i) b.push_back(good[48 + 2 + i]);
  EXPECT_EQ(decode_error(b), "payload from rank 3: varint #0 overflows 32 bits");

  // A section one byte longer than its two varints.
  b.assign(good.begin(), good.begin() + 50);
  b.push_back(0);
  b.insert(b.end(), good.begin() + 50, good.end());
  patch(b, 32, 3, 8);
  EXPECT_EQ(decode_error(b),
            "payload from rank 3: index section has 1 bytes after the last of 2 varints");

  // A section that ends inside a varint.
  b.assign(good.begin(), good.begin() + 49);
  b.push_back(0x81);
  b.insert(b.end(), good.begin() + 50, good.end());
  EXPECT_EQ(decode_error(b), "payload from rank 3: index section ends inside varint #1");
}

TEST(WireFormat, DecoderChecksBitmapsAgainstNnzAndLength) {
  SparseVector v;
  v.length = 12;  // 2 bitmap bytes, 4 bits unused
  v.indices = {0, 9};
  v.values = {1.0f, 2.0f};
  const auto good = encoded(v, IndexChoice::kBitmap);
  auto b = good;
  b[48] |= 0x02;
  EXPECT_EQ(decode_error(b), "payload from rank 3: bitmap has 3 bits set, header says nnz 2");
  b = good;
  b[48] &= 0xfe;
  b[49] |= 0x80;  // bit 15 >= length 12
  EXPECT_EQ(decode_error(b), "payload from rank 3: bitmap sets a bit at or beyond the length 12");
  b = good;
  patch(b, 32, 3, 8);
  EXPECT_NE(decode_error(b).find("bitmap is 3 bytes; length 12 needs 2"), std::string::npos);
}

TEST(WireFormat, DecoderRejectsBadInt8ScalesAndNonFiniteHalves) {
  SparseVector v;
  v.length = 4;
  v.indices = {0, 1};
  v.values = {127.0f, -3.0f};
  auto b = encoded(v, IndexChoice::kVarintDelta, ValueType::kInt8);
  const float bad = -1.0f;
  std::memcpy(b.data() + 48 + 2, &bad, 4);
  EXPECT_NE(decode_error(b).find("payload from rank 3: int8 values: int8 block 0 has scale"),
            std::string::npos);
  b = encoded(v, IndexChoice::kVarintDelta, ValueType::kFp16);
  b[48 + 2 + 3] = 0x7c;  // second half becomes +inf (0x7c00)
  b[48 + 2 + 2] = 0x00;
  EXPECT_NE(decode_error(b).find("not finite"), std::string::npos);
}

// Decoding must either succeed with a well-formed vector or fail cleanly, whatever the bytes.
void check_survives(const std::vector<uint8_t>& b) {
  DecodedPayload d;
  const Status st = decode_payload(b, {6, 3, -1}, d);
  if (!st.ok()) {
    ASSERT_EQ(st.code(), StatusCode::kCorruptData);
    ASSERT_EQ(st.message().rfind("payload from rank 3: ", 0), 0u) << st.message();
    return;
  }
  ASSERT_EQ(d.values.size(), static_cast<size_t>(d.header.nnz));
  for (size_t k = 0; k < d.indices.size(); ++k) {
    ASSERT_LT(d.indices[k], static_cast<uint64_t>(d.header.length));
    if (k > 0) {
      ASSERT_GT(d.indices[k], d.indices[k - 1]);
    }
  }
  for (float x : d.values) ASSERT_TRUE(std::isfinite(x));
}

TEST(WireFormat, RandomAndMutatedBuffersNeverCrash) {
  std::mt19937_64 rng(12345);
  std::vector<std::vector<uint8_t>> seeds;
  for (const ValueType t : kTypes) {
    for (const IndexChoice ix : {IndexChoice::kVarintDelta, IndexChoice::kBitmap}) {
      seeds.push_back(encoded(exact_vector(3000, 7, 1), ix, t));
      seeds.push_back(encoded(exact_vector(40, 1, 0), ix, t));
    }
    std::vector<uint8_t> b;
    ASSERT_TRUE(encode_dense(exact_vector(600, 1, 0).values, 6, 3,
                             {t, IndexChoice::kAuto, Narrowing::kRound}, b)
                    .ok());
    seeds.push_back(b);
  }
  int accepted = 0;
  for (int it = 0; it < 20000; ++it) {
    std::vector<uint8_t> b = seeds[rng() % seeds.size()];
    switch (rng() % 5) {
      case 0:  // flip a few bytes anywhere
        for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) b[rng() % b.size()] ^= rng();
        break;
      case 1:  // flip bytes in the header only
        for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) b[rng() % 48] ^= rng();
        break;
      case 2:  // truncate or extend
        b.resize(rng() % (b.size() + 16));
        break;
      case 3:  // random section sizes and counts
        patch(b, 16 + 8 * (rng() % 4), rng() % 5000, 8);
        break;
      default:  // pure noise behind a valid-looking prefix
        for (size_t i = 16 + rng() % 32; i < b.size(); ++i) b[i] = static_cast<uint8_t>(rng());
        break;
    }
    check_survives(b);
    DecodedPayload d;
    if (decode_payload(b, {6, 3, -1}, d).ok()) ++accepted;
  }
  for (int it = 0; it < 2000; ++it) {
    std::vector<uint8_t> b(rng() % 200);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    check_survives(b);
  }
  // Some mutations (a value byte) leave a valid payload; most must be caught.
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace fedsilo::mpi
