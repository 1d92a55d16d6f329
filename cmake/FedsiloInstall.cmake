# Installation: the fedsilo command, the shared library and its headers, a CMake package
# (find_package(fedsilo) gives fedsilo::fedsilo), examples, job templates and modulefiles
# (Lmod and Tcl) with the install prefix filled in at install time.
include(CMakePackageConfigHelpers)

install(TARGETS fedsilo RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS fedsilo_lib EXPORT fedsiloTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
# Headers keep the include paths the sources use ("core/status.h", "mpi/comm.h").
install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fedsilo
        FILES_MATCHING PATTERN "*.h" PATTERN "cli" EXCLUDE)
foreach(dir kernels mpi)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fedsilo/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()
install(EXPORT fedsiloTargets NAMESPACE fedsilo::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedsilo)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fedsiloConfig.cmake.in
  ${PROJECT_BINARY_DIR}/fedsiloConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedsilo)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fedsiloConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fedsiloConfig.cmake ${PROJECT_BINARY_DIR}/fedsiloConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedsilo)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DATADIR}/fedsilo/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/slurm/ DESTINATION ${CMAKE_INSTALL_DATADIR}/fedsilo/slurm
        FILES_MATCHING PATTERN "*.sbatch" PATTERN "*.conf" PATTERN "spank" EXCLUDE)

# Modulefiles: filled in at install time, so `cmake --install build --prefix P` writes P's paths.
# PYTHONPATH: the PyTorch binding's package (FedsiloPython.cmake, included before this file);
# empty where the binding is not built.
set(FEDSILO_MODULE_LUA_IN ${PROJECT_SOURCE_DIR}/modulefiles/fedsilo.lua.in)
set(FEDSILO_MODULE_TCL_IN ${PROJECT_SOURCE_DIR}/modulefiles/fedsilo.tcl.in)
set(python_dir "")
if(FEDSILO_HAVE_PYTHON)
  set(python_dir "${FEDSILO_PYTHON_INSTALL_DIR}")
  if(NOT IS_ABSOLUTE "${python_dir}")
    set(python_dir "\${CMAKE_INSTALL_PREFIX}/${python_dir}")
  endif()
endif()
install(CODE "
  set(FEDSILO_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(FEDSILO_VERSION \"${PROJECT_VERSION}\")
  set(FEDSILO_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(FEDSILO_PYTHONPATH \"${python_dir}\")
  configure_file(\"${FEDSILO_MODULE_LUA_IN}\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/modulefiles/fedsilo/${PROJECT_VERSION}.lua\" @ONLY)
  configure_file(\"${FEDSILO_MODULE_TCL_IN}\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/modulefiles-tcl/fedsilo/${PROJECT_VERSION}\" @ONLY)
  message(STATUS \"Installing: modulefiles for \${CMAKE_INSTALL_PREFIX}\")
")
