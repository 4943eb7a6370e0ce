// PMPI_File_* wrappers (generated: pmpi_guard.inc). libstor_mpiio serves stor files through the
// MPI_File_* entry points; a program (or tool) that calls PMPI_File_* itself bypasses them, and
// ROMIO would answer a stor handle with "Invalid file handle" and a "stor:" name with a file
// system error. These wrappers say what happened and forward everything else to MPICH, except
// the calls of MPICH's Fortran bindings (use mpi_f08), which go to our MPI_File_* (see below).
#include <dlfcn.h>

#include <cctype>
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

void* own_definition_of(const char* symbol) {
  // dlsym on our own object's handle searches it first, whatever the preload order.
  static void* self = [] {
    Dl_info info{};
    void* h = nullptr;
    if (::dladdr(reinterpret_cast<void*>(&own_definition_of), &info) && info.dli_fname)
      h = ::dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    return h;
  }();
  void* p = self ? ::dlsym(self, symbol) : nullptr;
  if (!p) {
    std::fprintf(stderr, "libstor_mpiio: its own %s not found\n", symbol);
    std::abort();
  }
  return p;
}

bool called_by_fortran_binding(void* return_address, const char* call) {
  // The binding of MPI_File_x is a function named, in lower case, mpi_file_x with gfortran's
  // decorations (mpif.h / use mpi: mpi_file_x_, pmpi_file_x_, ...; use mpi_f08: mpi_file_x_f08_,
  // pmpir_file_x_f08_), exported by libmpichfort: the nearest dynamic symbol below the return
  // address names it.
  Dl_info info{};
  if (!::dladdr(return_address, &info) || !info.dli_sname) return false;
  std::string caller(info.dli_sname);
  for (char& c : caller) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string x(call);
  x = x.substr(x.find("MPI_") + 4);  // File_x
  for (char& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* prefix : {"mpi_", "pmpi_", "pmpir_"}) {
    if (caller.rfind(prefix, 0) != 0 || caller.compare(std::strlen(prefix), x.size(), x) != 0) continue;
    const std::string rest = caller.substr(std::strlen(prefix) + x.size());
    if (rest.empty() || rest == "_" || rest == "__" || rest == "_f08_" || rest == "_f08") return true;
  }
  return false;
}

}  // namespace stor::mpiio

// MPICH's Fortran 2008 binding also calls these PMPI_ forms itself (mpi_init_f08_,
// mpi_file_create_errhandler_f08_): from there they are the program's MPI_ calls, which
// libstor_mpiio serves (thread level for delegation, the handler's function recorded).
extern "C" int PMPI_Init(int* argc, char*** argv) {
  if (stor::mpiio::called_by_fortran_binding(__builtin_return_address(0), "PMPI_Init")) {
    static auto own = stor::mpiio::own_definition<decltype(&PMPI_Init)>("MPI_Init");
    return own(argc, argv);
  }
  static auto next = stor::mpiio::next_definition<decltype(&PMPI_Init)>("PMPI_Init");
  return next(argc, argv);
}
extern "C" int PMPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  if (stor::mpiio::called_by_fortran_binding(__builtin_return_address(0), "PMPI_Init_thread")) {
    static auto own = stor::mpiio::own_definition<decltype(&PMPI_Init_thread)>("MPI_Init_thread");
    return own(argc, argv, required, provided);
  }
  static auto next = stor::mpiio::next_definition<decltype(&PMPI_Init_thread)>("PMPI_Init_thread");
  return next(argc, argv, required, provided);
}
extern "C" int PMPI_File_create_errhandler(MPI_File_errhandler_function* fn, MPI_Errhandler* eh) {
  if (stor::mpiio::called_by_fortran_binding(__builtin_return_address(0), "PMPI_File_create_errhandler"))
    return stor::mpiio::create_errhandler(fn, eh, true);
  static auto next = stor::mpiio::next_definition<decltype(&PMPI_File_create_errhandler)>("PMPI_File_create_errhandler");
  return next(fn, eh);
}

#include "pmpi_guard.inc"
