!> Surface energy and vapour fluxes: saturation humidity, aerodynamic resistance, the Swenson &
!> Lawrence (2014) soil resistance, a Jarvis-type canopy conductance, and the fluxes of the single
!> surface (skin = top soil layer) with their derivatives for the linearised energy balance.
module colm_energy
  use colm_kinds, only: dp
  use colm_const, only: tfrz, cpair, rdair, grav, vkc, stefan, denh2o, denice, zref, zlnd, roverg, hvap, hsub
  use colm_soil, only: soil_hyd_t
  implicit none
  private
  public :: qsat, aero_resistance, soil_resistance, canopy_conductance, snow_cover, wet_fraction
  public :: surface_terms_t, surface_terms

  !> Fluxes at the current surface temperature and their derivatives d/dTg (per K).
  type :: surface_terms_t
    real(dp) :: rnet = 0.0_dp, drnet = 0.0_dp    !< net radiation (W/m2)
    real(dp) :: sh = 0.0_dp, dsh = 0.0_dp        !< sensible heat (W/m2, upward)
    real(dp) :: esoil = 0.0_dp, desoil = 0.0_dp  !< soil evaporation (kg/m2/s)
    real(dp) :: htvp = 0.0_dp                     !< latent heat of the soil vapour flux (J/kg)
    real(dp) :: esnow = 0.0_dp, desnow = 0.0_dp  !< snow sublimation (kg/m2/s)
    real(dp) :: etr = 0.0_dp, detr = 0.0_dp      !< transpiration (kg/m2/s)
    real(dp) :: ecan = 0.0_dp, decan = 0.0_dp    !< evaporation of intercepted water (kg/m2/s)
  end type surface_terms_t

  real(dp), parameter :: dsl_max = 0.015_dp      !< maximum dry surface layer thickness (m)
  real(dp), parameter :: albedo_snow = 0.7_dp    !< albedo of snow (-)
  real(dp), parameter :: r_under_per_lsai = 30.0_dp  !< under-canopy resistance per unit LAI+SAI (s/m)

contains

  !> Saturation specific humidity qs (kg/kg) and dqs/dT (1/K) at temperature t (K) and pressure p
  !> (Pa); Tetens over water at or above freezing, over ice below.
  elemental subroutine qsat(t, p, qs, dqsdt)
    real(dp), intent(in) :: t, p
    real(dp), intent(out) :: qs, dqsdt
    real(dp) :: es, des, denom
    if (t >= tfrz) then
      es = 611.2_dp * exp(17.67_dp * (t - 273.15_dp) / (t - 29.65_dp))
      des = es * 17.67_dp * 243.5_dp / (t - 29.65_dp)**2
    else
      es = 611.2_dp * exp(21.8745584_dp * (t - 273.16_dp) / (t - 7.66_dp))
      des = es * 21.8745584_dp * 265.5_dp / (t - 7.66_dp)**2
    end if
    es = min(es, 0.5_dp * p)
    denom = p - 0.378_dp * es
    qs = 0.622_dp * es / denom
    dqsdt = 0.622_dp * p * des / denom**2
  end subroutine qsat

  !> Aerodynamic resistance (s/m) for heat and vapour between the surface and the reference height:
  !> neutral log profile with z0h = z0m/10 times a bulk-Richardson stability function (Louis 1979
  !> form of Monin-Obukhov similarity), wind at least 0.5 m/s.
  !> lm = log(zref/z0m), lh = log(zref/z0h) are derived once per column (colm_api::colm_derive).
  elemental real(dp) function aero_resistance(ta, tg, wind, z0m, lm, lh) result(ra)
    real(dp), intent(in) :: ta, tg, wind, z0m, lm, lh
    real(dp) :: u, r0, rib, fstab, c
    u = max(wind, 0.5_dp)
    r0 = lm * lh / (vkc**2 * u)
    rib = grav * zref * (ta - tg) / (ta * u * u)
    if (rib >= 0.0_dp) then
      rib = min(rib, 1.0_dp)
      fstab = 1.0_dp / (1.0_dp + 5.0_dp * rib)**2
    else
      rib = max(rib, -5.0_dp)
      c = 75.0_dp * vkc**2 / (lm * lh) * sqrt(zref / z0m)
      fstab = 1.0_dp - 15.0_dp * rib / (1.0_dp + c * sqrt(-rib))
    end if
    ra = r0 / fstab
  end function aero_resistance

  !> Soil surface resistance to evaporation (s/m), Swenson & Lawrence (2014) as in CLM5: the dry
  !> surface layer thickness dsl = dsl_max (0.8 eff_por - theta_1)/(0.8 theta_s - theta_air) over the
  !> vapour diffusivity 2.12e-5 (T/273.15)^1.75 times the tortuosity eps^2 (eps/theta_s)^(3/max(3,b)),
  !> eps = theta_s - theta_air (theta_air and the tortuosity are derived once, colm_soil::derive_soil).
  elemental real(dp) function soil_resistance(h, wliq1, wice1, dz1, tg) result(rss)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: wliq1, wice1, dz1, tg
    real(dp) :: vwc, eff, dv, dsl, x, sx
    vwc = max(wliq1, 1.0e-6_dp) / (dz1 * denh2o)
    eff = max(0.01_dp, h%theta_s - min(h%theta_s, wice1 / (dz1 * denice)))
    x = max(tg, 200.0_dp) / 273.15_dp
    sx = sqrt(x)
    dv = 2.12e-5_dp * (x * sx * sqrt(sx))                ! x^1.75 = x x^(1/2) x^(1/4)
    dsl = dsl_max * max(0.001_dp, 0.8_dp * eff - vwc) / max(0.001_dp, 0.8_dp * h%theta_s - h%theta_air)
    dsl = min(dsl, dsl_max)
    rss = min(1.0e6_dp, dsl / (dv * h%tort))
  end function soil_resistance

  !> Jarvis-type canopy conductance (m/s): lai gsmax f(SW) f(VPD) f(T) beta_t with
  !> f(SW) = SW (1000 + 100)/(1000 (SW + 100)) capped at 1, f(VPD) = 1/(1 + 40 (qs(Ta) - qa)),
  !> f(T) = 1 - 0.0016 (298 - Ta)^2 clipped to [0, 1].
  elemental real(dp) function canopy_conductance(sw, ta, qa, p, lai, gsmax, btran) result(gs)
    real(dp), intent(in) :: sw, ta, qa, p, lai, gsmax, btran
    real(dp) :: fsw, fvpd, ft, qsa, dq
    call qsat(ta, p, qsa, dq)
    fsw = min(1.0_dp, max(sw, 0.0_dp) * 1100.0_dp / (1000.0_dp * (max(sw, 0.0_dp) + 100.0_dp)))
    fvpd = 1.0_dp / (1.0_dp + 40.0_dp * max(0.0_dp, qsa - qa))
    ft = min(1.0_dp, max(0.0_dp, 1.0_dp - 0.0016_dp * (298.0_dp - ta)**2))
    gs = lai * gsmax * fsw * fvpd * ft * btran
  end function canopy_conductance

  !> Wet fraction of the canopy, [wcan/(0.1 lsai)]^(2/3) capped at 1, of the canopy water wcan (kg/m2)
  !> and lsai = LAI + SAI; 0 without canopy or water.
  elemental real(dp) function wet_fraction(wcan, lsai) result(fwet)
    real(dp), intent(in) :: wcan, lsai
    fwet = 0.0_dp
    if (lsai > 0.0_dp .and. wcan > 0.0_dp) fwet = min(1.0_dp, exp(log(wcan / (0.1_dp * lsai)) * (2.0_dp / 3.0_dp)))
  end function wet_fraction

  !> Snow-cover fraction of the ground, CoLM snowfraction (MOD_SnowFraction.F90, m = 1 as CLM4.5):
  !> tanh(dsnow / (2.5 zlnd rho/100)), rho = wsnow/dsnow the snow density (kg/m3); 0 without snow.
  elemental real(dp) function snow_cover(wsnow, dsnow) result(fsno)
    real(dp), intent(in) :: wsnow, dsnow
    fsno = 0.0_dp
    if (dsnow > 0.0_dp .and. wsnow > 0.0_dp) fsno = tanh(dsnow / (2.5_dp * zlnd * (wsnow / dsnow) / 100.0_dp))
  end function snow_cover

  !> Fluxes of the single surface at temperature tg (K) and their derivatives (rs: stomatal resistance
  !> 1/canopy_conductance, s/m, computed once per step by the caller); the stability of the
  !> aerodynamic resistance is evaluated with the surface temperature tstab (K).
  !> Vegetated fraction fveg = 1 - exp(-0.5 (LAI+SAI)); snow cover fsno (snow_cover); wet canopy
  !> fraction fwet (wet_fraction). Soil evaporation as CoLM (MOD_Thermal.F90, MOD_GroundFluxes.F90):
  !> q_g = hr q_sat(T_g), hr = exp(psi_1/(roverg T_g)) with psi_1 = psit1 (mm) from the total (liquid +
  !> ice) water of layer 1 (computed by the caller); no flux when hr q_sat < q_a < q_sat (q_g = q_a);
  !> dew (q_a > q_g) without the soil
  !> resistance; latent heat of sublimation (htvp) when layer 1 holds ice but no liquid water.
  pure subroutine surface_terms(h, tg, tstab, ta, qa, p, wind, sw, lw, lai, sai, z0m, lm, lh, fveg, albedo, &
                                emis, rs, wliq1, wice1, dz1, psit1, fwet, fsno, st)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: tg, tstab, ta, qa, p, wind, sw, lw, lai, sai, z0m, lm, lh, fveg, albedo, emis, rs
    real(dp), intent(in) :: wliq1, wice1, dz1, psit1, fwet, fsno
    type(surface_terms_t), intent(out) :: st
    real(dp) :: rho, ra, rss, lsai, alb, qs, dqs, hrel, qg, rg
    rho = p / (rdair * ta * (1.0_dp + 0.61_dp * qa))
    ra = aero_resistance(ta, tstab, wind, z0m, lm, lh)
    lsai = lai + sai
    alb = (1.0_dp - fsno) * albedo + fsno * albedo_snow
    ! radiation and sensible heat
    st%rnet = (1.0_dp - alb) * sw + emis * lw - emis * stefan * tg**4
    st%drnet = -4.0_dp * emis * stefan * tg**3
    st%sh = rho * cpair * (tg - ta) / ra
    st%dsh = rho * cpair / ra
    call qsat(tg, p, qs, dqs)
    ! soil evaporation from the snow-free part (CoLM: suction from the liquid + ice water of layer 1)
    hrel = exp(psit1 / (roverg * tg))
    qg = hrel * qs
    st%htvp = hvap
    if (wliq1 <= 0.0_dp .and. wice1 > 0.0_dp) st%htvp = hsub
    if (qs > qa .and. qa > qg) then
      ! air between the soil-air humidity and saturation: no exchange (CoLM q_g = q_a)
      st%esoil = 0.0_dp
      st%desoil = 0.0_dp
    else
      if (qa > qg) then
        rg = ra + r_under_per_lsai * lsai                  ! dew: no soil resistance
      else
        rss = soil_resistance(h, wliq1, wice1, dz1, tg)
        rg = ra + rss + r_under_per_lsai * lsai
      end if
      st%esoil = (1.0_dp - fsno) * rho * (qg - qa) / rg
      st%desoil = (1.0_dp - fsno) * rho * hrel * dqs / rg
    end if
    ! sublimation from the snow-covered part
    st%esnow = fsno * rho * (qs - qa) / ra
    st%desnow = fsno * rho * dqs / ra
    ! canopy: wet leaves evaporate, dry leaves transpire (no dew through stomata)
    st%ecan = fveg * fwet * rho * (qs - qa) / ra
    st%decan = fveg * fwet * rho * dqs / ra
    if (qs > qa) then
      st%etr = fveg * (1.0_dp - fwet) * rho * (qs - qa) / (ra + rs)
      st%detr = fveg * (1.0_dp - fwet) * rho * dqs / (ra + rs)
    else
      st%etr = 0.0_dp
      st%detr = 0.0_dp
    end if
  end subroutine surface_terms

end module colm_energy
