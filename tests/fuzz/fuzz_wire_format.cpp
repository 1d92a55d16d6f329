// libFuzzer harness for the wire-format decoder (not built by default). Any input must decode
// cleanly or fail with kCorruptData; a decoded payload must be well formed. Build and run:
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I src -I . \
//     tests/fuzz/fuzz_wire_format.cpp mpi/wire_format.cpp kernels/cpu/quantize.cpp \
//     src/core/status.cpp -o /tmp/fuzz_wire && /tmp/fuzz_wire -max_total_time=60
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mpi/wire_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fedsilo;
  mpi::DecodedPayload d;
  // The first byte picks the expected round and length check, so both paths are explored.
  const uint32_t round = size > 0 ? data[0] % 4 : 0;
  const Status st = mpi::decode_payload(std::span<const uint8_t>(data, size), {round, 3, -1}, d);
  if (!st.ok()) {
    if (st.code() != StatusCode::kCorruptData) std::abort();
    return 0;
  }
  if (d.values.size() != static_cast<size_t>(d.header.nnz)) std::abort();
  for (size_t k = 0; k < d.indices.size(); ++k) {
    if (d.indices[k] >= static_cast<uint64_t>(d.header.length)) std::abort();
    if (k > 0 && d.indices[k] <= d.indices[k - 1]) std::abort();
  }
  for (const float v : d.values) {
    if (!std::isfinite(v)) std::abort();
  }
  return 0;
}
