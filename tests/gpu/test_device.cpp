// The device layer itself: round trips, poisoning, errors as Status.
#include "gpu_test_util.h"

namespace fedsilo::test {
namespace {

class Device : public GpuTest {};

TEST_F(Device, RoundTripAndPoison) {
  const auto h = random_normal(1000, 1);
  auto d = to_device(h, stream_);
  EXPECT_EQ(to_host(d, stream_), h);
  auto p = poisoned<float>(10, stream_);
  for (float v : to_host(p, stream_)) EXPECT_TRUE(std::isnan(v));
}

TEST_F(Device, ImpossibleAllocationIsAStatusNamingTheCall) {
  auto a = kernels::cuda::DeviceArray<float>::create(size_t{1} << 50);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("cudaMalloc"), std::string::npos) << a.status().message();
}

}  // namespace
}  // namespace fedsilo::test
