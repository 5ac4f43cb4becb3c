!> The only module numpy.f2py reads: explicit-shape real(c_double) arrays, loops over members and
!> columns (and time steps) inside Fortran, error codes instead of stops.
module colm_api
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use colm_kinds, only: dp
  use colm_const, only: nforc, npar, nflux, err_ok, err_args
  use colm_soil, only: layer_geometry
  use colm_column, only: column_step
  implicit none
  private
  public :: api_version, colm_layout, colm_geometry, colm_step

contains

  !> Version of the Fortran API (bumped when an argument list changes).
  subroutine api_version(version)
    integer(c_int), intent(out) :: version
    version = 2
  end subroutine api_version

  !> Sizes of the forcing, parameter and flux arrays (first dimension) expected by colm_step.
  subroutine colm_layout(nf, np, nx)
    integer(c_int), intent(out) :: nf, np, nx
    nf = nforc
    np = npar
    nx = nflux
  end subroutine colm_layout

  !> CoLM layer geometry: node depth z, thickness dz and layer bottom zi (m), each (nlev).
  subroutine colm_geometry(nlev, z, dz, zi)
    integer(c_int), intent(in) :: nlev
    real(c_double), intent(out) :: z(nlev), dz(nlev), zi(nlev)
    call layer_geometry(z, dz, zi)
  end subroutine colm_geometry

  !> Step every column of every member nsteps times with the same forcing, in place.
  !> forcing(nf, ncol, nmem), params(np, ncol), rootfr(nlev, ncol); state wliq, wice, tsoil
  !> (nlev, ncol, nmem), zwt, wa, wcanopy, wsnow, wpond, tskin (ncol, nmem); fluxes(nx, ncol, nmem)
  !> accumulated. colerr(ncol, nmem) receives a per-column error code (0 = ok); ierr is the number of
  !> failed columns, or -1 when the sizes or dt are inconsistent (nothing is touched then).
  subroutine colm_step(nlev, ncol, nmem, nf, np, nx, nsteps, dt, forcing, params, rootfr, &
                       wliq, wice, tsoil, zwt, wa, wcanopy, wsnow, wpond, tskin, fluxes, colerr, ierr)
    integer(c_int), intent(in) :: nlev, ncol, nmem, nf, np, nx, nsteps
    real(c_double), intent(in) :: dt
    real(c_double), intent(in) :: forcing(nf, ncol, nmem), params(np, ncol), rootfr(nlev, ncol)
    real(c_double), intent(inout) :: wliq(nlev, ncol, nmem), wice(nlev, ncol, nmem)
    real(c_double), intent(inout) :: tsoil(nlev, ncol, nmem)
    real(c_double), intent(inout) :: zwt(ncol, nmem), wa(ncol, nmem), wcanopy(ncol, nmem)
    real(c_double), intent(inout) :: wsnow(ncol, nmem), wpond(ncol, nmem), tskin(ncol, nmem)
    real(c_double), intent(inout) :: fluxes(nx, ncol, nmem)
    integer(c_int), intent(inout) :: colerr(ncol, nmem)
    integer(c_int), intent(out) :: ierr
    real(dp) :: z(nlev), dz(nlev), zi(nlev)
    integer :: c, m, k, e

    ierr = 0
    if (nf /= nforc .or. np /= npar .or. nx /= nflux .or. nlev < 4 .or. nsteps < 0 .or. &
        .not. (dt > 0.0_dp .and. dt <= 3600.0_dp)) then
      ierr = -1
      return
    end if
    call layer_geometry(z, dz, zi)
    do m = 1, nmem
      do c = 1, ncol
        e = err_ok
        do k = 1, nsteps
          call column_step(dt, forcing(:, c, m), params(:, c), rootfr(:, c), z, dz, zi, &
                           wliq(:, c, m), wice(:, c, m), tsoil(:, c, m), zwt(c, m), wa(c, m), &
                           wcanopy(c, m), wsnow(c, m), wpond(c, m), tskin(c, m), fluxes(:, c, m), e)
          if (e /= err_ok) exit
        end do
        colerr(c, m) = int(e, c_int)
        if (e /= err_ok) ierr = ierr + 1
      end do
    end do
  end subroutine colm_step
end module colm_api
