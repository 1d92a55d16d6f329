# Federations as sbatch jobs from `fedsilo slurm`: a whole run, requeue / USR1 restarts ending
# bitwise equal to an uninterrupted run, and scancel (SIGTERM: checkpoint, exit 7, no requeue).
foreach(mode federation template requeue usr1 scancel)
  fedsilo_slurm_test(slurm_job_${mode} ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm_jobs.sh ${mode})
endforeach()
