!> The only module numpy.f2py reads: explicit-shape real(c_double) arrays, loops over members and
!> columns (and time steps) inside Fortran, error codes instead of stops.
module colm_api
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use colm_kinds, only: dp
  use colm_const, only: nforc, npar, nflux, nlstate, ncstate, err_ok, err_args, err_hydmodel, dtemp_substep, &
                        max_substeps, forcing_names, param_names, flux_names, lstate_names, cstate_names, &
                        is_wliq, is_wice, is_tsoil, ic_zwt, ic_wa, ic_wcanopy, ic_wsnow, ic_wpond, ic_tskin, &
                        ic_tsnow, ic_dsnow
  use colm_soil, only: layer_geometry
  use colm_column, only: column_step, derive_params
  implicit none
  private
  public :: api_version, colm_layout, colm_field_name, colm_geometry, colm_threads, colm_derive, colm_step

contains

  !> Version of the Fortran API (bumped when an argument list changes).
  subroutine api_version(version)
    integer(c_int), intent(out) :: version
    version = 7
  end subroutine api_version

  !> Name of entry i (1-based) of array group (1 = forcing, 2 = parameters, 3 = fluxes, 4 = per-layer
  !> state, 5 = per-column state), blank-padded to 32 characters; ierr = 0, or 1 for an unknown group or
  !> an index out of range (name blank). Python packs and reads these arrays by these names
  !> (landimg.model.column), never by position.
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
    case (4)
      if (i < 1 .or. i > nlstate) return
      name = lstate_names(i)
    case (5)
      if (i < 1 .or. i > ncstate) return
      name = cstate_names(i)
    case default
      return
    end select
    ierr = 0
  end subroutine colm_field_name

  !> Entries of the forcing, parameter and flux arrays (first dimension) and of the per-layer and
  !> per-column state arrays (last dimension) expected by colm_step.
  subroutine colm_layout(nf, np, nx, nls, ncs)
    integer(c_int), intent(out) :: nf, np, nx, nls, ncs
    nf = nforc
    np = npar
    nx = nflux
    nls = nlstate
    ncs = ncstate
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
  !> forcing(nf, ncol, nmem), params(np, ncol, nmem) (per column and member), rootfr(nlev, ncol); the
  !> state by name (colm_const): lstate(nlev, ncol, nmem, nls) one value per soil layer (wliq, wice,
  !> tsoil) and cstate(ncol, nmem, ncs) one value per column (zwt, wa, wcanopy, wsnow, wpond, tskin, tsnow,
  !> dsnow); fluxes(nx, ncol, nmem) accumulated. colerr(ncol, nmem) receives a per-column error code
  !> (0 = ok); ierr is the number of failed columns, or -1 when the sizes or dt are inconsistent (nothing
  !> is touched then).
  !> Adaptive sub-stepping: a step of one column and member that fails its sanity checks (non-finite
  !> state, singular solve, temperature out of range), ends rough (surface temperature far from the
  !> linearisation point, colm_column) or changes a soil temperature by more than dtemp_substep is
  !> redone from a copy of that column's state and flux accumulators taken at the
  !> start of the step, as n steps of dt/n (n = 2, 4, ..., max_substeps) with the same forcing; the
  !> first n whose sub-steps all pass is kept, at the finest n a sane result is kept anyway, and only
  !> a failure there is reported. Deterministic and local to the column and member. (The logic is
  !> here, not in a helper, to keep the un-split path free of an extra call layer.)
  subroutine colm_step(nlev, ncol, nmem, nf, np, nx, nls, ncs, nsteps, dt, forcing, params, rootfr, &
                       lstate, cstate, fluxes, colerr, ierr)
    integer(c_int), intent(in) :: nlev, ncol, nmem, nf, np, nx, nls, ncs, nsteps
    real(c_double), intent(in) :: dt
    real(c_double), intent(in) :: forcing(nf, ncol, nmem), params(np, ncol, nmem), rootfr(nlev, ncol)
    real(c_double), intent(inout) :: lstate(nlev, ncol, nmem, nls), cstate(ncol, nmem, ncs)
    real(c_double), intent(inout) :: fluxes(nx, ncol, nmem)
    integer(c_int), intent(inout) :: colerr(ncol, nmem)
    integer(c_int), intent(out) :: ierr
    real(dp) :: z(nlev), dz(nlev), zi(nlev)
    real(dp) :: ls0(nlev, nlstate), tprev(nlev), flx0(nx), cs0(ncstate), dtsub
    integer :: c, m, k, e, nsub, i, cm
    logical :: smooth, rough

    ierr = 0
    if (nf /= nforc .or. np /= npar .or. nx /= nflux .or. nls /= nlstate .or. ncs /= ncstate .or. nlev < 4 .or. &
        nsteps < 0 .or. .not. (dt > 0.0_dp .and. dt <= 3600.0_dp)) then
      ierr = -1
      return
    end if
    call layer_geometry(z, dz, zi)
    ! Columns x members are independent: one OpenMP loop over both (each iteration touches only its
    ! own column and member; no reduction across columns, so results are bitwise the same for any
    ! thread count and schedule). Without OpenMP the directives are comments.
    !$omp parallel do default(none) schedule(dynamic, 8) &
    !$omp shared(ncol, nmem, nsteps, dt, forcing, params, rootfr, z, dz, zi, lstate, cstate, fluxes, colerr) &
    !$omp private(cm, c, m, k, e, nsub, i, dtsub, smooth, rough, ls0, tprev, flx0, cs0)
    do cm = 0, ncol * nmem - 1
      c = mod(cm, ncol) + 1
      m = cm / ncol + 1
      e = err_ok
      do k = 1, nsteps
        ! start-of-step copy of this column's state and accumulators
        ls0 = lstate(:, c, m, :)
        cs0 = cstate(c, m, :)
        flx0 = fluxes(:, c, m)
        nsub = 1
        do
          dtsub = dt / real(nsub, dp)
          smooth = .true.
          do i = 1, nsub
            tprev = lstate(:, c, m, is_tsoil)
            call column_step(dtsub, forcing(:, c, m), params(:, c, m), rootfr(:, c), z, dz, zi, &
                             lstate(:, c, m, is_wliq), lstate(:, c, m, is_wice), lstate(:, c, m, is_tsoil), &
                             cstate(c, m, ic_zwt), cstate(c, m, ic_wa), cstate(c, m, ic_wcanopy), &
                             cstate(c, m, ic_wsnow), cstate(c, m, ic_wpond), cstate(c, m, ic_tskin), &
                             cstate(c, m, ic_tsnow), cstate(c, m, ic_dsnow), fluxes(:, c, m), e, rough)
            if (e /= err_ok) exit
            if (rough .or. any(abs(lstate(:, c, m, is_tsoil) - tprev) > dtemp_substep)) then
              smooth = .false.
              if (nsub < max_substeps) exit
            end if
          end do
          if (e == err_hydmodel) exit                            ! sub-stepping cannot help
          if (e == err_ok .and. (smooth .or. nsub >= max_substeps)) exit
          if (nsub >= max_substeps) exit                         ! finest sub-steps failed: report
          lstate(:, c, m, :) = ls0
          cstate(c, m, :) = cs0
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
