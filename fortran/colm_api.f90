!> The only module numpy.f2py reads: explicit-shape real(c_double) arrays, loops over members and
!> columns (and time steps) inside Fortran, error codes instead of stops.
module colm_api
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use colm_kinds, only: dp
  use colm_const, only: nforc, npar, nflux, nscalar, err_ok, err_args, err_hydmodel, dtemp_substep, max_substeps, &
                        forcing_names, param_names, flux_names
  use colm_soil, only: layer_geometry
  use colm_column, only: column_step, derive_params
  implicit none
  private
  public :: api_version, colm_layout, colm_field_name, colm_geometry, colm_threads, colm_derive, colm_step

contains

  !> Version of the Fortran API (bumped when an argument list changes).
  subroutine api_version(version)
    integer(c_int), intent(out) :: version
    version = 6
  end subroutine api_version

  !> Name of entry i (1-based) of array group (1 = forcing, 2 = parameters, 3 = fluxes), blank-padded
  !> to 32 characters; ierr = 0, or 1 for an unknown group or an index out of range (name blank).
  !> Python packs and reads these arrays by these names (landimg.model.column), never by position.
  subroutine colm_field_name(group, i, name, ierr)
    integer(c_int), intent(in) :: group, i
    character(len=32), intent(out) :: name
    integer(c_int), intent(out) :: ierr
    name = ' '
    ierr = 1
    select case (group)
    case (1)
      if (i < 1 .or. i > nforc) return
      name = forcing_names(i)
    case (2)
      if (i < 1 .or. i > npar) return
      name = param_names(i)
    case (3)
      if (i < 1 .or. i > nflux) return
      name = flux_names(i)
    case default
      return
    end select
    ierr = 0
  end subroutine colm_field_name

  !> Sizes of the forcing, parameter and flux arrays (first dimension) expected by colm_step.
  subroutine colm_layout(nf, np, nx)
    integer(c_int), intent(out) :: nf, np, nx
    nf = nforc
    np = npar
    nx = nflux
  end subroutine colm_layout

  !> OpenMP threads of colm_step: with nreq > 0 set the number of threads to nreq (as
  !> OMP_NUM_THREADS would); return the number the next colm_step will use (1 without OpenMP).
  subroutine colm_threads(nreq, nthreads)
    !$ use omp_lib, only: omp_set_num_threads, omp_get_max_threads
    integer(c_int), intent(in) :: nreq
    integer(c_int), intent(out) :: nthreads
    nthreads = 1
    !$ if (nreq > 0) call omp_set_num_threads(int(nreq))
    !$ nthreads = int(omp_get_max_threads(), c_int)
  end subroutine colm_threads

  !> Fill the derived parameter entries (indices after npar_input, colm_const) of every column and
  !> member from their input entries, in place; call once after setting the inputs, before colm_step.
  !> ierr = -1 if np is not npar.
  subroutine colm_derive(np, ncol, nmem, params, ierr)
    integer(c_int), intent(in) :: np, ncol, nmem
    real(c_double), intent(inout) :: params(np, ncol, nmem)
    integer(c_int), intent(out) :: ierr
    integer :: c, m
    ierr = 0
    if (np /= npar) then
      ierr = -1
      return
    end if
    do m = 1, nmem
      do c = 1, ncol
        call derive_params(params(:, c, m))
      end do
    end do
  end subroutine colm_derive

  !> CoLM layer geometry: node depth z, thickness dz and layer bottom zi (m), each (nlev).
  subroutine colm_geometry(nlev, z, dz, zi)
    integer(c_int), intent(in) :: nlev
    real(c_double), intent(out) :: z(nlev), dz(nlev), zi(nlev)
    call layer_geometry(z, dz, zi)
  end subroutine colm_geometry

  !> Step every column of every member nsteps times with the same forcing, in place.
  !> forcing(nf, ncol, nmem), params(np, ncol, nmem) (per column and member), rootfr(nlev, ncol);
  !> state wliq, wice, tsoil
  !> (nlev, ncol, nmem), zwt, wa, wcanopy, wsnow, wpond, tskin, tsnow, dsnow (ncol, nmem); fluxes(nx, ncol, nmem)
  !> accumulated. colerr(ncol, nmem) receives a per-column error code (0 = ok); ierr is the number of
  !> failed columns, or -1 when the sizes or dt are inconsistent (nothing is touched then).
  !> Adaptive sub-stepping: a step of one column and member that fails its sanity checks (non-finite
  !> state, singular solve, temperature out of range), ends rough (surface temperature far from the
  !> linearisation point, colm_column) or changes a soil temperature by more than dtemp_substep is
  !> redone from a copy of that column's state and flux accumulators taken at the
  !> start of the step, as n steps of dt/n (n = 2, 4, ..., max_substeps) with the same forcing; the
  !> first n whose sub-steps all pass is kept, at the finest n a sane result is kept anyway, and only
  !> a failure there is reported. Deterministic and local to the column and member. (The logic is
  !> here, not in a helper, to keep the un-split path free of an extra call layer.)
  subroutine colm_step(nlev, ncol, nmem, nf, np, nx, nsteps, dt, forcing, params, rootfr, &
                       wliq, wice, tsoil, zwt, wa, wcanopy, wsnow, wpond, tskin, tsnow, dsnow, fluxes, &
                       colerr, ierr)
    integer(c_int), intent(in) :: nlev, ncol, nmem, nf, np, nx, nsteps
    real(c_double), intent(in) :: dt
    real(c_double), intent(in) :: forcing(nf, ncol, nmem), params(np, ncol, nmem), rootfr(nlev, ncol)
    real(c_double), intent(inout) :: wliq(nlev, ncol, nmem), wice(nlev, ncol, nmem)
    real(c_double), intent(inout) :: tsoil(nlev, ncol, nmem)
    real(c_double), intent(inout) :: zwt(ncol, nmem), wa(ncol, nmem), wcanopy(ncol, nmem)
    real(c_double), intent(inout) :: wsnow(ncol, nmem), wpond(ncol, nmem), tskin(ncol, nmem)
    real(c_double), intent(inout) :: tsnow(ncol, nmem), dsnow(ncol, nmem)
    real(c_double), intent(inout) :: fluxes(nx, ncol, nmem)
    integer(c_int), intent(inout) :: colerr(ncol, nmem)
    integer(c_int), intent(out) :: ierr
    real(dp) :: z(nlev), dz(nlev), zi(nlev)
    real(dp) :: wliq0(nlev), wice0(nlev), tsoil0(nlev), tprev(nlev), flx0(nx), sc0(nscalar), dtsub
    integer :: c, m, k, e, nsub, i, cm
    logical :: smooth, rough

    ierr = 0
    if (nf /= nforc .or. np /= npar .or. nx /= nflux .or. nlev < 4 .or. nsteps < 0 .or. &
        .not. (dt > 0.0_dp .and. dt <= 3600.0_dp)) then
      ierr = -1
      return
    end if
    call layer_geometry(z, dz, zi)
    ! Columns x members are independent: one OpenMP loop over both (each iteration touches only its
    ! own column and member; no reduction across columns, so results are bitwise the same for any
    ! thread count and schedule). Without OpenMP the directives are comments.
    !$omp parallel do default(none) schedule(dynamic, 8) &
    !$omp shared(ncol, nmem, nsteps, dt, forcing, params, rootfr, z, dz, zi, wliq, wice, tsoil, zwt, wa, &
    !$omp        wcanopy, wsnow, wpond, tskin, tsnow, dsnow, fluxes, colerr) &
    !$omp private(cm, c, m, k, e, nsub, i, dtsub, smooth, rough, wliq0, wice0, tsoil0, tprev, flx0, sc0)
    do cm = 0, ncol * nmem - 1
      c = mod(cm, ncol) + 1
      m = cm / ncol + 1
      e = err_ok
      do k = 1, nsteps
        ! start-of-step copy of this column's state and accumulators
        wliq0 = wliq(:, c, m)
        wice0 = wice(:, c, m)
        tsoil0 = tsoil(:, c, m)
        sc0 = [zwt(c, m), wa(c, m), wcanopy(c, m), wsnow(c, m), wpond(c, m), tskin(c, m), tsnow(c, m), &
               dsnow(c, m)]
        flx0 = fluxes(:, c, m)
        nsub = 1
        do
          dtsub = dt / real(nsub, dp)
          smooth = .true.
          do i = 1, nsub
            tprev = tsoil(:, c, m)
            call column_step(dtsub, forcing(:, c, m), params(:, c, m), rootfr(:, c), z, dz, zi, &
                             wliq(:, c, m), wice(:, c, m), tsoil(:, c, m), zwt(c, m), wa(c, m), &
                             wcanopy(c, m), wsnow(c, m), wpond(c, m), tskin(c, m), tsnow(c, m), dsnow(c, m), &
                             fluxes(:, c, m), e, rough)
            if (e /= err_ok) exit
            if (rough .or. any(abs(tsoil(:, c, m) - tprev) > dtemp_substep)) then
              smooth = .false.
              if (nsub < max_substeps) exit
            end if
          end do
          if (e == err_hydmodel) exit                            ! sub-stepping cannot help
          if (e == err_ok .and. (smooth .or. nsub >= max_substeps)) exit
          if (nsub >= max_substeps) exit                         ! finest sub-steps failed: report
          wliq(:, c, m) = wliq0
          wice(:, c, m) = wice0
          tsoil(:, c, m) = tsoil0
          zwt(c, m) = sc0(1)
          wa(c, m) = sc0(2)
          wcanopy(c, m) = sc0(3)
          wsnow(c, m) = sc0(4)
          wpond(c, m) = sc0(5)
          tskin(c, m) = sc0(6)
          tsnow(c, m) = sc0(7)
          dsnow(c, m) = sc0(8)
          fluxes(:, c, m) = flx0
          nsub = 2 * nsub
        end do
        if (e /= err_ok) exit
      end do
      colerr(c, m) = int(e, c_int)
    end do
    !$omp end parallel do
    ierr = int(count(colerr /= 0), c_int)
  end subroutine colm_step
end module colm_api
