!> Soil temperature: thermal properties, the Crank-Nicolson tridiagonal solve with the linearised
!> surface energy balance as top boundary and zero flux at the bottom, snow melt and soil freeze/thaw.
module colm_thermal
  use colm_kinds, only: dp
  use colm_const, only: tfrz, hfus, denh2o, denice, cpliq, cpice, tkwat, tkice, tkair
  implicit none
  private
  public :: thermal_conductivity, heat_capacity, heat_setup, heat_solve, snow_melt, phase_change
  public :: snow_conductivity, new_snow_density, snow_compaction

  real(dp), parameter :: cnfac = 0.5_dp   !< Crank-Nicolson weight of the old time level
  real(dp), parameter :: log_tkwat = log(tkwat), log_tkice = log(tkice), inv_ln10 = 1.0_dp / log(10.0_dp)

contains

  !> Layer thermal conductivity (W/m/K), Johansen (1975) as in CoLM: Ke tk_sat + (1 - Ke) tk_dry,
  !> tk_sat = tksol^(1-theta_s) tkwat^(fl theta_s) tkice^((1-fl) theta_s) (log_tksol = log(tksol), derived once).
  !> logs: log of each layer's relative liquid saturation, guarded >= 0.01 (colm_soil::soil_psi_layers).
  pure subroutine thermal_conductivity(theta_s, log_tksol, tkdry, dz, wliq, wice, t, logs, tk)
    real(dp), intent(in) :: theta_s, log_tksol, tkdry
    real(dp), intent(in), contiguous :: dz(:), wliq(:), wice(:), t(:), logs(:)
    real(dp), intent(out), contiguous :: tk(:)
    real(dp) :: satw, fl, dke, tksat, wl, wi, tksat_u
    integer :: j
    tksat_u = exp((1.0_dp - theta_s) * log_tksol + theta_s * log_tkwat)   ! no ice: one exp per column
    do j = 1, size(dz)
      wl = max(wliq(j), 0.0_dp)
      wi = max(wice(j), 0.0_dp)
      satw = min(1.0_dp, (wl / denh2o + wi / denice) / (dz(j) * theta_s))
      if (satw > 1.0e-7_dp) then
        if (t(j) >= tfrz .and. wi > 0.0_dp) then
          dke = max(0.0_dp, log10(satw) + 1.0_dp)
        else if (t(j) >= tfrz) then
          ! no ice: satw is the liquid saturation, whose log the caller has (below 0.1, dke = 0)
          dke = max(0.0_dp, logs(j) * inv_ln10 + 1.0_dp)
        else
          dke = satw
        end if
        if (wi > 0.0_dp) then
          fl = wl / (wl + wi)
          ! tksol^(1-theta_s) tkwat^(fl theta_s) tkice^((1-fl) theta_s), with one exp
          tksat = exp((1.0_dp - theta_s) * log_tksol + theta_s * (fl * log_tkwat + (1.0_dp - fl) * log_tkice))
        else
          tksat = tksat_u
        end if
        tk(j) = dke * tksat + (1.0_dp - dke) * tkdry
      else
        tk(j) = tkdry
      end if
    end do
  end subroutine thermal_conductivity

  !> Layer heat capacity (J/m2/K): csol (1 - theta_s) dz + cpice wice + cpliq wliq.
  pure subroutine heat_capacity(theta_s, csol, dz, wliq, wice, cv)
    real(dp), intent(in) :: theta_s, csol
    real(dp), intent(in), contiguous :: dz(:), wliq(:), wice(:)
    real(dp), intent(out), contiguous :: cv(:)
    cv = csol * (1.0_dp - theta_s) * dz + cpice * max(wice, 0.0_dp) + cpliq * max(wliq, 0.0_dp)
  end subroutine heat_capacity

  !> Thermal conductivity of snow of density rho (kg/m3), Jordan (1991) as CoLM
  !> (MOD_SoilThermalParameters.F90): tkair + (7.75e-5 rho + 1.105e-6 rho^2)(tkice - tkair) (W/m/K).
  elemental real(dp) function snow_conductivity(rho) result(tk)
    real(dp), intent(in) :: rho
    tk = tkair + (7.75e-5_dp * rho + 1.105e-6_dp * rho * rho) * (tkice - tkair)
  end function snow_conductivity

  !> Density of newly fallen snow (kg/m3) at air temperature ta (K), CoLM (MOD_RainSnowTemp.F90):
  !> 50 + 1.7 (17)^1.5 above T_f + 2 K, 50 + 1.7 (ta - T_f + 15)^1.5 down to T_f - 15 K, 50 below
  !> (CoLM's newer cold-snow and wind terms are left out).
  elemental real(dp) function new_snow_density(ta) result(rho)
    real(dp), intent(in) :: ta
    if (ta > tfrz + 2.0_dp) then
      rho = 50.0_dp + 1.7_dp * 17.0_dp**1.5_dp
    else if (ta > tfrz - 15.0_dp) then
      rho = 50.0_dp + 1.7_dp * (ta - tfrz + 15.0_dp)**1.5_dp
    else
      rho = 50.0_dp
    end if
  end function new_snow_density

  !> Compaction of a single snow layer over dt (s), CoLM snowcompaction (MOD_SnowLayersCombineDivide.F90):
  !> destructive metamorphism c3 exp(-c4 (T_f - T)) (reduced above 100 kg/m3) and overburden by half
  !> the layer's own weight over the viscosity 4 (rho/450) exp(0.1 (T_f - T) + c2 rho) 7.62237e6 (dry
  !> snow; melt and wind-drift compaction are left out). The depth dsnow (m) never falls below the
  !> depth of solid ice, wsnow/917.
  pure subroutine snow_compaction(dt, wsnow, tsnow, dsnow)
    real(dp), intent(in) :: dt, wsnow, tsnow
    real(dp), intent(inout) :: dsnow
    real(dp), parameter :: c2 = 23.0e-3_dp, c3 = 2.777e-6_dp, c4 = 0.04_dp, dm = 100.0_dp
    real(dp) :: bi, td, ddz1, ddz2, eta
    if (wsnow <= 0.1_dp .or. dsnow <= 0.0_dp) return
    if (1.0_dp - wsnow / (denice * dsnow) <= 0.001_dp) return
    bi = wsnow / dsnow
    td = tfrz - min(tsnow, tfrz)
    ddz1 = -c3 * exp(-c4 * td)
    if (bi > dm) ddz1 = ddz1 * exp(-46.0e-3_dp * (bi - dm))
    eta = 4.0_dp * (bi / 450.0_dp) * exp(0.1_dp * td + c2 * bi) * 7.62237e6_dp
    ddz2 = -(0.5_dp * wsnow) / eta
    dsnow = max(dsnow * (1.0_dp + (ddz1 + ddz2) * dt), wsnow / denice)
  end subroutine snow_compaction

  !> Crank-Nicolson step of c_j dz_j dT_j/dt = G_{j-1} - G_j, prepared once per time step for any top
  !> flux. Interface conductivity: the harmonic mean weighted by distance to the interface; zero flux
  !> at the bottom. The rows below the top are eliminated from the bottom up, t_j = e_j + f_j t_{j-1}
  !> (j >= 2), so that heat_solve can impose the linearised surface flux of each energy pass with one
  !> back-substitution. Top row without the surface flux: b1 t_1 + c1 t_2 = r1; fact1 = dt/cv_1.
  !> info = 1 on a zero, subnormal or NaN pivot.
  pure subroutine heat_setup(dt, z, zi, tk, cv, t, e, f, b1, c1, r1, fact1, info)
    real(dp), intent(in) :: dt
    real(dp), intent(in), contiguous :: z(:), zi(:), tk(:), cv(:), t(:)
    real(dp), intent(out) :: b1, c1, r1, fact1
    real(dp), intent(out), contiguous :: e(:), f(:)
    integer, intent(out) :: info
    real(dp), dimension(size(t)) :: tki, fn, fact, dzp, a, b, c, r
    real(dp) :: den
    integer :: j, n
    n = size(t)
    info = 0
    do j = 1, n - 1
      dzp(j) = z(j + 1) - z(j)
      tki(j) = tk(j) * tk(j + 1) * dzp(j) / (tk(j) * (z(j + 1) - zi(j)) + tk(j + 1) * (zi(j) - z(j)))
      fn(j) = tki(j) * (t(j) - t(j + 1)) / dzp(j)
    end do
    dzp(n) = 1.0_dp
    tki(n) = 0.0_dp
    fn(n) = 0.0_dp
    fact = dt / cv
    c1 = -(1.0_dp - cnfac) * fact(1) * tki(1) / dzp(1)
    b1 = 1.0_dp - c1
    r1 = t(1) - fact(1) * cnfac * fn(1)
    fact1 = fact(1)
    do j = 2, n
      a(j) = -(1.0_dp - cnfac) * fact(j) * tki(j - 1) / dzp(j - 1)
      c(j) = -(1.0_dp - cnfac) * fact(j) * tki(j) / dzp(j)
      b(j) = 1.0_dp - a(j) - c(j)
      r(j) = t(j) + cnfac * fact(j) * (fn(j - 1) - fn(j))
    end do
    e(1) = 0.0_dp
    f(1) = 0.0_dp
    den = b(n)
    do j = n, 2, -1
      if (j < n) den = b(j) + c(j) * f(j + 1)
      if (.not. (abs(den) > tiny(1.0_dp))) then
        info = 1
        return
      end if
      if (j < n) then
        e(j) = (r(j) - c(j) * e(j + 1)) / den
      else
        e(j) = r(j) / den
      end if
      f(j) = -a(j) / den
    end do
  end subroutine heat_setup

  !> Temperatures after the step for the surface flux G_0 = hs + dhsdt (T_1' - T_1) (W/m2, into the
  !> top node, implicit), from heat_setup's elimination; t (in: old, out: new) and the heat that
  !> entered the top (J/m2) in gsoil. info = 1 on a zero, subnormal or NaN pivot.
  pure subroutine heat_solve(dt, e, f, b1, c1, r1, fact1, hs, dhsdt, t, gsoil, info)
    real(dp), intent(in) :: dt, b1, c1, r1, fact1, hs, dhsdt
    real(dp), intent(in), contiguous :: e(:), f(:)
    real(dp), intent(inout), contiguous :: t(:)
    real(dp), intent(out) :: gsoil
    integer, intent(out) :: info
    real(dp) :: den, t1
    integer :: j
    info = 0
    gsoil = 0.0_dp
    den = (b1 - fact1 * dhsdt) + c1 * f(2)
    if (.not. (abs(den) > tiny(1.0_dp))) then
      info = 1
      return
    end if
    t1 = (r1 + fact1 * (hs - dhsdt * t(1)) - c1 * e(2)) / den
    gsoil = (hs + dhsdt * (t1 - t(1))) * dt
    t(1) = t1
    do j = 2, size(t)
      t(j) = e(j) + f(j) * t(j - 1)
    end do
  end subroutine heat_solve

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

  !> Freeze liquid water below T_f and melt ice above T_f with the layer's heat excess/deficit (CoLM
  !> meltf, MOD_PhaseChange.F90). Below freezing only the liquid water above supercool (kg/m2, the
  !> supercooled water the freezing-point depression holds, CoLM) freezes; the heat deficit left then
  !> stays as a temperature below T_f. Freezing is also limited to wliq denice/denh2o so that the 9 %
  !> expansion can always be expelled as liquid (keeping theta <= theta_s after redistribution).
  elemental subroutine phase_change(cv, supercool, wliq, wice, t)
    real(dp), intent(in) :: cv, supercool
    real(dp), intent(inout) :: wliq, wice, t
    real(dp) :: energy, dm
    if (t < tfrz .and. wliq > supercool) then
      energy = (tfrz - t) * cv
      dm = min(energy / hfus, wliq - supercool, wliq * denice / denh2o)
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
