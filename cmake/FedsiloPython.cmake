# The PyTorch binding: the Python package `fedsilo` (fedsilo.torch) and its C++ module
# fedsilo._core (pybind11). The module links the library's objects itself, so it is
# self-contained: the same build serves the build tree (tests: PYTHONPATH=BUILD/python),
# `cmake --install` (PREFIX/lib/fedsilo/python, which the modulefiles put on PYTHONPATH) and
# `pip install .` (scikit-build-core installs the package into the environment).
set(FEDSILO_PYTHON AUTO CACHE STRING "Build the PyTorch binding: AUTO (when Python and pybind11 are found), ON, OFF")
set_property(CACHE FEDSILO_PYTHON PROPERTY STRINGS AUTO ON OFF)
set(FEDSILO_PYTHON_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/fedsilo/python" CACHE STRING
    "Where `cmake --install` puts the Python package (relative to the prefix)")
set(FEDSILO_HAVE_PYTHON OFF)
if(NOT FEDSILO_PYTHON STREQUAL "OFF")
  set(required "")
  if(FEDSILO_PYTHON STREQUAL "ON")
    set(required REQUIRED)
  endif()
  # Debian's python3 (the one with python3-torch), not a pyenv or venv interpreter found first.
  if(NOT DEFINED Python_EXECUTABLE AND NOT DEFINED SKBUILD AND EXISTS /usr/bin/python3)
    set(Python_EXECUTABLE /usr/bin/python3)
  endif()
  find_package(Python 3.9 COMPONENTS Interpreter Development.Module ${required})
  if(Python_FOUND)
    find_package(pybind11 2.6 CONFIG ${required})
  endif()
  if(Python_FOUND AND pybind11_FOUND)
    set(FEDSILO_HAVE_PYTHON ON)
  endif()
endif()

if(FEDSILO_HAVE_PYTHON)
  set(pkg_dir ${PROJECT_BINARY_DIR}/python/fedsilo)
  pybind11_add_module(fedsilo_python MODULE NO_EXTRAS ${PROJECT_SOURCE_DIR}/src/python/binding.cpp)
  set_target_properties(fedsilo_python PROPERTIES OUTPUT_NAME _core LIBRARY_OUTPUT_DIRECTORY ${pkg_dir})
  foreach(layer core kernels comm federation)
    target_sources(fedsilo_python PRIVATE $<TARGET_OBJECTS:fedsilo_${layer}>)
    target_include_directories(fedsilo_python PRIVATE ${PROJECT_BINARY_DIR}/layers/${layer})
  endforeach()
  target_include_directories(fedsilo_python PRIVATE ${PROJECT_BINARY_DIR}/layers/cli)
  target_compile_definitions(fedsilo_python PRIVATE FEDSILO_VERSION="${PROJECT_VERSION}")
  target_link_libraries(fedsilo_python PRIVATE fedsilo_options MPI::MPI_C hdf5::hdf5 fedsilo::openblas
                        OpenMP::OpenMP_CXX ZLIB::ZLIB tomlplusplus::tomlplusplus
                        nlohmann_json::nlohmann_json spdlog::spdlog fmt::fmt PkgConfig::sodium
                        OpenSSL::Crypto)
  if(FEDSILO_HAVE_CUDA)
    target_sources(fedsilo_python PRIVATE $<TARGET_OBJECTS:fedsilo_cuda>)
    target_link_libraries(fedsilo_python PRIVATE CUDA::cudart CUDA::cublas)
  endif()
  if(FEDSILO_HAVE_NCCL)
    target_link_libraries(fedsilo_python PRIVATE fedsilo::nccl)
  endif()
  # The package's Python files beside the module (copied on every build, so edits take effect).
  file(GLOB FEDSILO_PY_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/python/fedsilo/*.py)
  set(copied "")
  foreach(f ${FEDSILO_PY_FILES})
    get_filename_component(name ${f} NAME)
    add_custom_command(OUTPUT ${pkg_dir}/${name} COMMAND ${CMAKE_COMMAND} -E copy ${f} ${pkg_dir}/${name}
                       DEPENDS ${f} COMMENT "fedsilo python: ${name}")
    list(APPEND copied ${pkg_dir}/${name})
  endforeach()
  add_custom_target(fedsilo_python_files ALL DEPENDS ${copied})
  add_dependencies(fedsilo_python fedsilo_python_files)

  # `fedsilo slurm` run from an install puts the installed package on a run.command job's
  # PYTHONPATH: where it is, seen from the installed command's directory.
  if(IS_ABSOLUTE "${FEDSILO_PYTHON_INSTALL_DIR}")
    set(from_bindir "${FEDSILO_PYTHON_INSTALL_DIR}")
  else()
    file(RELATIVE_PATH from_bindir /prefix/${CMAKE_INSTALL_BINDIR} /prefix/${FEDSILO_PYTHON_INSTALL_DIR})
  endif()
  target_compile_definitions(fedsilo_cli PRIVATE FEDSILO_PYTHON_FROM_BINDIR="${from_bindir}")

  if(DEFINED SKBUILD)  # pip install .: the package goes to the wheel's root
    set(py_dest ".")
  else()
    set(py_dest "${FEDSILO_PYTHON_INSTALL_DIR}")
  endif()
  install(TARGETS fedsilo_python LIBRARY DESTINATION ${py_dest}/fedsilo COMPONENT python)
  install(FILES ${FEDSILO_PY_FILES} DESTINATION ${py_dest}/fedsilo COMPONENT python)
endif()
