! weft/weft.f90: the Fortran binding of weft's C API (weft/weft.h), Fortran 2008 with
! iso_c_binding. Compile this file with your program (module files are compiler-specific,
! so the source is what weft installs) and link with libweft and the C++ runtime:
!
!   gfortran -c $prefix/include/weft/weft.f90
!   gfortran prog.f90 weft.o $(pkg-config --libs weft-c)
!
! Two layers:
!   - the raw bind(C) interfaces, named exactly as in weft.h (weft_pool_create, ...), with
!     handles as type(c_ptr), callbacks as type(c_funptr) (c_funloc of a bind(C) procedure)
!     and statuses as integer(c_int) compared against the WEFT_* constants;
!   - thin typed wrappers, type(weft_pool_t) and type(weft_group_t), whose type-bound
!     procedures take Fortran procedures (with the abstract interfaces below), an optional
!     type(c_ptr) context and, for tasks, an optional context destructor.
! Contracts (what each call does, every status it returns) are those of weft.h.
!
! Callbacks must be module procedures (or external ones) with bind(C) and the interfaces
! weft_range_proc / weft_task_proc / weft_reduce_map_proc / weft_reduce_combine_proc; they
! run concurrently on weft's worker threads, so they must be thread-safe (no SAVEd state,
! distinct elements of shared arrays). Index arguments are C int64_t; a loop over 1..n is
! the half-open range [1, n + 1).
module weft
  use, intrinsic :: iso_c_binding
  implicit none
  private

  ! Status codes (weft_status).
  integer(c_int), parameter, public :: WEFT_OK = 0, WEFT_INVALID_ARGUMENT = 1, WEFT_NO_MEMORY = 2, &
    WEFT_QUEUE_FULL = 3, WEFT_SHUT_DOWN = 4, WEFT_CANCELLED = 5, WEFT_TIMED_OUT = 6, &
    WEFT_TASK_FAILED = 7, WEFT_SYSTEM_ERROR = 8
  ! Pinning policies (weft_pin_policy).
  integer(c_int), parameter, public :: WEFT_PIN_NONE = 0, WEFT_PIN_COMPACT = 1, WEFT_PIN_SCATTER = 2, &
    WEFT_PIN_EXPLICIT = 3
  ! "No limit" for the timeouts in nanoseconds.
  integer(c_int64_t), parameter, public :: WEFT_NO_TIMEOUT = huge(0_c_int64_t)

  ! weft_pool_config, field for field (unsigned fields as the same-sized signed kinds).
  type, bind(c), public :: weft_pool_config
    integer(c_size_t) :: size = 0
    integer(c_int) :: workers = 0
    integer(c_int) :: pinning = 0
    type(c_ptr) :: pus = c_null_ptr
    integer(c_size_t) :: pu_count = 0
    type(c_ptr) :: name = c_null_ptr
    integer(c_int) :: spin_rounds = 0
    integer(c_int) :: read_environment = 0
    integer(c_size_t) :: deque_capacity = 0
  end type weft_pool_config

  public :: weft_range_proc, weft_task_proc, weft_reduce_map_proc, weft_reduce_combine_proc
  abstract interface
    subroutine weft_task_proc(ctx) bind(c)
      import :: c_ptr
      type(c_ptr), value :: ctx
    end subroutine weft_task_proc
    subroutine weft_range_proc(first, last, ctx) bind(c)
      import :: c_int64_t, c_ptr
      integer(c_int64_t), value :: first, last  ! the chunk [first, last)
      type(c_ptr), value :: ctx
    end subroutine weft_range_proc
    subroutine weft_reduce_map_proc(first, last, acc, ctx) bind(c)
      import :: c_int64_t, c_ptr
      integer(c_int64_t), value :: first, last
      type(c_ptr), value :: acc, ctx  ! acc: the chunk's value, starting as identity
    end subroutine weft_reduce_map_proc
    subroutine weft_reduce_combine_proc(left, right, ctx) bind(c)
      import :: c_ptr
      type(c_ptr), value :: left, right, ctx  ! left = left (+) right
    end subroutine weft_reduce_combine_proc
  end interface

  ! ---- the raw C API ----
  public :: weft_pool_config_init_size, weft_pool_create, weft_pool_close, weft_pool_close_timeout, &
    weft_pool_destroy, weft_pool_size, weft_pool_post, weft_pool_try_post, weft_group_create, weft_group_run, &
    weft_group_wait, weft_group_wait_timeout, weft_group_cancel, weft_group_destroy, weft_parallel_for, &
    weft_parallel_reduce
  interface
    integer(c_int) function weft_pool_config_init_size(config, size) bind(c, name="weft_pool_config_init_size")
      import :: c_int, c_size_t, weft_pool_config
      type(weft_pool_config), intent(inout) :: config
      integer(c_size_t), value :: size
    end function
    integer(c_int) function weft_pool_create(config, pool) bind(c, name="weft_pool_create")
      import :: c_int, c_ptr
      type(c_ptr), value :: config  ! c_loc of a weft_pool_config, or c_null_ptr for defaults
      type(c_ptr), intent(out) :: pool
    end function
    integer(c_int) function weft_pool_close(pool) bind(c, name="weft_pool_close")
      import :: c_int, c_ptr
      type(c_ptr), value :: pool
    end function
    integer(c_int) function weft_pool_close_timeout(pool, timeout_ns) bind(c, name="weft_pool_close_timeout")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: pool
      integer(c_int64_t), value :: timeout_ns
    end function
    integer(c_int) function weft_pool_destroy(pool) bind(c, name="weft_pool_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: pool
    end function
    integer(c_size_t) function weft_pool_size(pool) bind(c, name="weft_pool_size")
      import :: c_size_t, c_ptr
      type(c_ptr), value :: pool
    end function
    integer(c_int) function weft_pool_post(pool, fn, ctx, dtor) bind(c, name="weft_pool_post")
      import :: c_int, c_ptr, c_funptr
      type(c_ptr), value :: pool, ctx
      type(c_funptr), value :: fn, dtor
    end function
    integer(c_int) function weft_pool_try_post(pool, fn, ctx, dtor) bind(c, name="weft_pool_try_post")
      import :: c_int, c_ptr, c_funptr
      type(c_ptr), value :: pool, ctx
      type(c_funptr), value :: fn, dtor
    end function
    integer(c_int) function weft_group_create(pool, group) bind(c, name="weft_group_create")
      import :: c_int, c_ptr
      type(c_ptr), value :: pool
      type(c_ptr), intent(out) :: group
    end function
    integer(c_int) function weft_group_run(group, fn, ctx, dtor) bind(c, name="weft_group_run")
      import :: c_int, c_ptr, c_funptr
      type(c_ptr), value :: group, ctx
      type(c_funptr), value :: fn, dtor
    end function
    integer(c_int) function weft_group_wait(group) bind(c, name="weft_group_wait")
      import :: c_int, c_ptr
      type(c_ptr), value :: group
    end function
    integer(c_int) function weft_group_wait_timeout(group, timeout_ns) bind(c, name="weft_group_wait_timeout")
      import :: c_int, c_ptr, c_int64_t
      type(c_ptr), value :: group
      integer(c_int64_t), value :: timeout_ns
    end function
    integer(c_int) function weft_group_cancel(group) bind(c, name="weft_group_cancel")
      import :: c_int, c_ptr
      type(c_ptr), value :: group
    end function
    integer(c_int) function weft_group_destroy(group) bind(c, name="weft_group_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: group
    end function
    integer(c_int) function weft_parallel_for(pool, first, last, grain, fn, ctx) bind(c, name="weft_parallel_for")
      import :: c_int, c_ptr, c_int64_t, c_funptr
      type(c_ptr), value :: pool, ctx
      integer(c_int64_t), value :: first, last, grain
      type(c_funptr), value :: fn
    end function
    integer(c_int) function weft_parallel_reduce(pool, first, last, grain, value_size, identity, map, combine, ctx, &
                                                 result) bind(c, name="weft_parallel_reduce")
      import :: c_int, c_ptr, c_int64_t, c_funptr, c_size_t
      type(c_ptr), value :: pool, identity, ctx, result
      integer(c_int64_t), value :: first, last, grain
      integer(c_size_t), value :: value_size
      type(c_funptr), value :: map, combine
    end function
  end interface

  ! Private C entry points that take or return C strings (the wrappers convert them).
  interface
    integer(c_int) function c_task_fail(message) bind(c, name="weft_task_fail")
      import :: c_int, c_char
      character(kind=c_char), dimension(*), intent(in) :: message
    end function
    type(c_ptr) function c_last_error() bind(c, name="weft_last_error")
      import :: c_ptr
    end function
    type(c_ptr) function c_status_string(status) bind(c, name="weft_status_string")
      import :: c_ptr, c_int
      integer(c_int), value :: status
    end function
    integer(c_size_t) function c_strlen(s) bind(c, name="strlen")
      import :: c_size_t, c_ptr
      type(c_ptr), value :: s
    end function
  end interface

  public :: weft_task_fail, weft_last_error, weft_status_string

  ! ---- the typed wrapper ----
  type, public :: weft_pool_t
    type(c_ptr) :: handle = c_null_ptr
  contains
    procedure :: create => pool_create
    procedure :: destroy => pool_destroy
    procedure :: size => pool_size
    procedure :: parallel_for => pool_parallel_for
    procedure :: parallel_reduce => pool_parallel_reduce
    procedure :: post => pool_post
    procedure :: close => pool_close
  end type weft_pool_t

  type, public :: weft_group_t
    type(c_ptr) :: handle = c_null_ptr
  contains
    procedure :: create => group_create
    procedure :: run => group_run
    procedure :: wait => group_wait
    procedure :: cancel => group_cancel
    procedure :: destroy => group_destroy
  end type weft_group_t

contains

  ! Marks the running callback as failed (weft_task_fail). Returns a status.
  integer(c_int) function weft_task_fail(message)
    character(len=*), intent(in) :: message
    weft_task_fail = c_task_fail(message // c_null_char)
  end function weft_task_fail

  ! The message of the calling thread's last failing call.
  function weft_last_error() result(text)
    character(len=:), allocatable :: text
    text = from_c(c_last_error())
  end function weft_last_error

  function weft_status_string(status) result(text)
    integer(c_int), intent(in) :: status
    character(len=:), allocatable :: text
    text = from_c(c_status_string(status))
  end function weft_status_string

  function from_c(p) result(text)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: text
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: text)
    do i = 1, n
      text(i:i) = chars(i)
    end do
  end function from_c

  ! Creates the pool: workers (default 0: one per usable core), pinning (default
  ! WEFT_PIN_COMPACT). Returns a status; on WEFT_OK self%handle is the pool.
  integer(c_int) function pool_create(self, workers, pinning)
    class(weft_pool_t), intent(inout) :: self
    integer, intent(in), optional :: workers, pinning
    type(weft_pool_config), target :: config
    pool_create = weft_pool_config_init_size(config, c_sizeof(config))
    if (pool_create /= WEFT_OK) return
    if (present(workers)) config%workers = int(workers, c_int)
    if (present(pinning)) config%pinning = int(pinning, c_int)
    pool_create = weft_pool_create(c_loc(config), self%handle)
  end function pool_create

  ! Drains and frees the pool (weft_pool_destroy); self%handle is null afterwards on WEFT_OK.
  integer(c_int) function pool_destroy(self)
    class(weft_pool_t), intent(inout) :: self
    pool_destroy = weft_pool_destroy(self%handle)
    if (pool_destroy == WEFT_OK) self%handle = c_null_ptr
  end function pool_destroy

  integer function pool_size(self)
    class(weft_pool_t), intent(in) :: self
    pool_size = int(weft_pool_size(self%handle))
  end function pool_size

  ! body(lo, hi, ctx) on chunks covering [first, last) exactly once; grain 0 / absent: the default.
  integer(c_int) function pool_parallel_for(self, first, last, body, ctx, grain)
    class(weft_pool_t), intent(in) :: self
    integer(c_int64_t), intent(in) :: first, last
    procedure(weft_range_proc) :: body
    type(c_ptr), intent(in), optional :: ctx
    integer(c_int64_t), intent(in), optional :: grain
    type(c_ptr) :: c
    integer(c_int64_t) :: g
    c = c_null_ptr
    if (present(ctx)) c = ctx
    g = 0
    if (present(grain)) g = grain
    pool_parallel_for = weft_parallel_for(self%handle, first, last, g, c_funloc(body), c)
  end function pool_parallel_for

  ! weft_parallel_reduce over values of value_size bytes: identity and result are c_loc's
  ! of variables (with the TARGET attribute) of the value's type.
  integer(c_int) function pool_parallel_reduce(self, first, last, value_size, identity, map, combine, result, ctx, &
                                               grain)
    class(weft_pool_t), intent(in) :: self
    integer(c_int64_t), intent(in) :: first, last
    integer(c_size_t), intent(in) :: value_size
    type(c_ptr), intent(in) :: identity, result
    procedure(weft_reduce_map_proc) :: map
    procedure(weft_reduce_combine_proc) :: combine
    type(c_ptr), intent(in), optional :: ctx
    integer(c_int64_t), intent(in), optional :: grain
    type(c_ptr) :: c
    integer(c_int64_t) :: g
    c = c_null_ptr
    if (present(ctx)) c = ctx
    g = 0
    if (present(grain)) g = grain
    pool_parallel_reduce = weft_parallel_reduce(self%handle, first, last, g, value_size, identity, c_funloc(map), &
                                                c_funloc(combine), c, result)
  end function pool_parallel_reduce

  ! fn(ctx) on the pool, fire-and-forget; dtor(ctx), if given, exactly once (weft_pool_post).
  integer(c_int) function pool_post(self, fn, ctx, dtor)
    class(weft_pool_t), intent(in) :: self
    procedure(weft_task_proc) :: fn
    type(c_ptr), intent(in), optional :: ctx
    procedure(weft_task_proc), optional :: dtor
    pool_post = weft_pool_post(self%handle, c_funloc(fn), optional_ptr(ctx), optional_funptr(dtor))
  end function pool_post

  ! Drains: with timeout_ns, at most that long (weft_pool_close / weft_pool_close_timeout).
  integer(c_int) function pool_close(self, timeout_ns)
    class(weft_pool_t), intent(in) :: self
    integer(c_int64_t), intent(in), optional :: timeout_ns
    if (present(timeout_ns)) then
      pool_close = weft_pool_close_timeout(self%handle, timeout_ns)
    else
      pool_close = weft_pool_close(self%handle)
    end if
  end function pool_close

  integer(c_int) function group_create(self, pool)
    class(weft_group_t), intent(inout) :: self
    type(weft_pool_t), intent(in) :: pool
    group_create = weft_group_create(pool%handle, self%handle)
  end function group_create

  ! fn(ctx) as a child of the group; dtor(ctx), if given, exactly once (weft_group_run).
  integer(c_int) function group_run(self, fn, ctx, dtor)
    class(weft_group_t), intent(in) :: self
    procedure(weft_task_proc) :: fn
    type(c_ptr), intent(in), optional :: ctx
    procedure(weft_task_proc), optional :: dtor
    group_run = weft_group_run(self%handle, c_funloc(fn), optional_ptr(ctx), optional_funptr(dtor))
  end function group_run

  ! Waits for the children: WEFT_OK, WEFT_TASK_FAILED, WEFT_CANCELLED, or with timeout_ns
  ! (nanoseconds) WEFT_TIMED_OUT (weft_group_wait / weft_group_wait_timeout).
  integer(c_int) function group_wait(self, timeout_ns)
    class(weft_group_t), intent(in) :: self
    integer(c_int64_t), intent(in), optional :: timeout_ns
    if (present(timeout_ns)) then
      group_wait = weft_group_wait_timeout(self%handle, timeout_ns)
    else
      group_wait = weft_group_wait(self%handle)
    end if
  end function group_wait

  integer(c_int) function group_cancel(self)
    class(weft_group_t), intent(in) :: self
    group_cancel = weft_group_cancel(self%handle)
  end function group_cancel

  integer(c_int) function group_destroy(self)
    class(weft_group_t), intent(inout) :: self
    group_destroy = weft_group_destroy(self%handle)
    if (group_destroy == WEFT_OK) self%handle = c_null_ptr
  end function group_destroy

  type(c_ptr) function optional_ptr(p)
    type(c_ptr), intent(in), optional :: p
    optional_ptr = c_null_ptr
    if (present(p)) optional_ptr = p
  end function optional_ptr

  type(c_funptr) function optional_funptr(f)
    procedure(weft_task_proc), optional :: f
    optional_funptr = c_null_funptr
    if (present(f)) optional_funptr = c_funloc(f)
  end function optional_funptr

end module weft
