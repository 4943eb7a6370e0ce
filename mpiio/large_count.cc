// The blocking MPI-4 large-count calls (MPI_File_read_c, ..., MPI_File_get_type_extent_c): the
// same paths as the classic forms with an MPI_Count count (PnetCDF and other MPI-4 codes call
// them). Files that are not stor's go on to MPICH.
#include "mpiio_internal.h"

using stor::mpiio::large_count_access;
using stor::mpiio::lookup;
using stor::mpiio::StorFile;

extern "C" {

int MPI_File_read_at_c(MPI_File fh, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type,
                       MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_read_at_c(fh, offset, buf, count, type, status);
  return large_count_access(f, &offset, buf, count, type, status, false, false);
}
int MPI_File_write_at_c(MPI_File fh, MPI_Offset offset, const void* buf, MPI_Count count, MPI_Datatype type,
                        MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_write_at_c(fh, offset, buf, count, type, status);
  return large_count_access(f, &offset, const_cast<void*>(buf), count, type, status, true, false);
}
int MPI_File_read_at_all_c(MPI_File fh, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type,
                           MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_read_at_all_c(fh, offset, buf, count, type, status);
  return large_count_access(f, &offset, buf, count, type, status, false, true);
}
int MPI_File_write_at_all_c(MPI_File fh, MPI_Offset offset, const void* buf, MPI_Count count, MPI_Datatype type,
                            MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_write_at_all_c(fh, offset, buf, count, type, status);
  return large_count_access(f, &offset, const_cast<void*>(buf), count, type, status, true, true);
}
int MPI_File_read_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_read_c(fh, buf, count, type, status);
  return large_count_access(f, nullptr, buf, count, type, status, false, false);
}
int MPI_File_write_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_write_c(fh, buf, count, type, status);
  return large_count_access(f, nullptr, const_cast<void*>(buf), count, type, status, true, false);
}
int MPI_File_read_all_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_read_all_c(fh, buf, count, type, status);
  return large_count_access(f, nullptr, buf, count, type, status, false, true);
}
int MPI_File_write_all_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_write_all_c(fh, buf, count, type, status);
  return large_count_access(f, nullptr, const_cast<void*>(buf), count, type, status, true, true);
}
int MPI_File_get_type_extent_c(MPI_File fh, MPI_Datatype type, MPI_Count* extent) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_get_type_extent_c(fh, type, extent);
  return stor::mpiio::file_type_extent(f, type, extent);
}

}  // extern "C"
