// Error translation: stor::Status -> MPI error codes of the closest MPI error class that carry
// stor's message, so MPI_Error_class gives the class and MPI_Error_string says what went wrong.
// MPI_Add_error_code cannot do this: MPICH 4.0 gives codes under predefined classes no message
// slot (MPI_Error_string prints an unrelated message). MPICH's own MPIR_Err_create_code (what
// ROMIO calls; exported by libmpich) builds a proper code with an error stack.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "mpiio_internal.h"

extern "C" int MPIR_Err_create_code(int lastcode, int fatal, const char fcname[], int line, int error_class,
                                    const char generic_msg[], const char specific_msg[], ...);

namespace stor::mpiio {

namespace {

int error_class_of(Code c) {
  switch (c) {
    case Code::kOk: return MPI_SUCCESS;
    case Code::kInvalidArgument: return MPI_ERR_BAD_FILE;
    case Code::kNotFound: return MPI_ERR_NO_SUCH_FILE;
    case Code::kPermissionDenied: return MPI_ERR_ACCESS;
    case Code::kAlreadyExists: return MPI_ERR_FILE_EXISTS;
    case Code::kNoSpace: return MPI_ERR_NO_SPACE;
    case Code::kBusy: return MPI_ERR_FILE_IN_USE;
    case Code::kUnsupported: return MPI_ERR_UNSUPPORTED_OPERATION;
    case Code::kNotADirectory:
    case Code::kIsADirectory: return MPI_ERR_BAD_FILE;
    default: return MPI_ERR_IO;
  }
}

}  // namespace

namespace {

// A code of error_class whose MPI_Error_string is "<class text>, error stack:\n<where>(0): <text>".
// The specific message is our text itself (a plain format, no MPICH message key, so no MPICH
// wording such as "Other I/O error" is mixed into it).
int create_code(int error_class, const char* where, const std::string& text) {
  return MPIR_Err_create_code(MPI_SUCCESS, /*MPIR_ERR_RECOVERABLE*/ 0, where, 0, error_class, "**io", "%s",
                              text.c_str());
}

}  // namespace

int mpi_error(int error_class, const std::string& message) {
  if (error_class == MPI_SUCCESS) return MPI_SUCCESS;
  if (error_class == MPI_ERR_UNSUPPORTED_OPERATION || error_class == MPI_ERR_UNSUPPORTED_DATAREP)
    return create_code(error_class, "libstor_mpiio", "stor cannot serve this call: " + message);
  return create_code(error_class, "libstor_mpiio", "stor: " + message);
}

int to_mpi_error(const Status& s) {
  if (s.is_ok()) return MPI_SUCCESS;
  if (s.code() == Code::kUnsupported) return mpi_error(MPI_ERR_UNSUPPORTED_OPERATION, s.message());
  return mpi_error(error_class_of(s.code()), s.to_string());
}

int unsupported(StorFile* f, const char* call, const std::string& reason, int error_class) {
  return report(f, create_code(error_class, call,
                               std::string("stor cannot serve ") + call + (f ? " on " + f->name : std::string()) +
                                   ": " + reason));
}

int report(StorFile* f, int code) {
  if (code == MPI_SUCCESS) return code;
  MPI_Errhandler eh = MPI_ERRORS_RETURN;
  if (f) {
    eh = f->errhandler;
  } else {
    // Errors without a file (open, delete) go to MPI_FILE_NULL's handler.
    PMPI_File_get_errhandler(MPI_FILE_NULL, &eh);
  }
  if (eh == MPI_ERRORS_ARE_FATAL) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    PMPI_Error_string(code, text, &len);
    std::fprintf(stderr, "libstor_mpiio: fatal error (MPI_ERRORS_ARE_FATAL): %s\n", text);
    PMPI_Abort(f ? f->comm : MPI_COMM_WORLD, code);
  } else if (!f && eh != MPI_ERRORS_RETURN) {
    // A user handler on MPI_FILE_NULL: the standard says it is called with MPI_FILE_NULL.
    PMPI_File_call_errhandler(MPI_FILE_NULL, code);
  } else if (f && eh != MPI_ERRORS_RETURN) {
    // A user handler on a stor file: MPICH can only call it through ROMIO's file object, so we
    // call the function recorded when it was created (MPI_File_create_errhandler below).
    bool fortran = false;
    if (MPI_File_errhandler_function* fn = user_errhandler(eh, &fortran)) {
      if (fortran) {
        // A Fortran subroutine (made through mpif.h, use mpi or use mpi_f08): it takes the
        // file's Fortran handle and the code as default integers.
        using FortranHandler = void (*)(MPI_Fint*, MPI_Fint*);
        MPI_Fint fh = f->fint, fcode = code;
        reinterpret_cast<FortranHandler>(fn)(&fh, &fcode);
      } else {
        MPI_File fh = reinterpret_cast<MPI_File>(f);
        fn(&fh, &code);
      }
    }
  }
  return code;
}

namespace {
std::mutex g_errhandlers_mu;
// Every file error handler the program created, with its function. Never shrinks: a freed
// handler stays valid while a file still uses it, and the table is a few entries.
struct UserErrhandler {
  MPI_File_errhandler_function* fn = nullptr;
  bool fortran = false;  // created through MPICH's Fortran bindings
};
std::unordered_map<MPI_Errhandler, UserErrhandler>& errhandlers() {
  static auto* m = new std::unordered_map<MPI_Errhandler, UserErrhandler>();
  return *m;
}
}  // namespace

MPI_File_errhandler_function* user_errhandler(MPI_Errhandler eh, bool* fortran) {
  std::lock_guard lk(g_errhandlers_mu);
  auto it = errhandlers().find(eh);
  if (it == errhandlers().end()) return nullptr;
  if (fortran) *fortran = it->second.fortran;
  return it->second.fn;
}

int create_errhandler(MPI_File_errhandler_function* fn, MPI_Errhandler* eh, bool fortran) {
  static auto mpich = next_definition<decltype(&PMPI_File_create_errhandler)>("PMPI_File_create_errhandler");
  int rc = mpich(fn, eh);
  if (rc == MPI_SUCCESS && fn) {
    std::lock_guard lk(g_errhandlers_mu);
    errhandlers()[*eh] = {fn, fortran};
  }
  return rc;
}

int refuse(MPI_File fh, const char* call) {
  return unsupported(lookup(fh), call, "libstor_mpiio does not implement it (docs/mpiio.md lists what it does)");
}

Status agree(MPI_Comm comm, Status local) {
  int rank = 0;
  PMPI_Comm_rank(comm, &rank);
  struct {
    int failed;
    int rank;
  } mine{local.is_ok() ? 0 : 1, rank}, first{};
  // MAXLOC picks the lowest rank among those that failed.
  PMPI_Allreduce(&mine, &first, 1, MPI_2INT, MPI_MAXLOC, comm);
  if (!first.failed) return Status::ok();
  int code = static_cast<int>(local.code());
  PMPI_Bcast(&code, 1, MPI_INT, first.rank, comm);
  std::string msg = local.message();
  int len = static_cast<int>(msg.size());
  PMPI_Bcast(&len, 1, MPI_INT, first.rank, comm);
  msg.resize(static_cast<size_t>(len));
  PMPI_Bcast(msg.data(), len, MPI_CHAR, first.rank, comm);
  if (rank != first.rank) msg += " (on rank " + std::to_string(first.rank) + ")";
  return Status(static_cast<Code>(code), msg);
}

}  // namespace stor::mpiio

extern "C" int MPI_File_create_errhandler(MPI_File_errhandler_function* fn, MPI_Errhandler* eh) {
  // mpif.h / use mpi: MPICH's mpi_file_create_errhandler_ passes the Fortran subroutine here.
  return stor::mpiio::create_errhandler(
      fn, eh, stor::mpiio::called_by_fortran_binding(__builtin_return_address(0), "MPI_File_create_errhandler"));
}
