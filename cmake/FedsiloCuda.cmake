# Optional CUDA backend: FEDSILO_CUDA=AUTO builds it whenever nvcc is found, ON requires it.
# Only the CUDA runtime (cudart) is linked, never the driver library, so a CUDA build still
# starts and runs on the CPU on a machine without a GPU driver.
set(FEDSILO_HAVE_CUDA OFF)
if(NOT FEDSILO_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures (90: H100/H200)")
    endif()
    # nvcc 13 compiles C++17 here: CMake 3.25 knows no CUDA20 flags for it, and libfedsilo
    # (C++20) carries the CUDA objects, so its CUDA dialect is pinned to 17 for every target.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(FEDSILO_HAVE_CUDA ON)
  elseif(FEDSILO_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FEDSILO_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()

if(FEDSILO_HAVE_CUDA)
  file(GLOB FEDSILO_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/kernels/cuda/*.cu)
  add_library(fedsilo_cuda OBJECT ${FEDSILO_CUDA_SOURCES})
  set_target_properties(fedsilo_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON
                                                CUDA_SEPARABLE_COMPILATION OFF
                                                CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_include_directories(fedsilo_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src
                                                  ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(fedsilo_cuda PUBLIC CUDA::cudart CUDA::cublas)
endif()
