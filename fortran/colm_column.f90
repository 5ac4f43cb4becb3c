!> One time step of one soil column: precipitation phase and interception, surface energy balance and
!> soil temperature, snow melt and freeze/thaw, infiltration/runoff, Richards solve with root uptake,
!> redistribution and the aquifer. Every kg of water moved is booked in the flux accumulators.
!> (Adaptive sub-stepping of a failed step: colm_api::colm_step.)
module colm_column
  use colm_kinds, only: dp
  use colm_const, only: tfrz, hvap, hsub, hfus, grav, denh2o, denice, cpice, snow_min_depth, &
                        err_ok, err_hydmodel, err_nonfinite, err_solver, err_temperature, &
                        if_tair, if_qair, if_psurf, if_precip, if_wind, if_swdown, if_lwdown, &
                        ip_theta_s, ip_b, ip_psi_s, ip_k_s, ip_csol, ip_tksol, ip_tkdry, ip_lai, ip_sai, &
                        ip_z0m, ip_albedo, ip_emis, ip_gsmax, ip_hydmodel, ip_theta_air, ip_tort, ip_s_fc, &
                        ip_log_tksol, ip_fveg, ip_fint, ip_log_zm, ip_log_zh, psi_min, zref, &
                        ix_precip, ix_evap_soil, ix_transpiration, ix_evap_canopy, ix_runoff_surface, &
                        ix_runoff_subsurface, ix_sensible, ix_latent, ix_snowmelt, ix_ground_heat
  use colm_soil, only: soil_hyd_t, valid_hydmodel, soil_psi
  use colm_hydrology, only: interception, ice_fraction, surface_runoff, root_stress, richards, groundwater
  use colm_energy, only: surface_terms_t, surface_terms, snow_cover, canopy_conductance
  use colm_thermal, only: thermal_conductivity, heat_capacity, heat_setup, heat_solve, snow_melt, phase_change, &
                          snow_conductivity, new_snow_density, snow_compaction
  implicit none
  private
  public :: column_step, derive_params

  real(dp), parameter :: tsane_min = 150.0_dp    !< lowest sane soil temperature (K)
  real(dp), parameter :: tsane_max = 400.0_dp    !< highest sane soil temperature (K)
  real(dp), parameter :: newton_reach = 40.0_dp  !< largest move of the re-linearisation point (K)
  !> a step whose surface temperature ends farther than this from the second linearisation point is
  !> flagged rough (colm_api::colm_step redoes it in sub-steps, as a step that changes by > 25 K)
  real(dp), parameter :: lin_reach = 10.0_dp

contains

  !> Advance one column by one step of dt seconds with forcing forc(nforc) and parameters par(npar).
  !> State (inout): wliq, wice (kg/m2), tsoil (K) per layer; zwt (m), wa, wcan, wsnow, wpond (kg/m2),
  !> tskin (K), tsnow (K, the snow layer; = tsoil(1) while the snow is too thin for a layer of its
  !> own), dsnow (m, snow depth). flx(nflux) accumulates the fluxes of the step. err = err_ok or an
  !> error code; rough = .true. when the linearised surface fluxes were used far (> lin_reach K) from
  !> their linearisation point.
  pure subroutine column_step(dt, forc, par, rootfr, z, dz, zi, wliq, wice, tsoil, zwt, wa, wcan, &
                              wsnow, wpond, tskin, tsnow, dsnow, flx, err, rough)
    real(dp), intent(in) :: dt, forc(:), par(:), rootfr(:), z(:), dz(:), zi(:)
    real(dp), intent(inout) :: wliq(:), wice(:), tsoil(:)
    real(dp), intent(inout) :: zwt, wa, wcan, wsnow, wpond, tskin, tsnow, dsnow, flx(:)
    integer, intent(out) :: err
    logical, intent(out) :: rough   !< the surface ended > lin_reach from the second linearisation

    type(soil_hyd_t) :: h
    type(surface_terms_t) :: st
    real(dp), dimension(size(wliq)) :: rootw, sink, fice, supercool, psil, dpsil, wliq_start
    ! heat-equation nodes: 1 = snow layer, 2..n+1 = soil layers (the snow node is used only when the
    ! snow is at least snow_min_depth deep: CoLM keeps thinner snow in the soil surface layer)
    real(dp), dimension(size(wliq) + 1) :: zz, zzi, tkk, cvv, tt, tstart, he, hf
    real(dp) :: hb1, hc1, hr1, hfact1
    real(dp) :: ta, qa, ps, prc, wind, sw, lw, lai, sai, fsno, cvsoil1
    real(dp) :: fliq, rain_dt, snow_dt, throughfall, btran, tg0, dtg, hs, dhs, gsoil
    real(dp) :: esoil_dt, esnow_dt, etr_dt, ecan_dt, sens, melt, gwat, rsur, qinfl, recharge
    real(dp) :: psit1, dpsit1, rstom
    real(dp) :: xs_top, rsub, tstab, lat_cut, tlin, rnet0, drnet0, turb, dturb, eliq, eice, wsno0, psit
    integer :: info, n, pass, j, k0
    logical :: snl

    err = err_ok
    rough = .false.
    n = size(wliq)
    h%model = nint(par(ip_hydmodel))
    if (.not. valid_hydmodel(h%model)) then
      err = err_hydmodel
      return
    end if
    h%theta_s = par(ip_theta_s)
    h%b = par(ip_b)
    h%psi_s = par(ip_psi_s)
    h%k_s = par(ip_k_s)
    h%theta_air = par(ip_theta_air)
    h%tort = par(ip_tort)
    h%s_fc = par(ip_s_fc)
    ta = forc(if_tair)
    qa = forc(if_qair)
    ps = forc(if_psurf)
    prc = forc(if_precip)
    wind = forc(if_wind)
    sw = forc(if_swdown)
    lw = forc(if_lwdown)
    lai = par(ip_lai)
    sai = par(ip_sai)

    ! 1. rain/snow split (liquid fraction 0 at Tf rising to 1 at Tf + 2 K), canopy interception,
    !    new snow with CoLM's fresh-snow density (rain passes through the snow to the soil)
    fliq = min(1.0_dp, max(0.0_dp, (ta - tfrz) / 2.0_dp))
    rain_dt = prc * fliq * dt
    snow_dt = prc * dt - rain_dt
    call interception(rain_dt, lai + sai, par(ip_fint), wcan, throughfall)
    if (snow_dt > 0.0_dp) then
      wsnow = wsnow + snow_dt
      dsnow = dsnow + snow_dt / new_snow_density(ta)
    end if
    snl = dsnow >= snow_min_depth .and. wsnow > 0.0_dp

    ! 2. root-zone water stress
    !    (the matric potential of the liquid water is computed once here and reused by the Richards
    !    solve for every layer whose liquid water did not change in between)
    wliq_start = wliq
    call soil_psi(h, max(wliq, 0.0_dp) / (denh2o * dz), psil, dpsil)
    call root_stress(h, wliq, wice, psil, tsoil, rootfr, btran, rootw)

    ! 3. linearised surface energy balance + Crank-Nicolson temperatures of the snow layer (if any)
    !    and the soil, in two passes. The first is linearised at the start-of-step surface temperature
    !    tg0 and predicts the end-of-step temperature tg1; the second (kept) pass re-linearises the
    !    turbulent fluxes at tg1 (one Newton step; tg1 clipped to tg0 +- newton_reach and to the
    !    sanity range) with the stability of the aerodynamic resistance at (tg0 + tg1)/2 (stands in
    !    for CoLM's Monin-Obukhov iteration). Net radiation stays linearised at tg0 in both passes, so
    !    the booked fluxes close net radiation = sensible + latent + ground heat exactly.
    call thermal_conductivity(par(ip_theta_s), par(ip_log_tksol), par(ip_tkdry), dz, wliq, wice, tsoil, &
                              tkk(2:))
    call heat_capacity(par(ip_theta_s), par(ip_csol), dz, wliq, wice, cvv(2:))
    cvsoil1 = cvv(2)
    zz(2:) = z
    zzi(2:) = zi
    tstart(1) = tsnow
    tstart(2:) = tsoil
    if (snl) then
      k0 = 1
      zz(1) = -0.5_dp * dsnow
      zzi(1) = 0.0_dp
      tkk(1) = snow_conductivity(wsnow / dsnow)
      cvv(1) = cpice * wsnow
    else
      k0 = 2
      cvv(2) = cvv(2) + cpice * max(wsnow, 0.0_dp)     ! thin snow lumped into the top soil layer
    end if
    fsno = snow_cover(wsnow, dsnow)
    call soil_psi(h, (max(wliq(1), 0.0_dp) / denh2o + max(wice(1), 0.0_dp) / denice) / dz(1), psit1, dpsit1)
    rstom = 1.0_dp / max(canopy_conductance(sw, ta, qa, ps, lai, par(ip_gsmax), btran), 1.0e-9_dp)
    tg0 = tstart(k0)
    call heat_setup(dt, zz(k0:), zzi(k0:), tkk(k0:), cvv(k0:), tstart(k0:), he(k0:), hf(k0:), hb1, hc1, hr1, &
                    hfact1, info)
    if (info /= 0) then
      err = err_solver
      return
    end if
    tstab = tg0
    tlin = tg0
    do pass = 1, 2
      call surface_terms(h, tlin, tstab, ta, qa, ps, wind, sw, lw, lai, sai, par(ip_z0m), par(ip_log_zm), &
                         par(ip_log_zh), par(ip_fveg), par(ip_albedo), par(ip_emis), rstom, &
                         wliq(1), wice(1), dz(1), psit1, wcan, fsno, st)
      if (pass == 1) then
        rnet0 = st%rnet
        drnet0 = st%drnet
      else
        ! a vapour flux whose value at tg1 would remove more water than available (canopy store,
        ! snow, 90 % of layer-1 water) is fixed at that amount, so the surface is not cooled by
        ! evaporating water that is not there
        call limit_vapour_flux(st%ecan, st%decan, max(wcan, 0.0_dp), dt)
        call limit_vapour_flux(st%esnow, st%desnow, max(wsnow, 0.0_dp), dt)
        call limit_vapour_flux(st%esoil, st%desoil, &
                               0.9_dp * (max(wliq(1), 0.0_dp) + max(wice(1), 0.0_dp)), dt)
      end if
      ! turbulent fluxes linearised at tlin, referred to tg0 (the old temperature of the solve)
      turb = st%sh + st%htvp * st%esoil + hvap * (st%etr + st%ecan) + hsub * st%esnow
      dturb = st%dsh + st%htvp * st%desoil + hvap * (st%detr + st%decan) + hsub * st%desnow
      hs = rnet0 - (turb + dturb * (tg0 - tlin))
      dhs = drnet0 - dturb
      tt = tstart
      call heat_solve(dt, he(k0:), hf(k0:), hb1, hc1, hr1, hfact1, hs, dhs, tt(k0:), gsoil, info)
      if (info /= 0) then
        err = err_solver
        return
      end if
      if (pass == 1) then
        tlin = min(tg0 + newton_reach, max(tg0 - newton_reach, tt(k0)))
        tlin = min(tsane_max, max(tsane_min, tlin))
        tstab = 0.5_dp * (tg0 + tlin)
      end if
    end do
    tsoil = tt(2:)
    if (snl) tsnow = tt(1)
    dtg = tt(k0) - tlin
    rough = abs(dtg) > lin_reach

    ! fluxes at the new surface temperature (kg/m2 over the step), limited by the water available;
    ! the latent heat of any amount cut here goes to the sensible heat flux (as in CLM), so that
    ! net radiation = sensible + latent + ground heat holds for the booked fluxes. Soil evaporation
    ! takes layer-1 liquid water first and sublimates layer-1 ice for the rest (CoLM qseva/qsubl);
    ! dew goes to the liquid water, frost (surface below T_f) to the ice of layer 1 (qsdew/qfros).
    ecan_dt = (st%ecan + st%decan * dtg) * dt
    esnow_dt = (st%esnow + st%desnow * dtg) * dt
    esoil_dt = (st%esoil + st%desoil * dtg) * dt
    etr_dt = (st%etr + st%detr * dtg) * dt
    lat_cut = st%htvp * esoil_dt + hvap * (etr_dt + ecan_dt) + hsub * esnow_dt
    if (ecan_dt > 0.0_dp) ecan_dt = min(ecan_dt, max(wcan, 0.0_dp))
    if (esnow_dt > 0.0_dp) esnow_dt = min(esnow_dt, max(wsnow, 0.0_dp))
    eliq = 0.0_dp
    eice = 0.0_dp
    if (esoil_dt > 0.0_dp) then
      eliq = min(esoil_dt, 0.9_dp * max(wliq(1), 0.0_dp))
      eice = min(esoil_dt - eliq, 0.9_dp * max(wice(1), 0.0_dp))
      esoil_dt = eliq + eice
      lat_cut = lat_cut - (hvap * eliq + hsub * eice)
    else
      lat_cut = lat_cut - st%htvp * esoil_dt
      if (tt(k0) < tfrz) then
        eice = esoil_dt                                ! frost (negative)
      else
        eliq = esoil_dt                                ! dew (negative)
      end if
    end if
    etr_dt = max(0.0_dp, etr_dt)
    if (btran <= 0.0_dp) etr_dt = 0.0_dp
    lat_cut = lat_cut - (hvap * (etr_dt + ecan_dt) + hsub * esnow_dt)
    sens = st%sh + st%dsh * dtg + lat_cut / dt
    wcan = wcan - ecan_dt
    wice(1) = wice(1) - eice

    ! 4. snow: sublimation, melt with the heat above freezing (of the snow layer, or of the top soil
    !    layer holding thin snow), compaction; the depth follows the mass at constant density; a
    !    layer thinner than snow_min_depth merges into the top soil layer (energy conserved)
    wsno0 = wsnow
    wsnow = wsnow - esnow_dt
    if (snl) then
      cvv(1) = cpice * max(wsnow, 0.0_dp)
      call snow_melt(cvv(1), tsnow, wsnow, melt)
      if (wsnow <= 0.0_dp .and. tsnow > tfrz) then
        tsoil(1) = tsoil(1) + cvv(1) * (tsnow - tfrz) / cvsoil1   ! heat left after the last snow melted
      end if
    else
      call snow_melt(cvv(2), tsoil(1), wsnow, melt)
    end if
    if (wsnow > 0.0_dp .and. wsno0 > 0.0_dp) then
      dsnow = dsnow * (wsnow / wsno0)
      if (snl) call snow_compaction(dt, wsnow, tsnow, dsnow)
    else
      dsnow = 0.0_dp
    end if
    if (snl .and. (dsnow < snow_min_depth .or. wsnow <= 0.0_dp)) then
      tsoil(1) = (cvsoil1 * tsoil(1) + cpice * max(wsnow, 0.0_dp) * tsnow) / &
                 (cvsoil1 + cpice * max(wsnow, 0.0_dp))
      cvv(2) = cvsoil1 + cpice * max(wsnow, 0.0_dp)
      snl = .false.
    end if

    ! 5. soil freeze/thaw with supercooled liquid water from the freezing-point depression (CoLM)
    do j = 1, n
      supercool(j) = 0.0_dp
      if (tsoil(j) < tfrz) then
        psit = 1000.0_dp * hfus * (tsoil(j) - tfrz) / (grav * tsoil(j))
        supercool(j) = h%theta_s * (psit / h%psi_s)**(-1.0_dp / h%b) * dz(j) * denh2o
      end if
    end do
    call phase_change(cvv(2:), supercool, wliq, wice, tsoil)
    if (.not. snl) tsnow = tsoil(1)

    ! 6. infiltration, surface runoff, Richards with root uptake, aquifer and water table
    gwat = (throughfall + melt + wpond - eliq) / dt
    wpond = 0.0_dp
    fice = ice_fraction(h%theta_s, wice, dz)
    call surface_runoff(h, gwat, zwt, fice, &
                        h%theta_s - min(h%theta_s, max(wice(1), 0.0_dp) / (denice * dz(1))), rsur, qinfl)
    sink = (etr_dt / dt) * rootw
    do j = 1, n
      if (wliq(j) /= wliq_start(j)) call soil_psi(h, max(wliq(j), 0.0_dp) / (denh2o * dz(j)), psil(j), dpsil(j))
    end do
    call richards(h, dt, z, dz, wliq, wice, tsoil, fice, psil, dpsil, qinfl, sink, recharge, info)
    if (info /= 0) then
      err = err_solver
      return
    end if
    call groundwater(h, dt, zi, dz, wice, fice, recharge, wliq, wa, zwt, wpond, rsub, xs_top)
    tskin = tsoil(1)
    if (snl) tskin = tsnow

    ! 7. book the fluxes
    flx(ix_precip) = flx(ix_precip) + prc * dt
    flx(ix_evap_soil) = flx(ix_evap_soil) + (esoil_dt + esnow_dt)
    flx(ix_transpiration) = flx(ix_transpiration) + etr_dt
    flx(ix_evap_canopy) = flx(ix_evap_canopy) + ecan_dt
    flx(ix_runoff_surface) = flx(ix_runoff_surface) + (rsur * dt + xs_top)
    flx(ix_runoff_subsurface) = flx(ix_runoff_subsurface) + rsub
    flx(ix_sensible) = flx(ix_sensible) + sens * dt
    flx(ix_latent) = flx(ix_latent) + (hvap * (etr_dt + ecan_dt) + hsub * esnow_dt) + &
                     merge(hvap * eliq + hsub * eice, st%htvp * esoil_dt, esoil_dt > 0.0_dp)
    flx(ix_snowmelt) = flx(ix_snowmelt) + melt
    flx(ix_ground_heat) = flx(ix_ground_heat) + gsoil

    ! 8. sanity
    if (.not. (all(abs(wliq) <= huge(1.0_dp)) .and. all(abs(tsoil) <= huge(1.0_dp)) .and. &
               abs(wa) <= huge(1.0_dp) .and. abs(zwt) <= huge(1.0_dp) .and. &
               abs(tsnow) <= huge(1.0_dp))) then
      err = err_nonfinite
    else if (any(tsoil < tsane_min) .or. any(tsoil > tsane_max) .or. &
             tsnow < tsane_min .or. tsnow > tsane_max) then
      err = err_temperature
    end if
  end subroutine column_step

  !> Fill the derived entries of a parameter vector par(npar) from its input entries (once per column
  !> and member, outside the time step): air-dry water content theta_s (psi_min/psi_s)^(-1/b), the
  !> Swenson & Lawrence tortuosity eps^2 (eps/theta_s)^(3/max(3,b)) (eps = theta_s - theta_air), the
  !> relative saturation at field capacity (psi = -3399 mm, <= 0.99), log(tksol), the vegetated and
  !> intercepted fractions of LAI + SAI, log(zref/z0m) and log(zref/z0h).
  pure subroutine derive_params(par)
    real(dp), intent(inout) :: par(:)
    real(dp) :: eps, lsai
    par(ip_theta_air) = par(ip_theta_s) * (psi_min / par(ip_psi_s))**(-1.0_dp / par(ip_b))
    eps = par(ip_theta_s) - par(ip_theta_air)
    par(ip_tort) = eps**2 * (eps / par(ip_theta_s))**(3.0_dp / max(3.0_dp, par(ip_b)))
    par(ip_s_fc) = min(0.99_dp, (-3399.0_dp / par(ip_psi_s))**(-1.0_dp / par(ip_b)))
    par(ip_log_tksol) = log(par(ip_tksol))
    lsai = par(ip_lai) + par(ip_sai)
    par(ip_fveg) = 1.0_dp - exp(-0.5_dp * lsai)
    par(ip_fint) = 0.25_dp * par(ip_fveg)
    par(ip_log_zm) = log(zref / par(ip_z0m))
    par(ip_log_zh) = log(zref / (0.1_dp * par(ip_z0m)))
  end subroutine derive_params

  !> Fix a vapour flux e (kg/m2/s, derivative de per K) at avail/dt with zero derivative when its
  !> value (at the first-pass surface temperature) would remove more than avail (kg/m2) over the
  !> step dt (s). Dew (e < 0) is never limited.
  pure subroutine limit_vapour_flux(e, de, avail, dt)
    real(dp), intent(inout) :: e, de
    real(dp), intent(in) :: avail, dt
    if (e * dt > avail) then
      e = avail / dt
      de = 0.0_dp
    end if
  end subroutine limit_vapour_flux
end module colm_column
