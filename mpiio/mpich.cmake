# Finds Debian's MPICH explicitly (openmpi may also be installed and own the mpicc/mpiexec
# alternatives). Included by mpiio/, tests/mpiio/ and bench/mpiio/; sets STOR_MPICH_FOUND,
# STOR_MPIEXEC and the PkgConfig::MPICH target.
option(STOR_WITH_MPI "Build the MPI-IO interposition library (libstor_mpiio.so) when MPICH is found" ON)
set(STOR_MPICH_FOUND OFF)
if(NOT STOR_WITH_MPI)
  if(NOT STOR_MPICH_REPORTED)
    message(STATUS "stor MPI-IO: disabled (STOR_WITH_MPI=OFF)")
    set(STOR_MPICH_REPORTED ON CACHE INTERNAL "")
  endif()
  return()
endif()
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND AND NOT TARGET PkgConfig::MPICH)
  pkg_check_modules(MPICH QUIET IMPORTED_TARGET GLOBAL mpich)
endif()
find_program(STOR_MPIEXEC NAMES mpiexec.mpich)
if(TARGET PkgConfig::MPICH AND STOR_MPIEXEC)
  set(STOR_MPICH_FOUND ON)
elseif(NOT STOR_MPICH_REPORTED)
  message(STATUS "stor MPI-IO: not built: MPICH not found (need pkg-config module 'mpich' and "
                 "mpiexec.mpich; apt-get install mpich libmpich-dev)")
  set(STOR_MPICH_REPORTED ON CACHE INTERNAL "")
endif()
