! The Fortran 2008 binding (`use mpi_f08`): MPICH's wrappers call PMPI_File_* directly for the
! calls that move no data (open, set_view, seek, get_info, close, ...), and MPI_File_* for the
! others. Run through ROMIO and through libstor_mpiio; the run script compares the files.
!   mpiio_fortran_f08 FILE MISSING_FILE
program mpiio_fortran_f08
  use mpi_f08
  implicit none
  type(MPI_File) :: fh, fh2
  type(MPI_Datatype) :: ftype
  type(MPI_Request) :: req
  type(MPI_Status) :: status
  type(MPI_Info) :: info
  integer :: ierr, rank, nprocs, i, j, cnt, cls, slen, amode
  integer :: gsizes(2), subsizes(2), starts(2)
  integer(kind=MPI_OFFSET_KIND) :: pos, fsize, base
  integer :: arr(6, 4), arr2(6, 4), blk(256), blkback(256)
  character(len=1024) :: fname, missing
  character(len=MPI_MAX_ERROR_STRING) :: msg
  character(len=MPI_MAX_INFO_VAL) :: val
  logical :: is_stor, atom, found

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs)
  call get_command_argument(1, fname)
  call get_command_argument(2, missing)
  is_stor = fname(1:5) == 'stor:'
  base = 4 * 6 * 4 * nprocs

  call MPI_File_set_errhandler(MPI_FILE_NULL, MPI_ERRORS_RETURN)
  call MPI_Info_create(info)
  call MPI_Info_set(info, 'cb_buffer_size', '8192')
  call MPI_File_open(MPI_COMM_WORLD, trim(fname), MPI_MODE_CREATE + MPI_MODE_RDWR, info, fh, ierr)
  call check(ierr, 'open')
  call MPI_Info_free(info)
  if (is_stor .neqv. (fh%MPI_VAL >= 2**30)) call fail('Fortran handle range', fh%MPI_VAL)
  call MPI_File_get_amode(fh, amode, ierr)
  call check(ierr, 'get_amode')
  if (amode /= MPI_MODE_CREATE + MPI_MODE_RDWR) call fail('get_amode', amode)

  ! 6 x (4*nprocs) integers, Fortran order, 4 columns per rank, through a subarray view.
  gsizes = (/ 6, 4 * nprocs /)
  subsizes = (/ 6, 4 /)
  starts = (/ 0, 4 * rank /)
  call MPI_Type_create_subarray(2, gsizes, subsizes, starts, MPI_ORDER_FORTRAN, MPI_INTEGER, ftype, ierr)
  call MPI_Type_commit(ftype)
  call MPI_File_set_view(fh, 0_MPI_OFFSET_KIND, MPI_INTEGER, ftype, 'native', MPI_INFO_NULL, ierr)
  call check(ierr, 'set_view')
  do j = 1, 4
    do i = 1, 6
      arr(i, j) = i * 100 + 4 * rank + j
    end do
  end do
  call MPI_File_write_all(fh, arr, 24, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_all')
  call MPI_Get_count(status, MPI_INTEGER, cnt)
  if (cnt /= 24) call fail('write_all count', cnt)
  call MPI_File_get_position(fh, pos, ierr)
  if (pos /= 24) call fail('get_position', int(pos))
  call MPI_File_seek(fh, 0_MPI_OFFSET_KIND, MPI_SEEK_SET, ierr)
  call check(ierr, 'seek')
  arr2 = 0
  call MPI_File_read_all(fh, arr2, 24, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_all')
  if (any(arr2 /= arr)) call fail('read_all data', rank)
  call MPI_Type_free(ftype)

  ! Nonblocking, completed by MPI_Wait.
  call MPI_File_set_view(fh, 0_MPI_OFFSET_KIND, MPI_BYTE, MPI_BYTE, 'native', MPI_INFO_NULL, ierr)
  blk = (/ (rank * 3 + i, i = 1, 256) /)
  call MPI_File_iwrite_at(fh, base + 1024 * rank, blk, 256, MPI_INTEGER, req, ierr)
  call check(ierr, 'iwrite_at')
  call MPI_Wait(req, status, ierr)
  call check(ierr, 'wait')
  call MPI_File_sync(fh, ierr)
  call MPI_Barrier(MPI_COMM_WORLD)
  call MPI_File_sync(fh, ierr)
  call MPI_File_read_at(fh, base + 1024 * mod(rank + 1, nprocs), blkback, 256, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at')
  if (any(blkback /= (/ (mod(rank + 1, nprocs) * 3 + i, i = 1, 256) /))) call fail('read_at data', rank)

  ! Noncontiguous array sections: the binding describes them with a derived datatype.
  call MPI_File_write_at(fh, base + 1024 * nprocs + 512 * rank, blk(1:256:2), 128, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_at of a strided section')
  blkback = 0
  call MPI_File_read_at(fh, base + 1024 * nprocs + 512 * rank, blkback(2:256:2), 128, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at into a strided section')
  if (any(blkback(2:256:2) /= blk(1:256:2)) .or. any(blkback(1:255:2) /= 0)) call fail('strided section data', rank)

  call MPI_File_set_atomicity(fh, .true., ierr)
  call check(ierr, 'set_atomicity')
  call MPI_File_get_atomicity(fh, atom, ierr)
  if (.not. atom) call fail('get_atomicity', 0)
  call MPI_File_set_atomicity(fh, .false., ierr)
  call MPI_File_get_info(fh, info, ierr)
  call check(ierr, 'get_info')
  call MPI_Info_get(info, 'cb_buffer_size', MPI_MAX_INFO_VAL, val, found)
  if (.not. found .or. trim(val) /= '8192') call fail('get_info cb_buffer_size '//trim(val), 0)
  call MPI_Info_free(info)
  call MPI_File_sync(fh, ierr)
  call MPI_Barrier(MPI_COMM_WORLD)
  call MPI_File_get_size(fh, fsize, ierr)
  if (fsize /= base + 1536 * nprocs) call fail('get_size', int(fsize))
  call MPI_File_close(fh, ierr)
  call check(ierr, 'close')
  if (fh /= MPI_FILE_NULL) call fail('close leaves MPI_FILE_NULL', fh%MPI_VAL)

  call MPI_File_open(MPI_COMM_WORLD, trim(fname), MPI_MODE_RDONLY, MPI_INFO_NULL, fh, ierr)
  call check(ierr, 'reopen')
  call MPI_File_write_at(fh, 0_MPI_OFFSET_KIND, blk, 1, MPI_INTEGER, status, ierr)
  call MPI_Error_class(ierr, cls)
  if (cls /= MPI_ERR_READ_ONLY .and. cls /= MPI_ERR_ACCESS) call fail('write on read-only: class', cls)
  call MPI_Error_string(ierr, msg, slen)
  if (is_stor .and. index(msg(1:slen), 'was opened MPI_MODE_RDONLY') == 0) call fail('read-only: '//msg(1:slen), 0)
  call MPI_File_close(fh, ierr)
  call MPI_File_open(MPI_COMM_WORLD, trim(missing), MPI_MODE_RDONLY, MPI_INFO_NULL, fh2, ierr)
  call MPI_Error_class(ierr, cls)
  if (cls /= MPI_ERR_NO_SUCH_FILE) call fail('open missing: class', cls)
  call MPI_Error_string(ierr, msg, slen)
  if (is_stor .and. index(msg(1:slen), 'NotFound') == 0) call fail('open missing: '//msg(1:slen), 0)

  call MPI_Barrier(MPI_COMM_WORLD)
  if (rank == 0) print '(a, i0, a)', 'mpiio_fortran_f08: OK (', nprocs, ' ranks)'
  call MPI_Finalize()

contains

  subroutine check(code, what)
    integer, intent(in) :: code
    character(len=*), intent(in) :: what
    character(len=MPI_MAX_ERROR_STRING) :: text
    integer :: l
    if (code == MPI_SUCCESS) return
    call MPI_Error_string(code, text, l)
    call fail(what//': '//text(1:l), code)
  end subroutine

  subroutine fail(what, value)
    character(len=*), intent(in) :: what
    integer, intent(in) :: value
    print '(a, i0, a, a, a, i0)', 'rank ', rank, ': FAILED ', what, ': ', value
    call MPI_Abort(MPI_COMM_WORLD, 1)
  end subroutine

end program mpiio_fortran_f08
