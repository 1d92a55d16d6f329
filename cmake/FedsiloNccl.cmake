# Optional NCCL for the dense node-local reduction between GPUs (mpi/device_allreduce.cpp):
# FEDSILO_NCCL=AUTO uses it when the CUDA backend is built and NCCL is found, ON requires it,
# OFF leaves it out (GPU ranks then reduce through pinned host buffers and MPI).
# NCCL ships no CMake package: its header and library are found with the CUDA toolkit's folders
# (where the NVIDIA packages put it, e.g. /usr/local/cuda) and NCCL_ROOT / $NCCL_HOME as hints.
set(FEDSILO_HAVE_NCCL OFF)
set(FEDSILO_NCCL_VERSION "")
if(NOT FEDSILO_NCCL STREQUAL "OFF" AND FEDSILO_HAVE_CUDA)
  set(_fedsilo_nccl_hints ${NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_ROOT})
  find_path(FEDSILO_NCCL_INCLUDE_DIR nccl.h
            HINTS ${_fedsilo_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(FEDSILO_NCCL_LIBRARY nccl
               HINTS ${_fedsilo_nccl_hints} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(FEDSILO_NCCL_INCLUDE_DIR AND FEDSILO_NCCL_LIBRARY)
    file(STRINGS ${FEDSILO_NCCL_INCLUDE_DIR}/nccl.h _fedsilo_nccl_defs
         REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
    foreach(_part MAJOR MINOR PATCH)
      string(REGEX REPLACE ".*NCCL_${_part} +([0-9]+).*" "\\1" _v "${_fedsilo_nccl_defs}")
      list(APPEND _fedsilo_nccl_version ${_v})
    endforeach()
    list(JOIN _fedsilo_nccl_version "." FEDSILO_NCCL_VERSION)
    add_library(fedsilo::nccl UNKNOWN IMPORTED)
    set_target_properties(fedsilo::nccl PROPERTIES IMPORTED_LOCATION ${FEDSILO_NCCL_LIBRARY}
                          INTERFACE_INCLUDE_DIRECTORIES ${FEDSILO_NCCL_INCLUDE_DIR})
    set(FEDSILO_HAVE_NCCL ON)
  endif()
endif()
if(FEDSILO_NCCL STREQUAL "ON" AND NOT FEDSILO_HAVE_NCCL)
  if(NOT FEDSILO_HAVE_CUDA)
    message(FATAL_ERROR "FEDSILO_NCCL=ON needs the CUDA backend (FEDSILO_CUDA is ${FEDSILO_CUDA} "
                        "and no CUDA compiler is in use)")
  endif()
  message(FATAL_ERROR "FEDSILO_NCCL=ON but nccl.h / libnccl were not found "
                      "(set NCCL_ROOT to the folder holding include/nccl.h and lib/libnccl.so)")
endif()
