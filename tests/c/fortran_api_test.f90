! tests/c/fortran_api_test.f90: the Fortran binding's groups, posts, failures and statuses
! (the parallel loops are examples/fortran/parallel_loop.f90). Prints the OK line only
! after every check; stops with a non-zero status on the first wrong answer.
module api_kernels
  use, intrinsic :: iso_c_binding
  use weft
  implicit none
contains
  ! ctx: c_loc of one integer(c_int64_t) slot, owned by this task alone.
  subroutine mark(ctx) bind(c)
    type(c_ptr), value :: ctx
    integer(c_int64_t), pointer :: slot
    call c_f_pointer(ctx, slot)
    slot = slot + 1
  end subroutine mark

  ! The context destructor: runs after mark (or instead of it, for a cancelled task).
  subroutine release(ctx) bind(c)
    type(c_ptr), value :: ctx
    integer(c_int64_t), pointer :: slot
    call c_f_pointer(ctx, slot)
    slot = slot + 10
  end subroutine release

  subroutine mark_and_fail(ctx) bind(c)
    type(c_ptr), value :: ctx
    call mark(ctx)
    if (weft_task_fail("a Fortran task failed") /= WEFT_OK) stop 3
  end subroutine mark_and_fail
end module api_kernels

program fortran_api_test
  use, intrinsic :: iso_c_binding
  use weft
  use api_kernels
  implicit none
  integer, parameter :: n = 200
  integer(c_int64_t), target :: slots(n)
  type(weft_pool_t) :: pool
  type(weft_group_t) :: group
  integer :: i

  call expect(pool%create(workers=2, pinning=WEFT_PIN_NONE), WEFT_OK, "create")
  if (pool%size() /= 2) call fail("pool size")
  call expect(group%create(pool), WEFT_OK, "group create")
  call expect(group%wait(0_c_int64_t), WEFT_OK, "wait on an empty group")

  ! Every child runs once and its destructor runs once: each slot ends at 11.
  slots = 0
  do i = 1, n
    call expect(group%run(mark, c_loc(slots(i)), release), WEFT_OK, "run")
  end do
  call expect(group%wait(), WEFT_OK, "wait")
  if (any(slots /= 11)) call fail("a child ran or was released other than exactly once")

  ! A failing child: WEFT_TASK_FAILED, its message, and its destructor still ran.
  slots = 0
  call expect(group%run(mark_and_fail, c_loc(slots(1)), release), WEFT_OK, "run (failing)")
  call expect(group%wait(WEFT_NO_TIMEOUT), WEFT_TASK_FAILED, "wait (failing)")
  if (index(weft_last_error(), "a Fortran task failed") == 0) call fail("message: " // weft_last_error())
  if (slots(1) /= 11) call fail("the failing child's destructor")
  call expect(group%destroy(), WEFT_OK, "group destroy")

  ! Posts, then a drain; after it, a post is refused and its context still released.
  slots = 0
  do i = 1, n
    call expect(pool%post(mark, c_loc(slots(i)), release), WEFT_OK, "post")
  end do
  call expect(pool%close(), WEFT_OK, "close")
  if (any(slots /= 11)) call fail("a posted task ran or was released other than exactly once")
  call expect(pool%post(mark, c_loc(slots(1)), release), WEFT_SHUT_DOWN, "post after close")
  if (slots(1) /= 21) call fail("a refused post's context was not released exactly once")
  if (weft_status_string(WEFT_SHUT_DOWN) /= "shut down") call fail("status string")
  call expect(pool%destroy(), WEFT_OK, "destroy")
  call expect(group%wait(), WEFT_INVALID_ARGUMENT, "wait on a null group")
  print '(a)', 'fortran_api_test: OK'

contains

  subroutine expect(status, want, what)
    integer(c_int), intent(in) :: status, want
    character(len=*), intent(in) :: what
    if (status /= want) then
      print '(a, a, a, a, a, a, a)', what, ': got ', weft_status_string(status), ', want ', &
        weft_status_string(want), '; ', weft_last_error()
      error stop 1
    end if
  end subroutine expect

  subroutine fail(why)
    character(len=*), intent(in) :: why
    print '(a, a)', 'fortran_api_test: FAILED: ', why
    error stop 2
  end subroutine fail

end program fortran_api_test
