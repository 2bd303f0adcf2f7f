! examples/fortran/parallel_loop.f90: a parallel loop from Fortran through weft's binding
! (include/weft/weft.f90). Fills a(i) = i*i for i = 1..n with a parallel_for, then sums i
! and a(i) with parallel_reduce (per-chunk partial sums, combined in a tree), and checks
! both against their closed forms, exactly (integers). Exits non-zero on any mismatch.
!
!   gfortran weft.f90 parallel_loop.f90 $(pkg-config --libs weft-c)

! Callbacks must be bind(C) module procedures: they run concurrently on weft's workers.
module loop_kernels
  use, intrinsic :: iso_c_binding
  use weft
  implicit none
  integer(c_int64_t), parameter :: n = 1000000

contains

  ! a(i) = i*i for the chunk [first, last); ctx: c_loc(a(1)).
  subroutine fill_squares(first, last, ctx) bind(c)
    integer(c_int64_t), value :: first, last
    type(c_ptr), value :: ctx
    integer(c_int64_t), pointer :: a(:)
    integer(c_int64_t) :: i
    call c_f_pointer(ctx, a, [n])
    do i = first, last - 1
      a(i) = i * i
    end do
  end subroutine fill_squares

  ! acc += sum of i over the chunk.
  subroutine sum_indices(first, last, acc, ctx) bind(c)
    integer(c_int64_t), value :: first, last
    type(c_ptr), value :: acc, ctx
    integer(c_int64_t), pointer :: s
    integer(c_int64_t) :: i
    if (c_associated(ctx)) continue  ! unused
    call c_f_pointer(acc, s)
    do i = first, last - 1
      s = s + i
    end do
  end subroutine sum_indices

  ! acc += sum of a(i) over the chunk; ctx: c_loc(a(1)).
  subroutine sum_elements(first, last, acc, ctx) bind(c)
    integer(c_int64_t), value :: first, last
    type(c_ptr), value :: acc, ctx
    integer(c_int64_t), pointer :: s, a(:)
    call c_f_pointer(acc, s)
    call c_f_pointer(ctx, a, [n])
    s = s + sum(a(first:last - 1))
  end subroutine sum_elements

  subroutine add(left, right, ctx) bind(c)
    type(c_ptr), value :: left, right, ctx
    integer(c_int64_t), pointer :: l, r
    if (c_associated(ctx)) continue  ! unused
    call c_f_pointer(left, l)
    call c_f_pointer(right, r)
    l = l + r
  end subroutine add

end module loop_kernels

program parallel_loop
  use, intrinsic :: iso_c_binding
  use weft
  use loop_kernels
  implicit none
  type(weft_pool_t) :: pool
  integer(c_int64_t), allocatable, target :: a(:)
  integer(c_int64_t), target :: zero, total, squares
  integer(c_int64_t), parameter :: one = 1
  integer(c_int64_t) :: i8

  call check(pool%create(), "create")
  allocate(a(n))
  a = -1
  call check(pool%parallel_for(one, n + 1, fill_squares, c_loc(a(1))), "parallel_for")
  do i8 = one, n
    if (a(i8) /= i8 * i8) call fail("parallel_for missed or corrupted an element")
  end do

  zero = 0
  call check(pool%parallel_reduce(one, n + 1, c_sizeof(zero), c_loc(zero), sum_indices, add, c_loc(total)), &
             "parallel_reduce (indices)")
  print '(a, i0, a, i0, a, i0, a)', 'sum of i over 1..', n, ' = ', total, ' (expected ', n * (n + 1) / 2, ')'
  if (total /= n * (n + 1) / 2) call fail("wrong sum of i")

  call check(pool%parallel_reduce(one, n + 1, c_sizeof(zero), c_loc(zero), sum_elements, add, c_loc(squares), &
                                  c_loc(a(1)), grain=4096_c_int64_t), "parallel_reduce (squares)")
  print '(a, i0, a, i0, a, i0, a)', 'sum of i**2 over 1..', n, ' = ', squares, ' (expected ', &
    n * (n + 1) * (2 * n + 1) / 6, ')'
  if (squares /= n * (n + 1) * (2 * n + 1) / 6) call fail("wrong sum of squares")

  ! An invalid call reports a status and a message; nothing crashes.
  if (pool%parallel_for(n, one, fill_squares) /= WEFT_INVALID_ARGUMENT) call fail("first > last was accepted")
  print '(a, a)', 'as expected, first > last: ', weft_last_error()

  print '(a, i0, a)', 'ran on ', pool%size(), ' workers'
  call check(pool%destroy(), "destroy")
  deallocate(a)
  print '(a)', 'parallel_loop: OK'

contains

  subroutine check(status, what)
    integer(c_int), intent(in) :: status
    character(len=*), intent(in) :: what
    if (status /= WEFT_OK) then
      print '(a, a, a, a, a, a)', what, ' failed: ', weft_status_string(status), ' (', weft_last_error(), ')'
      error stop 1
    end if
  end subroutine check

  subroutine fail(why)
    character(len=*), intent(in) :: why
    print '(a, a)', 'parallel_loop: FAILED: ', why
    error stop 1
  end subroutine fail

end program parallel_loop
