// main() of the GPU GoogleTest binary: exits 77 (ctest's SKIP_RETURN_CODE) only when every test
// that ran was skipped (no device) and none failed, so ctest reports a skip for exactly that
// case and a failure for any failing test, skipped neighbours or not.
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  const auto* unit = ::testing::UnitTest::GetInstance();
  const bool all_skipped = unit->test_to_run_count() > 0 &&
                           unit->skipped_test_count() == unit->test_to_run_count() &&
                           unit->failed_test_count() == 0;
  return rc != 0 ? rc : all_skipped ? 77 : 0;
}
