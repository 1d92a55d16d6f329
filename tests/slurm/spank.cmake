# The SPANK plugin (slurm/spank/spank_fedsilo.c) on the test cluster, which loads it: each task
# sees only its own silo (also when silo directories nest), the mounts never reach the host,
# every refused step fails before a task runs with one clear message (checked in srun and, with
# srun's check off, in slurmstepd), the plugin does nothing without its option, sbatch jobs, and
# fedsilo itself through the plugin. Without the plugin (no slurm/spank.h) the scripts skip.
set(FEDSILO_SPANK_TESTS ${CMAKE_CURRENT_SOURCE_DIR})
foreach(who root user)
  fedsilo_slurm_test(slurm_spank_isolation_${who} ${FEDSILO_SPANK_TESTS}/test_spank_isolation.sh ${who})
endforeach()
fedsilo_slurm_test(slurm_spank_nested ${FEDSILO_SPANK_TESTS}/test_spank_nested.sh)
fedsilo_slurm_test(slurm_spank_no_leak ${FEDSILO_SPANK_TESTS}/test_spank_no_leak.sh)
foreach(case malformed missing_dir duplicate task_count not_allowed unreachable plugstack)
  fedsilo_slurm_test(slurm_spank_error_${case} ${FEDSILO_SPANK_TESTS}/test_spank_errors.sh ${case})
endforeach()
fedsilo_slurm_test(slurm_spank_noop ${FEDSILO_SPANK_TESTS}/test_spank_noop.sh)
fedsilo_slurm_test(slurm_spank_sbatch ${FEDSILO_SPANK_TESTS}/test_spank_sbatch.sh)
fedsilo_slurm_test(slurm_spank_fedsilo ${FEDSILO_SPANK_TESTS}/test_spank_fedsilo.sh)
