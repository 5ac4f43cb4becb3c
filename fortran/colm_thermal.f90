!> Soil temperature: thermal properties, the Crank-Nicolson tridiagonal solve with the linearised
!> surface energy balance as top boundary and zero flux at the bottom, snow melt and soil freeze/thaw.
module colm_thermal
  use colm_kinds, only: dp
  use colm_const, only: tfrz, hfus, denh2o, denice, cpliq, cpice, tkwat, tkice
  use colm_linalg, only: tridiag
  implicit none
  private
  public :: thermal_conductivity, heat_capacity, soil_temperature, snow_melt, phase_change

  real(dp), parameter :: cnfac = 0.5_dp   !< Crank-Nicolson weight of the old time level
  real(dp), parameter :: log_tkwat = log(tkwat), log_tkice = log(tkice)

contains

  !> Layer thermal conductivity (W/m/K), Johansen (1975) as in CoLM: Ke tk_sat + (1 - Ke) tk_dry,
  !> tk_sat = tksol^(1-theta_s) tkwat^(fl theta_s) tkice^((1-fl) theta_s).
  pure subroutine thermal_conductivity(theta_s, tksol, tkdry, dz, wliq, wice, t, tk)
    real(dp), intent(in) :: theta_s, tksol, tkdry, dz(:), wliq(:), wice(:), t(:)
    real(dp), intent(out) :: tk(:)
    real(dp) :: satw, fl, dke, tksat, wl, wi
    integer :: j
    do j = 1, size(dz)
      wl = max(wliq(j), 0.0_dp)
      wi = max(wice(j), 0.0_dp)
      satw = min(1.0_dp, (wl / denh2o + wi / denice) / (dz(j) * theta_s))
      if (satw > 1.0e-7_dp) then
        if (t(j) >= tfrz) then
          dke = max(0.0_dp, log10(satw) + 1.0_dp)
        else
          dke = satw
        end if
        fl = wl / (wl + wi)
        ! tksol^(1-theta_s) tkwat^(fl theta_s) tkice^((1-fl) theta_s), with one exp
        tksat = exp((1.0_dp - theta_s) * log(tksol) + theta_s * (fl * log_tkwat + (1.0_dp - fl) * log_tkice))
        tk(j) = dke * tksat + (1.0_dp - dke) * tkdry
      else
        tk(j) = tkdry
      end if
    end do
  end subroutine thermal_conductivity

  !> Layer heat capacity (J/m2/K): csol (1 - theta_s) dz + cpice wice + cpliq wliq; the snowpack
  !> (wsnow, kg/m2) is lumped into the top layer.
  pure subroutine heat_capacity(theta_s, csol, dz, wliq, wice, wsnow, cv)
    real(dp), intent(in) :: theta_s, csol, dz(:), wliq(:), wice(:), wsnow
    real(dp), intent(out) :: cv(:)
    cv = csol * (1.0_dp - theta_s) * dz + cpice * max(wice, 0.0_dp) + cpliq * max(wliq, 0.0_dp)
    cv(1) = cv(1) + cpice * max(wsnow, 0.0_dp)
  end subroutine heat_capacity

  !> Crank-Nicolson step of c_j dz_j dT_j/dt = G_{j-1} - G_j. Top: G_0 = hs + dhsdt (T_1' - T_1)
  !> (net surface heat flux into the soil, W/m2, linearised, implicit); interfaces conductivity is
  !> the harmonic mean weighted by distance to the interface; zero flux at the bottom.
  !> Returns the new temperatures in t and the heat that entered the top (J/m2) in gsoil.
  pure subroutine soil_temperature(dt, z, zi, tk, cv, hs, dhsdt, t, gsoil, info)
    real(dp), intent(in) :: dt, z(:), zi(:), tk(:), cv(:), hs, dhsdt
    real(dp), intent(inout) :: t(:)
    real(dp), intent(out) :: gsoil
    integer, intent(out) :: info
    real(dp), dimension(size(t)) :: tki, fn, fact, dzp, a, b, c, r, tnew
    integer :: j, n
    n = size(t)
    do j = 1, n - 1
      dzp(j) = z(j + 1) - z(j)
      tki(j) = tk(j) * tk(j + 1) * dzp(j) / (tk(j) * (z(j + 1) - zi(j)) + tk(j + 1) * (zi(j) - z(j)))
      fn(j) = tki(j) * (t(j) - t(j + 1)) / dzp(j)
    end do
    dzp(n) = 1.0_dp
    tki(n) = 0.0_dp
    fn(n) = 0.0_dp
    fact = dt / cv
    ! top layer: implicit surface flux, Crank-Nicolson conduction
    a(1) = 0.0_dp
    c(1) = -(1.0_dp - cnfac) * fact(1) * tki(1) / dzp(1)
    b(1) = 1.0_dp - fact(1) * dhsdt - c(1)
    r(1) = t(1) + fact(1) * (hs - dhsdt * t(1) - cnfac * fn(1))
    do j = 2, n
      a(j) = -(1.0_dp - cnfac) * fact(j) * tki(j - 1) / dzp(j - 1)
      c(j) = -(1.0_dp - cnfac) * fact(j) * tki(j) / dzp(j)
      b(j) = 1.0_dp - a(j) - c(j)
      r(j) = t(j) + cnfac * fact(j) * (fn(j - 1) - fn(j))
    end do
    call tridiag(a, b, c, r, tnew, info)
    if (info /= 0) then
      gsoil = 0.0_dp
      return
    end if
    gsoil = (hs + dhsdt * (tnew(1) - t(1))) * dt
    t = tnew
  end subroutine soil_temperature

  !> Melt snow with the energy of a top layer above freezing: melt (kg/m2) = min(wsnow, cv1 (T1 - Tf)/Lf).
  pure subroutine snow_melt(cv1, t1, wsnow, melt)
    real(dp), intent(in) :: cv1
    real(dp), intent(inout) :: t1, wsnow
    real(dp), intent(out) :: melt
    melt = 0.0_dp
    if (wsnow > 0.0_dp .and. t1 > tfrz) then
      melt = min(wsnow, cv1 * (t1 - tfrz) / hfus)
      wsnow = wsnow - melt
      t1 = t1 - melt * hfus / cv1
    end if
  end subroutine snow_melt

  !> Freeze liquid water below Tf and melt ice above Tf with the layer's sensible heat excess/deficit.
  !> Freezing is limited to wliq denice/denh2o so that the 9 % expansion can always be expelled as
  !> liquid water (keeping theta <= theta_s after redistribution).
  elemental subroutine phase_change(cv, wliq, wice, t)
    real(dp), intent(in) :: cv
    real(dp), intent(inout) :: wliq, wice, t
    real(dp) :: energy, dm
    if (t < tfrz .and. wliq > 0.0_dp) then
      energy = (tfrz - t) * cv
      dm = min(energy / hfus, wliq * denice / denh2o)
      call transfer(wliq, wice, dm)
      t = tfrz - (energy - dm * hfus) / cv
    else if (t > tfrz .and. wice > 0.0_dp) then
      energy = (t - tfrz) * cv
      dm = min(energy / hfus, wice)
      call transfer(wice, wliq, dm)
      t = tfrz + (energy - dm * hfus) / cv
    end if
  end subroutine phase_change

  !> Move amount from store src to store dst so that src + dst is conserved to the rounding of the
  !> smaller store: the larger store is updated first and the amount it actually took is applied
  !> to the other (a tiny amount lost in the larger store's rounding is then not created or lost).
  elemental subroutine transfer(src, dst, amount)
    real(dp), intent(inout) :: src, dst
    real(dp), intent(in) :: amount
    real(dp) :: new, moved
    if (abs(dst) >= abs(src)) then
      new = dst + amount
      moved = new - dst
      dst = new
      src = src - moved
    else
      new = src - amount
      moved = src - new
      src = new
      dst = dst + moved
    end if
    if (src < 0.0_dp) then   ! rounding overshoot when the whole store moved
      dst = dst + src
      src = 0.0_dp
    end if
  end subroutine transfer
end module colm_thermal
