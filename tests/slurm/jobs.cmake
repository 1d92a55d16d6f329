# Federations as sbatch jobs from `fedsilo slurm`: a whole run, and requeue / USR1 restarts
# ending bitwise equal to an uninterrupted run.
foreach(mode federation template requeue usr1)
  fedsilo_slurm_test(slurm_job_${mode} ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm_jobs.sh ${mode})
endforeach()
