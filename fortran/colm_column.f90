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
  use colm_soil, only: soil_hyd_t, valid_hydmodel, soil_psi, soil_psi_layers
  use colm_hydrology, only: interception, ice_fraction, surface_runoff, root_stress, richards, groundwater
  use colm_energy, only: surface_terms_t, surface_terms, snow_cover, canopy_conductance, wet_fraction
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

  !> Vapour amounts of one step at the new surface temperature, limited by the water available (kg/m2;
  !> negative: dew or frost), and the sensible heat flux that closes the energy balance (W/m2).
  type :: vapour_t
    real(dp) :: ecan = 0.0_dp    !< evaporation of intercepted water
    real(dp) :: esnow = 0.0_dp   !< snow sublimation
    real(dp) :: esoil = 0.0_dp   !< soil evaporation, eliq + eice
    real(dp) :: etr = 0.0_dp     !< transpiration
    real(dp) :: eliq = 0.0_dp    !< soil evaporation of layer-1 liquid water (dew when negative)
    real(dp) :: eice = 0.0_dp    !< sublimation of layer-1 ice (frost when negative)
    real(dp) :: sens = 0.0_dp    !< sensible heat flux (W/m2)
  end type vapour_t

contains

  !> Advance one column by one step of dt seconds with forcing forc(nforc) and parameters par(npar).
  !> State (inout): wliq, wice (kg/m2), tsoil (K) per layer; zwt (m), wa, wcan, wsnow, wpond (kg/m2),
  !> tskin (K), tsnow (K, the snow layer; = tsoil(1) while the snow is too thin for a layer of its
  !> own), dsnow (m, snow depth). flx(nflux) accumulates the fluxes of the step. err = err_ok or an
  !> error code; rough = .true. when the linearised surface fluxes were used far (> lin_reach K) from
  !> their linearisation point.
  pure subroutine column_step(dt, forc, par, rootfr, z, dz, zi, wliq, wice, tsoil, zwt, wa, wcan, &
                              wsnow, wpond, tskin, tsnow, dsnow, flx, err, rough)
    real(dp), intent(in) :: dt
    real(dp), intent(in), contiguous :: forc(:), par(:), rootfr(:), z(:), dz(:), zi(:)
    real(dp), intent(inout), contiguous :: wliq(:), wice(:), tsoil(:)
    real(dp), intent(inout) :: zwt, wa, wcan, wsnow, wpond, tskin, tsnow, dsnow
    real(dp), intent(inout), contiguous :: flx(:)
    integer, intent(out) :: err
    logical, intent(out) :: rough   !< the surface ended > lin_reach from the second linearisation

    type(soil_hyd_t) :: h
    type(surface_terms_t) :: st
    type(vapour_t) :: v
    real(dp), dimension(size(wliq)) :: rootw, psil, dpsil, logs, wliq_start
    ! heat-equation nodes: 1 = snow layer, 2..n+1 = soil layers (the snow node is used only when the
    ! snow is at least snow_min_depth deep: CoLM keeps thinner snow in the soil surface layer)
    real(dp), dimension(size(wliq) + 1) :: zz, zzi, tkk, cvv, tstart, tt
    real(dp) :: throughfall, btran, cvsoil1, tlin, dtg, gsoil, melt, rsur, rsub, xs_top
    integer :: k0
    logical :: snl

    rough = .false.
    call soil_of(par, h, err)
    if (err /= err_ok) return
    ! 1. rain/snow split, canopy interception, new snow
    call precipitation(dt, forc(if_tair), forc(if_precip), par(ip_lai) + par(ip_sai), par(ip_fint), wcan, &
                       wsnow, dsnow, throughfall)
    snl = dsnow >= snow_min_depth .and. wsnow > 0.0_dp
    ! 2. root-zone water stress (the matric potential of the liquid water is computed once here and
    !    reused by the Richards solve for every layer whose liquid water did not change in between)
    wliq_start = wliq
    call soil_psi_layers(h, max(wliq, 0.0_dp) / (denh2o * dz), psil, dpsil, logs)
    call root_stress(h, wliq, wice, psil, tsoil, rootfr, btran, rootw)
    ! 3. surface energy balance and the temperatures of the snow layer (if any) and the soil
    call heat_nodes(par, z, zi, dz, wliq, wice, tsoil, logs, tsnow, wsnow, dsnow, snl, zz, zzi, tkk, cvv, &
                    tstart, k0, cvsoil1)
    call surface_energy(h, dt, forc, par, btran, wliq(1), wice(1), dz(1), wcan, wsnow, dsnow, zz(k0:), &
                        zzi(k0:), tkk(k0:), cvv(k0:), tstart(k0:), st, tt(k0:), tlin, gsoil, err)
    if (err /= err_ok) return
    tsoil = tt(2:)
    if (snl) tsnow = tt(1)
    dtg = tt(k0) - tlin
    rough = abs(dtg) > lin_reach
    call vapour_amounts(dt, st, dtg, tt(k0), btran, wcan, wsnow, wliq(1), wice(1), v)
    wcan = wcan - v%ecan
    wice(1) = wice(1) - v%eice
    ! 4. snow: sublimation, melt, compaction, merging of a thin snow layer into the soil
    call snow_update(dt, cvsoil1, v%esnow, snl, cvv, tsoil(1), tsnow, wsnow, dsnow, melt)
    ! 5. soil freeze/thaw with supercooled liquid water from the freezing-point depression (CoLM)
    call phase_change(cvv(2:), supercooled_water(h%theta_s, h%psi_s, h%b, dz, tsoil), wliq, wice, tsoil)
    if (.not. snl) tsnow = tsoil(1)
    ! 6. infiltration, surface runoff, Richards with root uptake, aquifer and water table
    call soil_water(h, dt, z, dz, zi, throughfall + melt, v, rootw, wliq_start, psil, dpsil, wliq, wice, &
                    tsoil, zwt, wa, wpond, rsur, rsub, xs_top, err)
    if (err /= err_ok) return
    tskin = tsoil(1)
    if (snl) tskin = tsnow
    ! 7. book the fluxes, 8. sanity
    call book_fluxes(dt, forc(if_precip), st%htvp, v, rsur, xs_top, rsub, melt, gsoil, flx)
    err = state_check(wliq, tsoil, wa, zwt, tsnow)
  end subroutine column_step

  !> The hydraulic parameters of par(npar) (err = err_hydmodel for an unknown hydraulic model).
  pure subroutine soil_of(par, h, err)
    real(dp), intent(in), contiguous :: par(:)
    type(soil_hyd_t), intent(out) :: h
    integer, intent(out) :: err
    err = err_ok
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
  end subroutine soil_of

  !> Precipitation prc (kg/m2/s) over dt (s) at air temperature ta (K): rain/snow split (liquid
  !> fraction 0 at Tf rising to 1 at Tf + 2 K), canopy interception of the rain (lsai = LAI + SAI,
  !> fint the intercepted fraction), new snow with CoLM's fresh-snow density. Updates the canopy
  !> store wcan, snow water wsnow (kg/m2) and depth dsnow (m); throughfall (kg/m2) reaches the ground
  !> (rain passes through the snow to the soil).
  pure subroutine precipitation(dt, ta, prc, lsai, fint, wcan, wsnow, dsnow, throughfall)
    real(dp), intent(in) :: dt, ta, prc, lsai, fint
    real(dp), intent(inout) :: wcan, wsnow, dsnow
    real(dp), intent(out) :: throughfall
    real(dp) :: fliq, rain_dt, snow_dt
    fliq = min(1.0_dp, max(0.0_dp, (ta - tfrz) / 2.0_dp))
    rain_dt = prc * fliq * dt
    snow_dt = prc * dt - rain_dt
    call interception(rain_dt, lsai, fint, wcan, throughfall)
    if (snow_dt > 0.0_dp) then
      wsnow = wsnow + snow_dt
      dsnow = dsnow + snow_dt / new_snow_density(ta)
    end if
  end subroutine precipitation

  !> Nodes of the heat equation, (n + 1): node 1 the snow layer, 2..n + 1 the soil layers; depth zz,
  !> bottom zzi (m), conductivity tkk (W/m/K), heat capacity cvv (J/m2/K) and start temperature tstart
  !> (K). k0 = 1 with a snow layer of its own (snl), else 2 with the thin snow's heat capacity lumped
  !> into the top soil layer. cvsoil1: heat capacity of the top soil layer alone. logs: log of the
  !> layers' relative liquid saturation (soil_psi_layers).
  pure subroutine heat_nodes(par, z, zi, dz, wliq, wice, tsoil, logs, tsnow, wsnow, dsnow, snl, zz, zzi, tkk, &
                             cvv, tstart, k0, cvsoil1)
    real(dp), intent(in) :: tsnow, wsnow, dsnow
    real(dp), intent(in), contiguous :: par(:), z(:), zi(:), dz(:), wliq(:), wice(:), tsoil(:), logs(:)
    logical, intent(in) :: snl
    real(dp), intent(out) :: cvsoil1
    real(dp), intent(out), contiguous :: zz(:), zzi(:), tkk(:), cvv(:), tstart(:)
    integer, intent(out) :: k0
    call thermal_conductivity(par(ip_theta_s), par(ip_log_tksol), par(ip_tkdry), dz, wliq, wice, tsoil, logs, &
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
  end subroutine heat_nodes

  !> Linearised surface energy balance + Crank-Nicolson temperatures of the heat nodes from the top
  !> one (z, zi, tk, cv, tstart: heat_nodes from k0), in two passes. The first is linearised at the
  !> start-of-step surface temperature tg0 and predicts the end-of-step temperature tg1; the second
  !> (kept) pass re-linearises the turbulent fluxes at tg1 (one Newton step; tg1 clipped to tg0 +-
  !> newton_reach and to the sanity range) with the stability of the aerodynamic resistance at
  !> (tg0 + tg1)/2 (stands in for CoLM's Monin-Obukhov iteration). Net radiation stays linearised at
  !> tg0 in both passes, so the booked fluxes close net radiation = sensible + latent + ground heat
  !> exactly. Returns the surface terms st of the second pass (vapour fluxes limited to the water
  !> available), the new temperatures t (K), the linearisation point tlin (K), the heat into the
  !> top node gsoil (J/m2) and err (err_solver on a singular solve).
  pure subroutine surface_energy(h, dt, forc, par, btran, wliq1, wice1, dz1, wcan, wsnow, dsnow, z, zi, tk, &
                                 cv, tstart, st, t, tlin, gsoil, err)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, btran, wliq1, wice1, dz1, wcan, wsnow, dsnow
    real(dp), intent(in), contiguous :: forc(:), par(:)
    real(dp), intent(in), contiguous :: z(:), zi(:), tk(:), cv(:), tstart(:)
    type(surface_terms_t), intent(out) :: st
    real(dp), intent(out) :: tlin, gsoil
    real(dp), intent(out), contiguous :: t(:)
    integer, intent(out) :: err
    real(dp), dimension(size(tstart)) :: he, hf
    real(dp) :: hb1, hc1, hr1, hfact1, fsno, psit1, dpsit1, rstom, tg0, tstab, rnet0, drnet0, turb, dturb
    real(dp) :: hs, dhs, fwet
    integer :: info, pass
    err = err_ok
    fsno = snow_cover(wsnow, dsnow)
    fwet = wet_fraction(wcan, par(ip_lai) + par(ip_sai))
    call soil_psi(h, (max(wliq1, 0.0_dp) / denh2o + max(wice1, 0.0_dp) / denice) / dz1, psit1, dpsit1)
    rstom = 1.0_dp / max(canopy_conductance(forc(if_swdown), forc(if_tair), forc(if_qair), forc(if_psurf), &
                                            par(ip_lai), par(ip_gsmax), btran), 1.0e-9_dp)
    tg0 = tstart(1)
    call heat_setup(dt, z, zi, tk, cv, tstart, he, hf, hb1, hc1, hr1, hfact1, info)
    if (info /= 0) then
      err = err_solver
      return
    end if
    tstab = tg0
    tlin = tg0
    do pass = 1, 2
      call surface_terms(h, tlin, tstab, forc(if_tair), forc(if_qair), forc(if_psurf), forc(if_wind), &
                         forc(if_swdown), forc(if_lwdown), par(ip_lai), par(ip_sai), par(ip_z0m), &
                         par(ip_log_zm), par(ip_log_zh), par(ip_fveg), par(ip_albedo), par(ip_emis), rstom, &
                         wliq1, wice1, dz1, psit1, fwet, fsno, st)
      if (pass == 1) then
        rnet0 = st%rnet
        drnet0 = st%drnet
      else
        ! a vapour flux whose value at tg1 would remove more water than available (canopy store,
        ! snow, 90 % of layer-1 water) is fixed at that amount, so the surface is not cooled by
        ! evaporating water that is not there
        call limit_vapour_flux(st%ecan, st%decan, max(wcan, 0.0_dp), dt)
        call limit_vapour_flux(st%esnow, st%desnow, max(wsnow, 0.0_dp), dt)
        call limit_vapour_flux(st%esoil, st%desoil, 0.9_dp * (max(wliq1, 0.0_dp) + max(wice1, 0.0_dp)), dt)
      end if
      ! turbulent fluxes linearised at tlin, referred to tg0 (the old temperature of the solve)
      turb = st%sh + st%htvp * st%esoil + hvap * (st%etr + st%ecan) + hsub * st%esnow
      dturb = st%dsh + st%htvp * st%desoil + hvap * (st%detr + st%decan) + hsub * st%desnow
      hs = rnet0 - (turb + dturb * (tg0 - tlin))
      dhs = drnet0 - dturb
      t = tstart
      call heat_solve(dt, he, hf, hb1, hc1, hr1, hfact1, hs, dhs, t, gsoil, info)
      if (info /= 0) then
        err = err_solver
        return
      end if
      if (pass == 1) then
        tlin = min(tg0 + newton_reach, max(tg0 - newton_reach, t(1)))
        tlin = min(tsane_max, max(tsane_min, tlin))
        tstab = 0.5_dp * (tg0 + tlin)
      end if
    end do
  end subroutine surface_energy

  !> Vapour amounts over the step dt (kg/m2) at the new surface temperature tsurf = tlin + dtg (K),
  !> limited by the water available (canopy store wcan, snow wsnow, 90 % of layer-1 liquid water
  !> wliq1 and ice wice1); the latent heat of any amount cut here goes to the sensible heat flux (as
  !> in CLM), so that net radiation = sensible + latent + ground heat holds for the booked fluxes.
  !> Soil evaporation takes layer-1 liquid water first and sublimates layer-1 ice for the rest (CoLM
  !> qseva/qsubl); dew goes to the liquid water, frost (surface below T_f) to the ice of layer 1
  !> (qsdew/qfros). No transpiration without root-zone water (btran <= 0).
  pure subroutine vapour_amounts(dt, st, dtg, tsurf, btran, wcan, wsnow, wliq1, wice1, v)
    real(dp), intent(in) :: dt, dtg, tsurf, btran, wcan, wsnow, wliq1, wice1
    type(surface_terms_t), intent(in) :: st
    type(vapour_t), intent(out) :: v
    real(dp) :: lat_cut
    v%ecan = (st%ecan + st%decan * dtg) * dt
    v%esnow = (st%esnow + st%desnow * dtg) * dt
    v%esoil = (st%esoil + st%desoil * dtg) * dt
    v%etr = (st%etr + st%detr * dtg) * dt
    lat_cut = st%htvp * v%esoil + hvap * (v%etr + v%ecan) + hsub * v%esnow
    if (v%ecan > 0.0_dp) v%ecan = min(v%ecan, max(wcan, 0.0_dp))
    if (v%esnow > 0.0_dp) v%esnow = min(v%esnow, max(wsnow, 0.0_dp))
    v%eliq = 0.0_dp
    v%eice = 0.0_dp
    if (v%esoil > 0.0_dp) then
      v%eliq = min(v%esoil, 0.9_dp * max(wliq1, 0.0_dp))
      v%eice = min(v%esoil - v%eliq, 0.9_dp * max(wice1, 0.0_dp))
      v%esoil = v%eliq + v%eice
      lat_cut = lat_cut - (hvap * v%eliq + hsub * v%eice)
    else
      lat_cut = lat_cut - st%htvp * v%esoil
      if (tsurf < tfrz) then
        v%eice = v%esoil                                ! frost (negative)
      else
        v%eliq = v%esoil                                ! dew (negative)
      end if
    end if
    v%etr = max(0.0_dp, v%etr)
    if (btran <= 0.0_dp) v%etr = 0.0_dp
    lat_cut = lat_cut - (hvap * (v%etr + v%ecan) + hsub * v%esnow)
    v%sens = st%sh + st%dsh * dtg + lat_cut / dt
  end subroutine vapour_amounts

  !> Snow after the energy balance: sublimation esnow (kg/m2), melt (kg/m2) with the heat above
  !> freezing (of the snow layer, or of the top soil layer t1 holding thin snow), compaction; the
  !> depth follows the mass at constant density; a layer thinner than snow_min_depth merges into the
  !> top soil layer (energy conserved; snl becomes .false.). cv: heat capacities of the heat nodes
  !> (heat_nodes; updated), cvsoil1: of the top soil layer alone.
  pure subroutine snow_update(dt, cvsoil1, esnow, snl, cv, t1, tsnow, wsnow, dsnow, melt)
    real(dp), intent(in) :: dt, cvsoil1, esnow
    logical, intent(inout) :: snl
    real(dp), intent(inout) :: t1, tsnow, wsnow, dsnow
    real(dp), intent(inout), contiguous :: cv(:)
    real(dp), intent(out) :: melt
    real(dp) :: wsno0
    wsno0 = wsnow
    wsnow = wsnow - esnow
    if (snl) then
      cv(1) = cpice * max(wsnow, 0.0_dp)
      call snow_melt(cv(1), tsnow, wsnow, melt)
      if (wsnow <= 0.0_dp .and. tsnow > tfrz) then
        t1 = t1 + cv(1) * (tsnow - tfrz) / cvsoil1   ! heat left after the last snow melted
      end if
    else
      call snow_melt(cv(2), t1, wsnow, melt)
    end if
    if (wsnow > 0.0_dp .and. wsno0 > 0.0_dp) then
      dsnow = dsnow * (wsnow / wsno0)
      if (snl) call snow_compaction(dt, wsnow, tsnow, dsnow)
    else
      dsnow = 0.0_dp
    end if
    if (snl .and. (dsnow < snow_min_depth .or. wsnow <= 0.0_dp)) then
      t1 = (cvsoil1 * t1 + cpice * max(wsnow, 0.0_dp) * tsnow) / (cvsoil1 + cpice * max(wsnow, 0.0_dp))
      cv(2) = cvsoil1 + cpice * max(wsnow, 0.0_dp)
      snl = .false.
    end if
  end subroutine snow_update

  !> Supercooled liquid water (kg/m2) a layer of thickness dz (m) at temperature t (K) holds below
  !> freezing: the water content at the suction of the freezing-point depression, 1e3 L_f (T - T_f)/(g T)
  !> mm (CoLM); 0 at or above T_f.
  elemental real(dp) function supercooled_water(theta_s, psi_s, b, dz, t) result(w)
    real(dp), intent(in) :: theta_s, psi_s, b, dz, t
    real(dp) :: psit
    w = 0.0_dp
    if (t < tfrz) then
      psit = 1000.0_dp * hfus * (t - tfrz) / (grav * t)
      w = theta_s * (psit / psi_s)**(-1.0_dp / b) * dz * denh2o
    end if
  end function supercooled_water

  !> Infiltration of the water reaching the surface (wground, kg/m2, plus the pond, minus the liquid
  !> soil evaporation v%eliq), surface runoff rsur (mm/s), Richards with root uptake (transpiration
  !> v%etr distributed by rootw), aquifer, baseflow rsub (kg/m2), water table and the excess xs_top
  !> (kg/m2) above the pond. psil, dpsil: matric potential of the liquid water at wliq_start
  !> (recomputed for the layers whose water changed since). err = err_solver on a singular solve.
  pure subroutine soil_water(h, dt, z, dz, zi, wground, v, rootw, wliq_start, psil, dpsil, wliq, wice, tsoil, &
                             zwt, wa, wpond, rsur, rsub, xs_top, err)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, wground
    real(dp), intent(in), contiguous :: z(:), dz(:), zi(:), rootw(:), wliq_start(:), wice(:), tsoil(:)
    type(vapour_t), intent(in) :: v
    real(dp), intent(inout) :: zwt, wa, wpond
    real(dp), intent(inout), contiguous :: psil(:), dpsil(:), wliq(:)
    real(dp), intent(out) :: rsur, rsub, xs_top
    integer, intent(out) :: err
    real(dp), dimension(size(wliq)) :: fice, sink
    real(dp) :: gwat, qinfl, recharge
    integer :: j, info
    err = err_ok
    gwat = (wground + wpond - v%eliq) / dt
    wpond = 0.0_dp
    fice = ice_fraction(h%theta_s, wice, dz)
    call surface_runoff(h, gwat, zwt, fice, &
                        h%theta_s - min(h%theta_s, max(wice(1), 0.0_dp) / (denice * dz(1))), rsur, qinfl)
    sink = (v%etr / dt) * rootw
    do j = 1, size(wliq)
      if (wliq(j) /= wliq_start(j)) call soil_psi(h, max(wliq(j), 0.0_dp) / (denh2o * dz(j)), psil(j), dpsil(j))
    end do
    call richards(h, dt, z, dz, wliq, wice, tsoil, fice, psil, dpsil, qinfl, sink, recharge, info)
    if (info /= 0) then
      err = err_solver
      return
    end if
    call groundwater(h, dt, zi, dz, wice, fice, recharge, wliq, wa, zwt, wpond, rsub, xs_top)
  end subroutine soil_water

  !> Add the step's fluxes to the accumulators flx(nflux): precipitation prc (kg/m2/s) over dt (s),
  !> the vapour amounts v (htvp: latent heat of soil vapour exchange of the step, J/kg), surface
  !> runoff rsur (mm/s) + xs_top, baseflow rsub, melt (kg/m2), heat into the ground gsoil (J/m2).
  pure subroutine book_fluxes(dt, prc, htvp, v, rsur, xs_top, rsub, melt, gsoil, flx)
    real(dp), intent(in) :: dt, prc, htvp, rsur, xs_top, rsub, melt, gsoil
    type(vapour_t), intent(in) :: v
    real(dp), intent(inout), contiguous :: flx(:)
    flx(ix_precip) = flx(ix_precip) + prc * dt
    flx(ix_evap_soil) = flx(ix_evap_soil) + (v%esoil + v%esnow)
    flx(ix_transpiration) = flx(ix_transpiration) + v%etr
    flx(ix_evap_canopy) = flx(ix_evap_canopy) + v%ecan
    flx(ix_runoff_surface) = flx(ix_runoff_surface) + (rsur * dt + xs_top)
    flx(ix_runoff_subsurface) = flx(ix_runoff_subsurface) + rsub
    flx(ix_sensible) = flx(ix_sensible) + v%sens * dt
    flx(ix_latent) = flx(ix_latent) + (hvap * (v%etr + v%ecan) + hsub * v%esnow) + &
                     merge(hvap * v%eliq + hsub * v%eice, htvp * v%esoil, v%esoil > 0.0_dp)
    flx(ix_snowmelt) = flx(ix_snowmelt) + melt
    flx(ix_ground_heat) = flx(ix_ground_heat) + gsoil
  end subroutine book_fluxes

  !> err_nonfinite if a state variable is NaN or Inf, err_temperature if a soil or snow temperature
  !> is outside [tsane_min, tsane_max], else err_ok.
  pure integer function state_check(wliq, tsoil, wa, zwt, tsnow) result(err)
    real(dp), intent(in) :: wa, zwt, tsnow
    real(dp), intent(in), contiguous :: wliq(:), tsoil(:)
    err = err_ok
    if (.not. (all(abs(wliq) <= huge(1.0_dp)) .and. all(abs(tsoil) <= huge(1.0_dp)) .and. &
               abs(wa) <= huge(1.0_dp) .and. abs(zwt) <= huge(1.0_dp) .and. &
               abs(tsnow) <= huge(1.0_dp))) then
      err = err_nonfinite
    else if (any(tsoil < tsane_min) .or. any(tsoil > tsane_max) .or. &
             tsnow < tsane_min .or. tsnow > tsane_max) then
      err = err_temperature
    end if
  end function state_check

  !> Fill the derived entries of a parameter vector par(npar) from its input entries (once per column
  !> and member, outside the time step): air-dry water content theta_s (psi_min/psi_s)^(-1/b), the
  !> Swenson & Lawrence tortuosity eps^2 (eps/theta_s)^(3/max(3,b)) (eps = theta_s - theta_air), the
  !> relative saturation at field capacity (psi = -3399 mm, <= 0.99), log(tksol), the vegetated and
  !> intercepted fractions of LAI + SAI, log(zref/z0m) and log(zref/z0h).
  pure subroutine derive_params(par)
    real(dp), intent(inout), contiguous :: par(:)
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
