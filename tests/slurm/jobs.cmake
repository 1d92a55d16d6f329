# Federations as sbatch jobs from `fedsilo slurm`: a whole run, requeue / USR1 restarts ending
# bitwise equal to an uninterrupted run, and scancel (SIGTERM: checkpoint, exit 7, no requeue).
foreach(mode federation template requeue usr1 scancel)
  fedsilo_slurm_test(slurm_job_${mode} ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm_jobs.sh ${mode})
endforeach()

# A PyTorch binding federation (run.command, model.arch = "pytorch") as a job: USR1 mid-run,
# requeue, resume, model.h5 and model.pt. Skipped with the reason where the binding is not built.
if(TARGET fedsilo_python)
  set(FEDSILO_SLURM_PYTHON_DIR ${PROJECT_BINARY_DIR}/python)
else()
  set(FEDSILO_SLURM_PYTHON_DIR "")
endif()
fedsilo_slurm_test(slurm_job_torch_usr1 ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm_torch.sh)
set_property(TEST slurm_job_torch_usr1 APPEND PROPERTY ENVIRONMENT "FEDSILO_PYTHON_DIR=${FEDSILO_SLURM_PYTHON_DIR}")
