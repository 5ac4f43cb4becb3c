!> Pure-Fortran benchmark driver: reads columns, members, parameters, initial state and a cycle of
!> forcing frames written by bench/column_speed.py, steps them with colm_step (one call per step, the
!> same as the Python-driven loop), prints the wall time and writes the final state for comparison.
!> Usage: colm_bench_driver INPUT.bin OUTPUT.bin
program colm_bench_driver
  use, intrinsic :: iso_c_binding, only: c_double, c_int, c_int64_t
  use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
  use colm_api, only: colm_step, colm_layout, colm_derive
  implicit none
  integer(c_int) :: hdr(5), nlev, ncol, nmem, nsteps, nframes, nf, np, nx, nls, ncs, ierr
  real(c_double) :: dt
  real(c_double), allocatable :: params(:, :, :), rootfr(:, :), frames(:, :, :, :)
  ! the state by name (colm_const): per layer wliq, wice, tsoil; per column zwt, wa, wcanopy, wsnow, wpond,
  ! tskin, tsnow, dsnow -- each entry one contiguous block, so the files hold them one after the other
  real(c_double), allocatable :: lstate(:, :, :, :), cstate(:, :, :), fluxes(:, :, :)
  integer(c_int), allocatable :: colerr(:, :)
  integer(c_int64_t) :: t0, t1, rate
  real :: c0, c1
  character(len=4096) :: fin, fout
  integer :: u, k, f, ios

  if (command_argument_count() /= 2) then
    write (error_unit, '(a)') 'usage: colm_bench_driver INPUT.bin OUTPUT.bin'
    error stop 2
  end if
  call get_command_argument(1, fin)
  call get_command_argument(2, fout)
  call colm_layout(nf, np, nx, nls, ncs)

  open (newunit=u, file=trim(fin), access='stream', form='unformatted', status='old', iostat=ios)
  if (ios /= 0) then
    write (error_unit, '(2a)') 'cannot open ', trim(fin)
    error stop 2
  end if
  read (u) hdr, dt
  nlev = hdr(1); ncol = hdr(2); nmem = hdr(3); nsteps = hdr(4); nframes = hdr(5)
  allocate (params(np, ncol, nmem), rootfr(nlev, ncol), frames(nf, ncol, nmem, nframes))
  allocate (lstate(nlev, ncol, nmem, nls), cstate(ncol, nmem, ncs), fluxes(nx, ncol, nmem), colerr(ncol, nmem))
  read (u) params, rootfr, lstate, cstate, frames
  close (u)
  fluxes = 0.0_c_double
  colerr = 0
  call colm_derive(np, ncol, nmem, params, ierr)

  call system_clock(t0, rate)
  call cpu_time(c0)
  do k = 1, nsteps
    f = mod(k - 1, nframes) + 1
    call colm_step(nlev, ncol, nmem, nf, np, nx, nls, ncs, 1_c_int, dt, frames(:, :, :, f), params, rootfr, &
                   lstate, cstate, fluxes, colerr, ierr)
    if (ierr /= 0) then
      write (error_unit, '(a,i0,a,i0)') 'colm_step failed at step ', k, ': ierr = ', ierr
      error stop 1
    end if
  end do
  call cpu_time(c1)
  call system_clock(t1)
  write (output_unit, '(a,es16.8,a,es16.8)') 'seconds ', real(t1 - t0, c_double) / real(rate, c_double), &
    ' cpu ', real(c1 - c0, c_double)

  open (newunit=u, file=trim(fout), access='stream', form='unformatted', status='replace')
  write (u) lstate, cstate, fluxes
  close (u)
end program colm_bench_driver
