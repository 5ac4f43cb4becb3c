!> One time step of one soil column: precipitation phase and interception, surface energy balance and
!> soil temperature, snow melt and freeze/thaw, infiltration/runoff, Richards solve with root uptake,
!> redistribution and the aquifer. Every kg of water moved is booked in the flux accumulators.
!> (Adaptive sub-stepping of a failed step: colm_api::colm_step.)
module colm_column
  use colm_kinds, only: dp
  use colm_const, only: tfrz, hvap, hsub, err_ok, err_hydmodel, err_nonfinite, err_solver, err_temperature, &
                        if_tair, if_qair, if_psurf, if_precip, if_wind, if_swdown, if_lwdown, &
                        ip_theta_s, ip_b, ip_psi_s, ip_k_s, ip_csol, ip_tksol, ip_tkdry, ip_lai, ip_sai, &
                        ip_z0m, ip_albedo, ip_emis, ip_gsmax, ip_hydmodel, &
                        ix_precip, ix_evap_soil, ix_transpiration, ix_evap_canopy, ix_runoff_surface, &
                        ix_runoff_subsurface, ix_sensible, ix_latent, ix_snowmelt, ix_ground_heat
  use colm_soil, only: soil_hyd_t, valid_hydmodel
  use colm_hydrology, only: interception, ice_impedance, surface_runoff, root_stress, richards, &
                            fix_water, aquifer
  use colm_energy, only: surface_terms_t, surface_terms
  use colm_thermal, only: thermal_conductivity, heat_capacity, soil_temperature, snow_melt, phase_change
  implicit none
  private
  public :: column_step

  real(dp), parameter :: tsane_min = 150.0_dp    !< lowest sane soil temperature (K)
  real(dp), parameter :: tsane_max = 400.0_dp    !< highest sane soil temperature (K)
  real(dp), parameter :: newton_reach = 40.0_dp  !< largest move of the re-linearisation point (K)

contains

  !> Advance one column by one step of dt seconds with forcing forc(nforc) and parameters par(npar).
  !> State (inout): wliq, wice (kg/m2), tsoil (K) per layer; zwt (m), wa, wcan, wsnow, wpond (kg/m2),
  !> tskin (K). flx(nflux) accumulates the fluxes of the step. err = err_ok or an error code.
  pure subroutine column_step(dt, forc, par, rootfr, z, dz, zi, wliq, wice, tsoil, zwt, wa, wcan, &
                              wsnow, wpond, tskin, flx, err)
    real(dp), intent(in) :: dt, forc(:), par(:), rootfr(:), z(:), dz(:), zi(:)
    real(dp), intent(inout) :: wliq(:), wice(:), tsoil(:)
    real(dp), intent(inout) :: zwt, wa, wcan, wsnow, wpond, tskin, flx(:)
    integer, intent(out) :: err

    type(soil_hyd_t) :: h
    type(surface_terms_t) :: st
    real(dp), dimension(size(wliq)) :: rootw, tk, cv, sink, tnew
    real(dp) :: ta, qa, ps, prc, wind, sw, lw, lai, sai
    real(dp) :: fliq, rain_dt, snow_dt, throughfall, btran, tg0, dtg, hs, dhs, gsoil
    real(dp) :: esoil_dt, esnow_dt, etr_dt, ecan_dt, sens, melt, gwat, rsur, qinfl, recharge
    real(dp) :: xs_top, rsub, imped, tstab, lat_cut, tlin, rnet0, drnet0, turb, dturb, draw
    integer :: info, n, pass

    err = err_ok
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
    ta = forc(if_tair)
    qa = forc(if_qair)
    ps = forc(if_psurf)
    prc = forc(if_precip)
    wind = forc(if_wind)
    sw = forc(if_swdown)
    lw = forc(if_lwdown)
    lai = par(ip_lai)
    sai = par(ip_sai)

    ! 1. rain/snow split (liquid fraction 0 at Tf rising to 1 at Tf + 2 K) and canopy interception
    fliq = min(1.0_dp, max(0.0_dp, (ta - tfrz) / 2.0_dp))
    rain_dt = prc * fliq * dt
    snow_dt = prc * dt - rain_dt
    call interception(rain_dt, lai + sai, wcan, throughfall)
    wsnow = wsnow + snow_dt

    ! 2. root-zone water stress
    call root_stress(h, wliq, wice, dz, tsoil, tfrz, rootfr, btran, rootw)

    ! 3. linearised surface energy balance + Crank-Nicolson soil temperature, in two passes. The
    !    first is linearised at the start-of-step surface temperature tg0 and predicts the end-of-step
    !    temperature tg1; the second (kept) pass re-linearises the turbulent fluxes at tg1 (one Newton
    !    step; tg1 clipped to tg0 +- newton_reach and to the sanity range) with the stability of the
    !    aerodynamic resistance at (tg0 + tg1)/2 (stands in for CoLM's Monin-Obukhov iteration). Net
    !    radiation stays linearised at tg0 in both passes (it is nearly linear over a step), so the
    !    booked fluxes close net radiation = sensible + latent + ground heat exactly.
    tg0 = tsoil(1)
    call thermal_conductivity(par(ip_theta_s), par(ip_tksol), par(ip_tkdry), dz, wliq, wice, tsoil, tk)
    call heat_capacity(par(ip_theta_s), par(ip_csol), dz, wliq, wice, wsnow, cv)
    tstab = tg0
    tlin = tg0
    do pass = 1, 2
      call surface_terms(h, tlin, tstab, ta, qa, ps, wind, sw, lw, lai, sai, par(ip_z0m), par(ip_albedo), &
                         par(ip_emis), par(ip_gsmax), btran, wliq(1), wice(1), dz(1), wcan, wsnow, st)
      if (pass == 1) then
        rnet0 = st%rnet
        drnet0 = st%drnet
      else
        ! a vapour flux whose value at tg1 would remove more water than available (canopy store,
        ! snow, 90 % of layer-1 liquid) is fixed at that amount, so the soil is not cooled by
        ! evaporating water that is not there
        call limit_vapour_flux(st%ecan, st%decan, max(wcan, 0.0_dp), dt)
        call limit_vapour_flux(st%esnow, st%desnow, max(wsnow, 0.0_dp), dt)
        call limit_vapour_flux(st%esoil, st%desoil, 0.9_dp * max(wliq(1), 0.0_dp), dt)
      end if
      ! turbulent fluxes linearised at tlin, referred to tg0 (the old temperature of the solve)
      turb = st%sh + hvap * (st%esoil + st%etr + st%ecan) + hsub * st%esnow
      dturb = st%dsh + hvap * (st%desoil + st%detr + st%decan) + hsub * st%desnow
      hs = rnet0 - (turb + dturb * (tg0 - tlin))
      dhs = drnet0 - dturb
      tnew = tsoil
      call soil_temperature(dt, z, zi, tk, cv, hs, dhs, tnew, gsoil, info)
      if (info /= 0) then
        err = err_solver
        return
      end if
      if (pass == 1) then
        tlin = min(tg0 + newton_reach, max(tg0 - newton_reach, tnew(1)))
        tlin = min(tsane_max, max(tsane_min, tlin))
        tstab = 0.5_dp * (tg0 + tlin)
      end if
    end do
    tsoil = tnew
    dtg = tsoil(1) - tlin

    ! fluxes at the new surface temperature (kg/m2 over the step), limited by the water available;
    ! the latent heat of any amount cut here goes to the sensible heat flux (as in CLM), so that
    ! net radiation = sensible + latent + ground heat holds for the booked fluxes
    ecan_dt = (st%ecan + st%decan * dtg) * dt
    esnow_dt = (st%esnow + st%desnow * dtg) * dt
    esoil_dt = (st%esoil + st%desoil * dtg) * dt
    etr_dt = (st%etr + st%detr * dtg) * dt
    lat_cut = hvap * (esoil_dt + etr_dt + ecan_dt) + hsub * esnow_dt
    if (ecan_dt > 0.0_dp) ecan_dt = min(ecan_dt, max(wcan, 0.0_dp))
    if (esnow_dt > 0.0_dp) esnow_dt = min(esnow_dt, max(wsnow, 0.0_dp))
    if (esoil_dt > 0.0_dp) esoil_dt = min(esoil_dt, 0.9_dp * max(wliq(1), 0.0_dp))
    etr_dt = max(0.0_dp, etr_dt)
    if (btran <= 0.0_dp) etr_dt = 0.0_dp
    lat_cut = lat_cut - (hvap * (esoil_dt + etr_dt + ecan_dt) + hsub * esnow_dt)
    sens = st%sh + st%dsh * dtg + lat_cut / dt
    wcan = wcan - ecan_dt
    wsnow = wsnow - esnow_dt

    ! 4. snow melt with the top layer's heat above freezing, then soil freeze/thaw
    call snow_melt(cv(1), tsoil(1), wsnow, melt)
    call phase_change(cv, wliq, wice, tsoil)

    ! 5. infiltration, surface runoff, Richards with root uptake, redistribution, aquifer
    gwat = (throughfall + melt + wpond - esoil_dt) / dt
    wpond = 0.0_dp
    call surface_runoff(h, gwat, zwt, wliq, wice, dz, rsur, qinfl)
    sink = (etr_dt / dt) * rootw
    call richards(h, dt, z, dz, wliq, wice, qinfl, sink, recharge, info)
    if (info /= 0) then
      err = err_solver
      return
    end if
    call fix_water(h, dz, wliq, wice, wpond, draw, xs_top)
    imped = ice_impedance(wliq(n), wice(n))
    call aquifer(h, dt, recharge - draw, imped, wa, zwt, rsub)
    tskin = tsoil(1)

    ! 6. book the fluxes
    flx(ix_precip) = flx(ix_precip) + prc * dt
    flx(ix_evap_soil) = flx(ix_evap_soil) + (esoil_dt + esnow_dt)
    flx(ix_transpiration) = flx(ix_transpiration) + etr_dt
    flx(ix_evap_canopy) = flx(ix_evap_canopy) + ecan_dt
    flx(ix_runoff_surface) = flx(ix_runoff_surface) + (rsur * dt + xs_top)
    flx(ix_runoff_subsurface) = flx(ix_runoff_subsurface) + rsub
    flx(ix_sensible) = flx(ix_sensible) + sens * dt
    flx(ix_latent) = flx(ix_latent) + hvap * (esoil_dt + etr_dt + ecan_dt) + hsub * esnow_dt
    flx(ix_snowmelt) = flx(ix_snowmelt) + melt
    flx(ix_ground_heat) = flx(ix_ground_heat) + gsoil

    ! 7. sanity
    if (.not. (all(abs(wliq) <= huge(1.0_dp)) .and. all(abs(tsoil) <= huge(1.0_dp)) .and. &
               abs(wa) <= huge(1.0_dp) .and. abs(zwt) <= huge(1.0_dp))) then
      err = err_nonfinite
    else if (any(tsoil < tsane_min) .or. any(tsoil > tsane_max)) then
      err = err_temperature
    end if
  end subroutine column_step

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
