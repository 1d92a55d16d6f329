// The shared main() of the MPI GoogleTest binaries: MPI up before the tests, only rank 0 prints,
// every rank exits with the same code (77 where every test was skipped: see below). It also checks what no single rank can see: that every
// rank ran the same tests (a rank that skipped or lost one would otherwise pass unnoticed).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // [tests run, -tests run]: max == -min means every rank ran the same number.
  const auto* unit = ::testing::UnitTest::GetInstance();
  int ran[2] = {unit->test_to_run_count(), -unit->test_to_run_count()}, agree[2] = {0, 0};
  MPI_Allreduce(ran, agree, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (agree[0] != -agree[1]) {
    if (rank == 0) {
      std::fprintf(stderr, "FAILED: ranks ran different numbers of tests (%d to %d)\n", -agree[1],
                   agree[0]);
    }
    failed = 1;
  }
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  // 77 (ctest's SKIP_RETURN_CODE for the GPU tests) only when every rank skipped every test it
  // ran and nothing failed anywhere: one failing test is a failure, skipped neighbours or not.
  int skipped_all = unit->test_to_run_count() > 0 &&
                    unit->skipped_test_count() == unit->test_to_run_count() &&
                    unit->failed_test_count() == 0;
  int everywhere = 0;
  MPI_Allreduce(&skipped_all, &everywhere, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Finalize();
  return any != 0 ? any : everywhere != 0 ? 77 : 0;
}
