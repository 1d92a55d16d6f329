# Cross toolchain for 64-bit ARM (aarch64) with Debian's g++-aarch64-linux-gnu; the binaries run
# under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR). Used by scripts/cross-aarch64.sh.
# Two ways to find the arm64 libraries:
# - multiarch (dpkg --add-architecture arm64; the kernel tests need only OpenBLAS): they live
#   in /usr/lib/aarch64-linux-gnu beside the amd64 ones;
# - a sysroot (the whole project): the environment variable FEDSILO_AARCH64_SYSROOT names a
#   folder with the arm64 packages unpacked into it. Debian 12's libhdf5-dev and libslurm-dev
#   are not Multi-Arch: same (they cannot be installed beside their amd64 versions), so the
#   whole project needs the sysroot. (An environment variable, not a cache entry, so that
#   CMake's try_compile projects see it too.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
if(DEFINED ENV{FEDSILO_AARCH64_SYSROOT})
  set(CMAKE_SYSROOT $ENV{FEDSILO_AARCH64_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH $ENV{FEDSILO_AARCH64_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;$ENV{FEDSILO_AARCH64_SYSROOT})
else()
  set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
endif()
