! An ordinary Fortran 90 MPI-IO program (`use mpi`, or mpif.h when built with -DUSE_MPIF_H),
! run through ROMIO on a plain file and through libstor_mpiio on a stor: file; the run script
! compares the two files byte for byte. Every check that fails aborts with a message.
!   mpiio_fortran FILE MISSING_FILE
! Regions of FILE (bytes): 0 header (rank 0, write_at); 64 + 64*r: 16 integers per rank
! (write_at); R2: 8 doubles per rank at the individual pointer (seek + write); R3: a
! 12 x (5*nprocs) integer array, Fortran order, column blocks per rank through a subarray view
! (write_all/read_all); R4: a 10 x 8 array distributed cyclic(2) x block over nprocs x 1
! (darray view); R5: iwrite_at + MPI_Wait; R6: write_ordered (rank+1 integers each); R7: a
! filetype built with MPI_Type_hvector (MPI-1 name) and MPI_Type_create_hvector.
program mpiio_fortran
#ifdef USE_MPIF_H
  implicit none
  include 'mpif.h'
#else
  use mpi
  implicit none
#endif
  integer :: ierr, rank, nprocs, fh, fh2, i, j, n, cls, slen, amode, req, cnt
  integer :: status(MPI_STATUS_SIZE)
  integer :: eh, seen_fh, seen_code
  common /errh/ seen_fh, seen_code
  external :: on_error
  integer :: info, nkeys, ftype, ftype2, darr, hv, hv2
  integer :: gsizes(2), subsizes(2), starts(2), distribs(2), dargs(2), psizes(2)
  integer(kind=MPI_OFFSET_KIND) :: off, r2, r3, r4, r5, r6, r7, pos, fsize
  integer(kind=MPI_ADDRESS_KIND) :: stride
  integer :: hdr(16), mine(16), back(16), arr(12, 5), arr2(12, 5), ord(8), ordback(8)
  integer :: dar(40), darback(40), hvbuf(12), hvback(12), big(1024), bigback(1024)
  double precision :: d(8), dback(8)
  character(len=1024) :: fname, missing
  character(len=MPI_MAX_ERROR_STRING) :: msg
  character(len=MPI_MAX_INFO_VAL) :: val
  logical :: is_stor, atom, found

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  call get_command_argument(1, fname)
  call get_command_argument(2, missing)
  is_stor = fname(1:5) == 'stor:'
  r2 = 64 + 64 * nprocs
  r3 = r2 + 64 * nprocs
  r4 = r3 + 4 * 12 * 5 * nprocs
  r5 = r4 + 4 * 10 * 8 * nprocs
  r6 = r5 + 4 * 1024 * nprocs
  r7 = r6 + 4 * (nprocs * (nprocs + 1)) / 2

  call MPI_File_set_errhandler(MPI_FILE_NULL, MPI_ERRORS_RETURN, ierr)
  call MPI_Info_create(info, ierr)
  call MPI_Info_set(info, 'cb_buffer_size', '4096', ierr)
  call MPI_File_open(MPI_COMM_WORLD, trim(fname), MPI_MODE_CREATE + MPI_MODE_RDWR, info, fh, ierr)
  call check(ierr, 'open')
  call MPI_Info_free(info, ierr)
  ! stor's Fortran handles lie in their own range, ROMIO's start at 1.
  if (is_stor .neqv. (fh >= 2**30)) call fail('Fortran handle range', fh)
  call MPI_File_get_amode(fh, amode, ierr)
  call check(ierr, 'get_amode')
  if (amode /= MPI_MODE_CREATE + MPI_MODE_RDWR) call fail('get_amode', amode)

  ! Explicit offsets.
  if (rank == 0) then
    hdr = (/ (1000 + i, i = 1, 16) /)
    call MPI_File_write_at(fh, 0_MPI_OFFSET_KIND, hdr, 16, MPI_INTEGER, status, ierr)
    call check(ierr, 'write_at header')
  end if
  mine = (/ (rank * 100 + i, i = 1, 16) /)
  off = 64 + 64 * rank
  call MPI_File_write_at(fh, off, mine, 16, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_at')
  call MPI_Get_count(status, MPI_INTEGER, cnt, ierr)
  if (cnt /= 16) call fail('write_at count', cnt)

  ! Individual file pointer.
  d = (/ (rank + i * 0.25d0, i = 1, 8) /)
  call MPI_File_seek(fh, r2 + 64 * rank, MPI_SEEK_SET, ierr)
  call check(ierr, 'seek')
  call MPI_File_write(fh, d, 8, MPI_DOUBLE_PRECISION, status, ierr)
  call check(ierr, 'write')
  call MPI_File_get_position(fh, pos, ierr)
  if (pos /= r2 + 64 * rank + 64) call fail('get_position', int(pos))
  call MPI_File_sync(fh, ierr)
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  call MPI_File_sync(fh, ierr)
  call MPI_File_read_at(fh, 64_MPI_OFFSET_KIND * (1 + mod(rank + 1, nprocs)), back, 16, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at neighbour')
  if (any(back /= (/ (mod(rank + 1, nprocs) * 100 + i, i = 1, 16) /))) call fail('read_at neighbour data', rank)
  call MPI_File_seek(fh, -64_MPI_OFFSET_KIND, MPI_SEEK_CUR, ierr)
  call MPI_File_read(fh, dback, 8, MPI_DOUBLE_PRECISION, status, ierr)
  call check(ierr, 'read')
  if (any(dback /= d)) call fail('read data', rank)

  ! Collective through a Fortran-order subarray view: columns 5*rank+1 .. 5*rank+5.
  gsizes = (/ 12, 5 * nprocs /)
  subsizes = (/ 12, 5 /)
  starts = (/ 0, 5 * rank /)
  call MPI_Type_create_subarray(2, gsizes, subsizes, starts, MPI_ORDER_FORTRAN, MPI_INTEGER, ftype, ierr)
  call MPI_Type_commit(ftype, ierr)
  call MPI_File_set_view(fh, r3, MPI_INTEGER, ftype, 'native', MPI_INFO_NULL, ierr)
  call check(ierr, 'set_view subarray')
  do j = 1, 5
    do i = 1, 12
      arr(i, j) = i * 1000 + 5 * rank + j
    end do
  end do
  call MPI_File_write_all(fh, arr, 60, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_all')
  call MPI_File_sync(fh, ierr)
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  call MPI_File_sync(fh, ierr)
  arr2 = 0
  call MPI_File_read_at_all(fh, 0_MPI_OFFSET_KIND, arr2, 60, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at_all')
  if (any(arr2 /= arr)) call fail('read_at_all data', rank)
  call MPI_Type_free(ftype, ierr)

  ! darray: 10 x 8, rows cyclic(2) over nprocs, columns not distributed, Fortran order.
  gsizes = (/ 10, 8 /)
  distribs = (/ MPI_DISTRIBUTE_CYCLIC, MPI_DISTRIBUTE_NONE /)
  dargs = (/ 2, MPI_DISTRIBUTE_DFLT_DARG /)
  psizes = (/ nprocs, 1 /)
  call MPI_Type_create_darray(nprocs, rank, 2, gsizes, distribs, dargs, psizes, MPI_ORDER_FORTRAN, &
                              MPI_INTEGER, darr, ierr)
  call MPI_Type_commit(darr, ierr)
  call MPI_Type_size(darr, n, ierr)
  n = n / 4
  dar = (/ (rank * 10000 + i, i = 1, 40) /)
  call MPI_File_set_view(fh, r4, MPI_INTEGER, darr, 'native', MPI_INFO_NULL, ierr)
  call check(ierr, 'set_view darray')
  call MPI_File_write_all(fh, dar, n, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_all darray')
  call MPI_File_seek(fh, 0_MPI_OFFSET_KIND, MPI_SEEK_SET, ierr)
  darback = 0
  call MPI_File_read_all(fh, darback, n, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_all darray')
  if (any(darback(1:n) /= dar(1:n))) call fail('read_all darray data', rank)
  call MPI_Type_free(darr, ierr)

  ! Back to bytes; nonblocking write, completed by MPI_Wait.
  call MPI_File_set_view(fh, 0_MPI_OFFSET_KIND, MPI_BYTE, MPI_BYTE, 'native', MPI_INFO_NULL, ierr)
  big = (/ (rank * 7 + i * 3, i = 1, 1024) /)
  call MPI_File_iwrite_at(fh, r5 + 4096 * rank, big, 1024, MPI_INTEGER, req, ierr)
  call check(ierr, 'iwrite_at')
  call MPI_Wait(req, status, ierr)
  call check(ierr, 'wait iwrite_at')
  call MPI_Get_count(status, MPI_INTEGER, cnt, ierr)
  if (cnt /= 1024) call fail('iwrite_at count', cnt)
  call MPI_File_iread_at(fh, r5 + 4096 * rank, bigback, 1024, MPI_INTEGER, req, ierr)
  call MPI_Wait(req, status, ierr)
  call check(ierr, 'wait iread_at')
  if (any(bigback /= big)) call fail('iread_at data', rank)

  ! Shared file pointer: rank r appends r+1 integers in rank order.
  call MPI_File_set_view(fh, r6, MPI_INTEGER, MPI_INTEGER, 'native', MPI_INFO_NULL, ierr)
  ord = rank + 1
  call MPI_File_write_ordered(fh, ord, rank + 1, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_ordered')
  call MPI_File_get_position_shared(fh, pos, ierr)
  ! (ROMIO 4.0.2 on a local file reports 0 on some ranks here, even after a barrier.)
  if (is_stor .and. pos /= (nprocs * (nprocs + 1)) / 2) call fail('get_position_shared', int(pos))
  call MPI_File_seek_shared(fh, 0_MPI_OFFSET_KIND, MPI_SEEK_SET, ierr)
  ordback = 0
  call MPI_File_read_ordered(fh, ordback, rank + 1, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_ordered')
  if (any(ordback(1:rank + 1) /= rank + 1)) call fail('read_ordered data', rank)

  ! Atomic mode.
  call MPI_File_set_atomicity(fh, .true., ierr)
  call check(ierr, 'set_atomicity')
  call MPI_File_get_atomicity(fh, atom, ierr)
  if (.not. atom) call fail('get_atomicity after .true.', 0)
  call MPI_File_set_atomicity(fh, .false., ierr)
  call MPI_File_get_atomicity(fh, atom, ierr)
  if (atom) call fail('get_atomicity after .false.', 1)

  ! Hints in effect.
  call MPI_File_get_info(fh, info, ierr)
  call check(ierr, 'get_info')
  call MPI_Info_get_nkeys(info, nkeys, ierr)
  call MPI_Info_get(info, 'cb_buffer_size', MPI_MAX_INFO_VAL, val, found, ierr)
  if (.not. found .or. trim(val) /= '4096') call fail('get_info cb_buffer_size '//trim(val), nkeys)
  call MPI_Info_free(info, ierr)

  ! Filetypes from the hvector constructors: 3 blocks of 2 integers every 40 bytes (MPI-1
  ! MPI_Type_hvector, the Fortran-77 binding's address-sized stride as an integer), then that
  ! type 2 times every 120 bytes + 8 (MPI_Type_create_hvector); each rank its own copy.
  ! The file first grows past the region: ROMIO's two-phase write fills holes past the end of
  ! file with whatever its buffer held.
  call MPI_File_set_size(fh, r7 + 256 * nprocs, ierr)
  call check(ierr, 'set_size')
  call MPI_Type_hvector(3, 2, 40, MPI_INTEGER, hv, ierr)
  stride = 128
  call MPI_Type_create_hvector(2, 1, stride, hv, hv2, ierr)
  call MPI_Type_commit(hv2, ierr)
  call MPI_Type_create_resized(hv2, 0_MPI_ADDRESS_KIND, 256_MPI_ADDRESS_KIND * nprocs, ftype2, ierr)
  call MPI_Type_commit(ftype2, ierr)
  call MPI_File_set_view(fh, r7 + 256 * rank, MPI_INTEGER, ftype2, 'native', MPI_INFO_NULL, ierr)
  call check(ierr, 'set_view hvector')
  hvbuf = (/ (rank * 50 + i, i = 1, 12) /)
  call MPI_File_write_at_all(fh, 0_MPI_OFFSET_KIND, hvbuf, 12, MPI_INTEGER, status, ierr)
  call check(ierr, 'write_at_all hvector')
  hvback = 0
  call MPI_File_read_at_all(fh, 0_MPI_OFFSET_KIND, hvback, 12, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at_all hvector')
  if (any(hvback /= hvbuf)) call fail('read_at_all hvector data', rank)
  call MPI_File_get_byte_offset(fh, 7_MPI_OFFSET_KIND, pos, ierr)
  ! etype 7 = the second integer of the first block of the second hvector copy: 128 + 4 bytes in
  if (pos /= r7 + 256 * rank + 132) call fail('get_byte_offset', int(pos - r7))
  call MPI_Type_free(hv, ierr)
  call MPI_Type_free(hv2, ierr)
  call MPI_Type_free(ftype2, ierr)

  call MPI_File_get_size(fh, fsize, ierr)
  call check(ierr, 'get_size')
  if (fsize /= r7 + 256 * nprocs) call fail('get_size', int(fsize))
  call MPI_File_close(fh, ierr)
  call check(ierr, 'close')
  if (fh /= MPI_FILE_NULL) call fail('close leaves MPI_FILE_NULL', fh)

  ! Errors through MPI_ERRORS_RETURN (inherited from MPI_FILE_NULL), with their text.
  call MPI_File_open(MPI_COMM_WORLD, trim(fname), MPI_MODE_RDONLY, MPI_INFO_NULL, fh, ierr)
  call check(ierr, 'reopen read-only')
  call MPI_File_write_at(fh, 0_MPI_OFFSET_KIND, hdr, 1, MPI_INTEGER, status, ierr)
  call MPI_Error_class(ierr, cls, i)
  if (cls /= MPI_ERR_READ_ONLY .and. cls /= MPI_ERR_ACCESS) call fail('write on read-only: class', cls)
  call MPI_Error_string(ierr, msg, slen, i)
  if (slen == 0) call fail('write on read-only: empty error string', 0)
  if (is_stor .and. index(msg(1:slen), 'was opened MPI_MODE_RDONLY') == 0) &
    call fail('write on read-only: '//msg(1:slen), 0)
  call MPI_File_read_at(fh, 0_MPI_OFFSET_KIND, back, 16, MPI_INTEGER, status, ierr)
  call check(ierr, 'read_at header')
  if (any(back /= (/ (1000 + i, i = 1, 16) /))) call fail('header data', 0)
  ! A Fortran error handler (external subroutine on_error below) gets the code and, on stor
  ! files, the Fortran handle. (MPICH 4.0.2 passes ROMIO files' C handle, so not checked there.)
  call MPI_File_create_errhandler(on_error, eh, ierr)
  call check(ierr, 'create_errhandler')
  call MPI_File_set_errhandler(fh, eh, ierr)
  call check(ierr, 'set_errhandler')
  seen_fh = -1
  seen_code = -1
  call MPI_File_write_at(fh, 0_MPI_OFFSET_KIND, hdr, 1, MPI_INTEGER, status, ierr)
  if (ierr == MPI_SUCCESS .or. seen_code /= ierr) call fail('Fortran error handler: code', seen_code)
  if (is_stor .and. seen_fh /= fh) call fail('Fortran error handler: file handle', seen_fh)
  call MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN, ierr)
  call MPI_Errhandler_free(eh, ierr)
  call MPI_File_close(fh, ierr)
  call MPI_File_open(MPI_COMM_WORLD, trim(missing), MPI_MODE_RDONLY, MPI_INFO_NULL, fh2, ierr)
  call MPI_Error_class(ierr, cls, i)
  if (cls /= MPI_ERR_NO_SUCH_FILE) call fail('open missing: class', cls)
  call MPI_Error_string(ierr, msg, slen, i)
  if (is_stor .and. index(msg(1:slen), 'NotFound') == 0) call fail('open missing: '//msg(1:slen), 0)
  if (fh2 /= MPI_FILE_NULL) call fail('failed open leaves MPI_FILE_NULL', fh2)

  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a, i0, a)', 'mpiio_fortran: OK (', nprocs, ' ranks)'
  call MPI_Finalize(ierr)

contains

  subroutine check(code, what)
    integer, intent(in) :: code
    character(len=*), intent(in) :: what
    character(len=MPI_MAX_ERROR_STRING) :: text
    integer :: l, e
    if (code == MPI_SUCCESS) return
    call MPI_Error_string(code, text, l, e)
    call fail(what//': '//text(1:l), code)
  end subroutine

  subroutine fail(what, value)
    character(len=*), intent(in) :: what
    integer, intent(in) :: value
    integer :: e
    print '(a, i0, a, a, a, i0)', 'rank ', rank, ': FAILED ', what, ': ', value
    call MPI_Abort(MPI_COMM_WORLD, 1, e)
  end subroutine

end program mpiio_fortran

subroutine on_error(fh, code)
  implicit none
  integer :: fh, code, seen_fh, seen_code
  common /errh/ seen_fh, seen_code
  seen_fh = fh
  seen_code = code
end subroutine
