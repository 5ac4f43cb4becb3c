!> Water processes of one column (CoLM2014 path): interception, infiltration and TOPMODEL-type surface
!> runoff, root-zone water stress, the linearised implicit Richards solve, redistribution of excess and
!> deficit water, and the unconfined aquifer with baseflow. All amounts in kg/m2 (= mm), fluxes mm/s.
module colm_hydrology
  use colm_kinds, only: dp
  use colm_const, only: denh2o, denice, psi_wilt, psi_min, pond_max, wa_max, zwt_max, wimp, e_ice, tfrz, &
                        hfus, grav
  use colm_soil, only: soil_hyd_t, soil_k_layers, specific_yield
  use colm_linalg, only: tridiag
  implicit none
  private
  public :: interception, ice_fraction, ice_impedance, surface_runoff, root_stress, richards, groundwater

contains

  !> Canopy interception of rain over one step. rain_dt: rain amount (kg/m2); lsai: LAI + SAI; fint:
  !> intercepted fraction 0.25 [1 - exp(-0.5 lsai)] (derived once).
  !> Updates the canopy store wcan (kg/m2) and returns the throughfall + drip reaching the ground.
  pure subroutine interception(rain_dt, lsai, fint, wcan, throughfall)
    real(dp), intent(in) :: rain_dt, lsai, fint
    real(dp), intent(inout) :: wcan
    real(dp), intent(out) :: throughfall
    real(dp) :: intercepted, cap, drip
    cap = 0.1_dp * lsai                                       ! interception capacity (mm)
    intercepted = fint * rain_dt                              ! fint = 0.25 (1 - exp(-0.5 lsai))
    wcan = wcan + intercepted
    drip = max(0.0_dp, wcan - cap)
    wcan = wcan - drip
    throughfall = (rain_dt - intercepted) + drip
  end subroutine interception

  !> Ice fraction of a layer as CoLM (MOD_SoilSnowHydrology.F90, WATER_2014): the volume of ice over the
  !> porosity, min(1, min(theta_s, wice/(917 dz))/theta_s).
  elemental real(dp) function ice_fraction(theta_s, wice, dz) result(f)
    real(dp), intent(in) :: theta_s, wice, dz
    f = min(1.0_dp, min(theta_s, max(wice, 0.0_dp) / (denice * dz)) / theta_s)
  end function ice_fraction

  !> Ice impedance factor 10^(-e_ice f) (CoLM soilwater, e_ice = 6) of an ice fraction f.
  elemental real(dp) function ice_impedance(f) result(imped)
    real(dp), intent(in) :: f
    imped = 1.0_dp
    if (f > 0.0_dp) imped = exp(-e_ice * log(10.0_dp) * f)
  end function ice_impedance

  !> Surface runoff and infiltration (mm/s) of the water reaching the soil surface gwat (mm/s), CoLM
  !> SurfaceRunoff_TOPMOD (MOD_Runoff.F90): f_sat = 0.38 exp(-0.25 zwt); q_inmax = min_{j<=3}
  !> 10^(-6 f_ice,j) K_s (0 if the layer-1 effective porosity is below wimp); rsur = f_sat gwat +
  !> (1 - f_sat) max(0, gwat - q_inmax). Negative gwat (net evaporation) all enters the soil.
  pure subroutine surface_runoff(h, gwat, zwt, fice, effpor1, rsur, qinfl)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: gwat, zwt, effpor1
    real(dp), intent(in), contiguous :: fice(:)
    real(dp), intent(out) :: rsur, qinfl
    real(dp) :: fsat, qinmax
    if (gwat <= 0.0_dp) then
      rsur = 0.0_dp
      qinfl = gwat
      return
    end if
    fsat = 0.38_dp * exp(-0.25_dp * zwt)
    qinmax = h%k_s * ice_impedance(maxval(fice(1:min(3, size(fice)))))
    if (effpor1 < wimp) qinmax = 0.0_dp
    rsur = fsat * gwat + (1.0_dp - fsat) * max(0.0_dp, gwat - qinmax)
    qinfl = gwat - rsur
  end subroutine surface_runoff

  !> Root-zone water stress: w_j = (1 - psi_j/psi_w)/(1 - psi_s/psi_w) clipped to [0, 1] (0 in frozen
  !> layers), beta_t = sum rootfr_j w_j, root water-uptake weights rootw_j = rootfr_j w_j / beta_t.
  !> psil: matric potential of the liquid water of each layer (mm, colm_soil::soil_psi).
  pure subroutine root_stress(h, wliq, wice, psil, tsoil, rootfr, btran, rootw)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in), contiguous :: wliq(:), wice(:), psil(:), tsoil(:), rootfr(:)
    real(dp), intent(out) :: btran
    real(dp), intent(out), contiguous :: rootw(:)
    real(dp) :: w
    integer :: j
    btran = 0.0_dp
    do j = 1, size(wliq)
      if (tsoil(j) < tfrz .or. wice(j) > wliq(j)) then
        w = 0.0_dp
      else
        w = (1.0_dp - psil(j) / psi_wilt) / (1.0_dp - h%psi_s / psi_wilt)
        w = min(1.0_dp, max(0.0_dp, w))
      end if
      rootw(j) = rootfr(j) * w
      btran = btran + rootw(j)
    end do
    if (btran > 0.0_dp) then
      rootw = rootw / btran
    else
      rootw = 0.0_dp
    end if
  end subroutine root_stress

  !> Linearised implicit (Euler) Richards solve over one step, tridiagonal in delta theta (CoLM
  !> soilwater, MOD_SoilSnowHydrology.F90). (dz_j/dt) dtheta_j = q_{j-1} - q_j - e_j,
  !> q_j = -K_{j+1/2} [(psi_{j+1} - psi_j)/(z_{j+1} - z_j) - 1] (positive downward). K_{j+1/2} at the mean
  !> liquid saturation of j and j+1 (CLM3.5; CoLM: upstream) times the ice impedance 10^(-6 (f_ice,j + f_ice,j+1)/2) (CoLM: the
  !> mean ice fraction), 0 where either layer's effective porosity is below wimp. Below freezing the
  !> suction is that of the freezing-point depression, psi = 1e3 L_f (T - T_f)/(g T) mm (CoLM), with
  !> dpsi/dtheta = 0. Top flux qinfl (mm/s), free drainage at the bottom; sink(:) (mm/s) removed from
  !> the layers. Updates wliq (kg/m2) and returns the water that left the bottom (recharge, kg/m2) as
  !> the residual of the column budget, so that the step conserves water to round-off.
  !> psil, dpsil: matric potential (mm) of the current liquid water of each layer and its derivative
  !> (colm_soil::soil_psi, computed by the caller), used where the layer is not frozen.
  pure subroutine richards(h, dt, z, dz, wliq, wice, tsoil, fice, psil, dpsil, qinfl, sink, recharge, info)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, qinfl
    real(dp), intent(in), contiguous :: z(:), dz(:), wice(:), tsoil(:), fice(:), psil(:), dpsil(:), sink(:)
    real(dp), intent(inout), contiguous :: wliq(:)
    real(dp), intent(out) :: recharge
    integer, intent(out) :: info
    integer :: j, n
    real(dp), dimension(size(wliq)) :: theta, psi, dpsi, k, dk, q, dqu, dql, dzmm, effpor
    real(dp), dimension(size(wliq)) :: amx, bmx, cmx, rmx, dtheta, dw
    real(dp), dimension(size(wliq)) :: tmean, kk, dkk
    real(dp) :: den, num, imp, qtop

    n = size(wliq)
    dzmm = 1000.0_dp * dz
    do j = 1, n
      theta(j) = max(wliq(j), 0.0_dp) / dzmm(j)
      effpor(j) = h%theta_s - min(h%theta_s, max(wice(j), 0.0_dp) / (denice * dz(j)))
      if (tsoil(j) < tfrz) then
        psi(j) = max(psi_min, 1000.0_dp * hfus / grav * (tsoil(j) - tfrz) / tsoil(j))
        dpsi(j) = 0.0_dp
      else
        psi(j) = psil(j)
        dpsi(j) = dpsil(j)
      end if
    end do
    ! interface conductivities (at the mean saturation; at the bottom layer's for the bottom) and
    ! fluxes; dqu = dq_j/dtheta_j, dql = dq_j/dtheta_{j+1}
    do j = 1, n - 1
      tmean(j) = 0.5_dp * (theta(j) + theta(j + 1))
    end do
    tmean(n) = theta(n)
    call soil_k_layers(h, tmean, kk, dkk)
    do j = 1, n - 1
      imp = ice_impedance(0.5_dp * (fice(j) + fice(j + 1)))
      if (effpor(j) < wimp .or. effpor(j + 1) < wimp) imp = 0.0_dp
      k(j) = imp * kk(j)
      dk(j) = imp * dkk(j) * 0.5_dp
      den = 1000.0_dp * (z(j + 1) - z(j))
      num = (psi(j + 1) - psi(j)) - den
      q(j) = -k(j) * num / den
      dqu(j) = -(-k(j) * dpsi(j) + num * dk(j)) / den
      dql(j) = -(k(j) * dpsi(j + 1) + num * dk(j)) / den
    end do
    ! free drainage at the bottom
    imp = ice_impedance(fice(n))
    if (effpor(n) < wimp) imp = 0.0_dp
    k(n) = imp * kk(n)
    dk(n) = imp * dkk(n)
    q(n) = k(n)
    dqu(n) = dk(n)
    dql(n) = 0.0_dp
    qtop = qinfl
    ! tridiagonal system in dtheta
    amx(1) = 0.0_dp
    bmx(1) = dzmm(1) / dt + dqu(1)
    rmx(1) = qtop - q(1) - sink(1)
    do j = 2, n
      amx(j) = -dqu(j - 1)
      bmx(j) = dzmm(j) / dt - dql(j - 1) + dqu(j)
      rmx(j) = q(j - 1) - q(j) - sink(j)
    end do
    cmx(1:n - 1) = dql(1:n - 1)
    cmx(n) = 0.0_dp
    call tridiag(amx, bmx, cmx, rmx, dtheta, info)
    if (info /= 0) return
    dw = dtheta * dzmm
    dtheta = wliq + dw          ! new liquid water; book the change actually stored (round-off safe)
    dw = dtheta - wliq
    wliq = dtheta
    recharge = qtop * dt - sum(dw) - sum(sink) * dt
  end subroutine richards

  !> Index of the layer right above the water table (0 if zwt is in layer 1, n if below the column).
  pure integer function layer_above_table(zi, zwt) result(jwt)
    real(dp), intent(in) :: zwt
    real(dp), intent(in), contiguous :: zi(:)
    integer :: j
    jwt = size(zi)
    do j = 1, size(zi)
      if (zwt <= zi(j)) then
        jwt = j - 1
        return
      end if
    end do
  end function layer_above_table

  !> Aquifer, water table and baseflow after CoLM groundwater (MOD_SoilSnowHydrology.F90, WATER_2014
  !> path), then the bounds of the soil water. All amounts over the step in kg/m2, zwt in m.
  !> 1. Baseflow 5.5e-3 exp(-2.5 zwt) mm/s times CoLM's ice impedance 1 - f, f = (exp(-3 (1 - fbar)) -
  !>    exp(-3))/(1 - exp(-3)), fbar the mean ice fraction below the water table (SubsurfaceRunoff_TOPMOD).
  !> 2. The aquifer store wa gains the recharge (the water that left the bottom of the column) and
  !>    loses the baseflow; the water table below the column moves by their difference over the
  !>    specific yield s_y (>= 0.02) first, then wa above wa_max returns to the bottom soil layer (no
  !>    overflow runoff), as CoLM.
  !> 3. Bounds: liquid water above the pore space left by ice moves up a layer; above layer 1 it fills
  !>    the pond up to pond_max and the rest is surface runoff xs_top. Negative liquid water is set to 0
  !>    and taken from the baseflow (and from wa where the baseflow is smaller), as CoLM.
  !> 4. Once the water table has risen to the bottom of the column it enters the soil where the
  !>    returned water saturates it: zwt is the top of the saturated layers at the bottom of the
  !>    column, raised into the unsaturated layer above them by that layer's wetness above field
  !>    capacity, (s - s_fc)/(1 - s_fc) of its thickness (simplified:
  !>    CoLM moves zwt inside the column by the recharge over s_y and drains the layers below it, a
  !>    bookkeeping that can put the table above unsaturated layers).
  !> rsub (kg/m2) is the baseflow; zwt stays in [0, zwt_max]. Conserves water exactly.
  pure subroutine groundwater(h, dt, zi, dz, wice, fice, recharge, wliq, wa, zwt, wpond, rsub, xs_top)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, recharge
    real(dp), intent(in), contiguous :: zi(:), dz(:), wice(:), fice(:)
    real(dp), intent(inout) :: wa, zwt, wpond
    real(dp), intent(inout), contiguous :: wliq(:)
    real(dp), intent(out) :: rsub, xs_top
    real(dp) :: zw, rous, dzsum, icesum, fr, drain, xs, wmax(size(wliq)), room, neg, zsoil, sfc, sat
    integer :: j, n, jwt

    n = size(wliq)
    jwt = layer_above_table(zi, zwt)
    ! 1. baseflow at the current water table
    dzsum = 0.0_dp
    icesum = 0.0_dp
    do j = max(jwt, 1), n
      dzsum = dzsum + dz(j)
      icesum = icesum + fice(j) * dz(j)
    end do
    fr = 0.0_dp                                          ! no ice below the table: no impedance
    if (icesum > 0.0_dp) fr = max(0.0_dp, exp(-3.0_dp * (1.0_dp - icesum / dzsum)) - exp(-3.0_dp)) / &
                              (1.0_dp - exp(-3.0_dp))
    drain = max(0.0_dp, 1.0_dp - fr) * 5.5e-3_dp * exp(-2.5_dp * zwt) * dt
    ! 2. aquifer store and the water table below the column, then the return of wa above wa_max
    zw = max(zwt, zi(n))
    rous = specific_yield(h, zw)
    wa = wa + (recharge - drain)
    zw = zw - (recharge - drain) / (1000.0_dp * rous)
    if (wa > wa_max) then
      wliq(n) = wliq(n) + (wa - wa_max)
      wa = wa_max
    end if
    rsub = drain
    ! 3. bounds: excess above the pore space left by ice moves up, then pond, then runoff
    wmax = max(0.0_dp, denh2o * (h%theta_s * dz - wice / denice))
    do j = n, 2, -1
      if (wliq(j) > wmax(j)) then
        xs = wliq(j) - wmax(j)
        wliq(j) = wmax(j)
        wliq(j - 1) = wliq(j - 1) + xs
      end if
    end do
    xs_top = 0.0_dp
    if (wliq(1) > wmax(1)) then
      xs = wliq(1) - wmax(1)
      wliq(1) = wmax(1)
      room = max(0.0_dp, pond_max - wpond)
      wpond = wpond + min(xs, room)
      xs_top = max(0.0_dp, xs - room)
    end if
    neg = 0.0_dp
    do j = 1, n
      if (wliq(j) < 0.0_dp) then
        neg = neg + wliq(j)
        wliq(j) = 0.0_dp
      end if
    end do
    rsub = rsub + neg
    if (rsub < 0.0_dp) then
      wa = wa + rsub
      rsub = 0.0_dp
    end if
    ! 4. water table: below the column from step 2, inside it from the saturated layers
    sfc = h%s_fc
    zsoil = zi(n)
    do j = n, 1, -1
      sat = (wliq(j) + wice(j) * (denh2o / denice)) / (denh2o * h%theta_s * dz(j))
      if (sat >= 1.0_dp - 1.0e-9_dp) then
        zsoil = zi(j) - dz(j)
      else
        zsoil = zi(j) - dz(j) * max(0.0_dp, min(1.0_dp, (sat - sfc) / (1.0_dp - sfc)))
        exit
      end if
    end do
    if (zw > zi(n)) then
      zwt = zw                 ! below the column: CoLM's water table
    else
      zwt = zsoil              ! reached the column: the top of its saturated zone
    end if
    zwt = min(zwt_max, max(0.0_dp, zwt))
  end subroutine groundwater
end module colm_hydrology
