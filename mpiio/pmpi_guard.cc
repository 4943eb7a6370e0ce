// PMPI_File_* wrappers (generated: pmpi_guard.inc). libstor_mpiio serves stor files through the
// MPI_File_* entry points; a program (or tool) that calls PMPI_File_* itself bypasses them, and
// ROMIO would answer a stor handle with "Invalid file handle" and a "stor:" name with a file
// system error. These wrappers say what happened and forward everything else to MPICH.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mpiio_internal.h"

namespace stor::mpiio {

int bypassed(StorFile* f, const char* name, const char* call) {
  const std::string mpi_call = std::string(call).substr(1);  // PMPI_File_x -> MPI_File_x
  std::string reason = std::string(call) + " bypasses libstor_mpiio's interposition, which serves stor files only "
                       "through the MPI_File_* calls (call " + mpi_call + ")";
  if (f) return unsupported(f, call, reason);
  return unsupported(nullptr, (std::string(call) + " of " + name).c_str(), reason);
}

void* next_definition_of(const char* symbol) {
  void* p = ::dlsym(RTLD_NEXT, symbol);
  if (!p) {
    // Without MPICH's definition there is nothing to forward to: a broken link, not a runtime case.
    std::fprintf(stderr, "libstor_mpiio: %s not found after libstor_mpiio (link it before -lmpich)\n", symbol);
    std::abort();
  }
  return p;
}

}  // namespace stor::mpiio

#include "pmpi_guard.inc"
