# The multi-node Slurm test (issue 4, section 4): 8 ranks on 4 emulated nodes (network namespaces,
# one slurmd each) under `srun -N 4 -n 8`, checked bitwise against a one-node run with 4 emulated
# nodes. It builds and tears down its own cluster (not the slurm_cluster fixture); root only,
# skipped (77) with the reason elsewhere. The lock keeps it from running beside itself.
add_test(NAME slurm_multinode COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/multinode.sh)
set_tests_properties(slurm_multinode PROPERTIES
  SKIP_RETURN_CODE 77
  TIMEOUT 600
  LABELS slurm
  RESOURCE_LOCK netns_cluster
  ENVIRONMENT "FEDSILO_BIN=$<TARGET_FILE:fedsilo>;FEDSILO_SOURCE_DIR=${PROJECT_SOURCE_DIR};FEDSILO_TEST_DIR=${CMAKE_CURRENT_BINARY_DIR}/tmp/slurm_multinode")
