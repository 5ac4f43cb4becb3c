!> Water processes of one column (CoLM2014 path): interception, infiltration and TOPMODEL-type surface
!> runoff, root-zone water stress, the linearised implicit Richards solve, redistribution of excess and
!> deficit water, and the unconfined aquifer with baseflow. All amounts in kg/m2 (= mm), fluxes mm/s.
module colm_hydrology
  use colm_kinds, only: dp
  use colm_const, only: denh2o, denice, psi_wilt, pond_max, wa_max, zwt_max
  use colm_soil, only: soil_hyd_t, soil_psi, soil_k, specific_yield
  use colm_linalg, only: tridiag
  implicit none
  private
  public :: interception, ice_fraction, ice_impedance, surface_runoff, root_stress, richards, fix_water, aquifer

contains

  !> Canopy interception of rain over one step. rain_dt: rain amount (kg/m2); lsai: LAI + SAI.
  !> Updates the canopy store wcan (kg/m2) and returns the throughfall + drip reaching the ground.
  pure subroutine interception(rain_dt, lsai, wcan, throughfall)
    real(dp), intent(in) :: rain_dt, lsai
    real(dp), intent(inout) :: wcan
    real(dp), intent(out) :: throughfall
    real(dp) :: intercepted, cap, drip
    cap = 0.1_dp * lsai                                       ! interception capacity (mm)
    intercepted = 0.25_dp * (1.0_dp - exp(-0.5_dp * lsai)) * rain_dt
    wcan = wcan + intercepted
    drip = max(0.0_dp, wcan - cap)
    wcan = wcan - drip
    throughfall = (rain_dt - intercepted) + drip
  end subroutine interception

  !> Ice fraction of the water in each layer, wice / (wice + wliq) (0 for an empty layer).
  elemental real(dp) function ice_fraction(wliq, wice) result(f)
    real(dp), intent(in) :: wliq, wice
    if (wice > 0.0_dp) then
      f = wice / (wice + max(wliq, 0.0_dp))
    else
      f = 0.0_dp
    end if
  end function ice_fraction

  !> Ice impedance factor 10^(-6 f_ice) of a layer (1 without ice).
  elemental real(dp) function ice_impedance(wliq, wice) result(imped)
    real(dp), intent(in) :: wliq, wice
    if (wice > 0.0_dp) then
      imped = 10.0_dp**(-6.0_dp * ice_fraction(wliq, wice))
    else
      imped = 1.0_dp
    end if
  end function ice_impedance

  !> Surface runoff and infiltration (mm/s) of the water reaching the soil surface gwat (mm/s).
  !> f_sat = 0.38 exp(-0.25 zwt); q_inmax = min_{j<=3} 10^(-6 f_ice,j) K_s (0 if layer-1 effective
  !> porosity < 0.05); rsur = f_sat gwat + (1 - f_sat) max(0, gwat - q_inmax). Negative gwat (net
  !> evaporation) all goes into the soil as an upward flux.
  pure subroutine surface_runoff(h, gwat, zwt, wliq, wice, dz, rsur, qinfl)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: gwat, zwt, wliq(:), wice(:), dz(:)
    real(dp), intent(out) :: rsur, qinfl
    real(dp) :: fsat, qinmax, eff_por1
    integer :: j
    if (gwat <= 0.0_dp) then
      rsur = 0.0_dp
      qinfl = gwat
      return
    end if
    fsat = 0.38_dp * exp(-0.25_dp * zwt)
    qinmax = h%k_s
    do j = 1, 3
      qinmax = min(qinmax, ice_impedance(wliq(j), wice(j)) * h%k_s)
    end do
    eff_por1 = h%theta_s - wice(1) / (denice * dz(1))
    if (eff_por1 < 0.05_dp) qinmax = 0.0_dp
    rsur = fsat * gwat + (1.0_dp - fsat) * max(0.0_dp, gwat - qinmax)
    qinfl = gwat - rsur
  end subroutine surface_runoff

  !> Root-zone water stress: w_j = (1 - psi_j/psi_w)/(1 - psi_s/psi_w) clipped to [0, 1] (0 in frozen
  !> layers), beta_t = sum rootfr_j w_j, root water-uptake weights rootw_j = rootfr_j w_j / beta_t.
  pure subroutine root_stress(h, wliq, wice, dz, tsoil, tfrz, rootfr, btran, rootw)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: wliq(:), wice(:), dz(:), tsoil(:), tfrz, rootfr(:)
    real(dp), intent(out) :: btran, rootw(:)
    real(dp) :: psi, dpsi, w
    integer :: j
    btran = 0.0_dp
    do j = 1, size(wliq)
      if (tsoil(j) < tfrz .or. wice(j) > wliq(j)) then
        w = 0.0_dp
      else
        call soil_psi(h, max(wliq(j), 0.0_dp) / (denh2o * dz(j)), psi, dpsi)
        w = (1.0_dp - psi / psi_wilt) / (1.0_dp - h%psi_s / psi_wilt)
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

  !> Linearised implicit (Euler) Richards solve over one step, tridiagonal in delta theta.
  !> (dz_j/dt) dtheta_j = q_{j-1} - q_j - e_j, q_j = -K_{j+1/2} [(psi_{j+1} - psi_j)/(z_{j+1} - z_j) - 1]
  !> (positive downward), K_{j+1/2} at the mean relative saturation of j and j+1 times the ice impedance
  !> 10^(-6 f_ice); top flux qinfl (mm/s), free drainage at the bottom. The sink sink(:) (mm/s) is
  !> removed from the layers. Updates wliq (kg/m2) and returns the water that left the bottom of the
  !> column (recharge, kg/m2), computed as the residual of the column budget so that the step
  !> conserves water to round-off.
  pure subroutine richards(h, dt, z, dz, wliq, wice, qinfl, sink, recharge, info)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, z(:), dz(:), wice(:), qinfl, sink(:)
    real(dp), intent(inout) :: wliq(:)
    real(dp), intent(out) :: recharge
    integer, intent(out) :: info
    integer :: j, n
    real(dp), dimension(size(wliq)) :: theta, psi, dpsi, k, dk, imped, q, dqu, dql, dzmm, zmm
    real(dp), dimension(size(wliq)) :: amx, bmx, cmx, rmx, dtheta, dw
    real(dp) :: den, num, tmean, kk, dkk, qtop, dw_sum, sink_sum

    n = size(wliq)
    dzmm = 1000.0_dp * dz
    zmm = 1000.0_dp * z
    do j = 1, n
      theta(j) = max(wliq(j), 0.0_dp) / dzmm(j)
      imped(j) = ice_impedance(wliq(j), wice(j))
      call soil_psi(h, theta(j), psi(j), dpsi(j))
    end do
    ! interface conductivities and fluxes; dqu = dq_j/dtheta_j, dql = dq_j/dtheta_{j+1}
    do j = 1, n - 1
      tmean = 0.5_dp * (theta(j) + theta(j + 1))
      call soil_k(h, tmean, kk, dkk)
      k(j) = min(imped(j), imped(j + 1)) * kk
      dk(j) = min(imped(j), imped(j + 1)) * dkk * 0.5_dp
      den = zmm(j + 1) - zmm(j)
      num = (psi(j + 1) - psi(j)) - den
      q(j) = -k(j) * num / den
      dqu(j) = -(-k(j) * dpsi(j) + num * dk(j)) / den
      dql(j) = -(k(j) * dpsi(j + 1) + num * dk(j)) / den
    end do
    ! free drainage at the bottom
    call soil_k(h, theta(n), kk, dkk)
    k(n) = imped(n) * kk
    dk(n) = imped(n) * dkk
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
    dw_sum = sum(dw)
    sink_sum = sum(sink) * dt
    recharge = qtop * dt - dw_sum - sink_sum
  end subroutine richards

  !> Keep every layer within 0 <= wliq and wliq/(1000 dz) + wice/(917 dz) <= theta_s.
  !> Negative liquid water is refilled from the layer below (the bottom layer from the aquifer: the
  !> amount is returned in draw, kg/m2, for the caller to take out of the aquifer's budget); water
  !> above the pore space left by ice is pushed upward; excess at the top fills the pond up to
  !> pond_max and the rest becomes surface runoff xs_top (kg/m2). Conserves water exactly.
  pure subroutine fix_water(h, dz, wliq, wice, wpond, draw, xs_top)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dz(:), wice(:)
    real(dp), intent(inout) :: wliq(:), wpond
    real(dp), intent(out) :: draw, xs_top
    real(dp) :: wmax, xs, room
    integer :: j, n
    n = size(wliq)
    do j = 1, n - 1
      if (wliq(j) < 0.0_dp) then
        wliq(j + 1) = wliq(j + 1) + wliq(j)
        wliq(j) = 0.0_dp
      end if
    end do
    draw = 0.0_dp
    if (wliq(n) < 0.0_dp) then
      draw = -wliq(n)
      wliq(n) = 0.0_dp
    end if
    do j = n, 2, -1
      wmax = max(0.0_dp, denh2o * (h%theta_s * dz(j) - wice(j) / denice))
      if (wliq(j) > wmax) then
        xs = wliq(j) - wmax
        wliq(j) = wmax
        wliq(j - 1) = wliq(j - 1) + xs
      end if
    end do
    xs_top = 0.0_dp
    wmax = max(0.0_dp, denh2o * (h%theta_s * dz(1) - wice(1) / denice))
    if (wliq(1) > wmax) then
      xs = wliq(1) - wmax
      wliq(1) = wmax
      room = max(0.0_dp, pond_max - wpond)
      if (xs <= room) then
        wpond = wpond + xs
      else
        wpond = wpond + room
        xs_top = xs - room
      end if
    end if
  end subroutine fix_water

  !> Unconfined aquifer below the soil column: receives recharge (kg/m2, net of any water drawn to
  !> refill the soil), loses baseflow 5.5e-3 exp(-2.5 zwt) mm/s times the ice impedance of the bottom
  !> layer; storage wa capped at wa_max (overflow joins the subsurface runoff rsub, kg/m2); the water
  !> table zwt (m) moves by the change actually stored in wa (so not while the aquifer is full and
  !> overflowing) over the specific yield, and stays in [0, zwt_max].
  pure subroutine aquifer(h, dt, recharge, imped, wa, zwt, rsub)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: dt, recharge, imped
    real(dp), intent(inout) :: wa, zwt
    real(dp), intent(out) :: rsub
    real(dp) :: base, sy, net, wa_new
    base = imped * 5.5e-3_dp * exp(-2.5_dp * zwt) * dt
    base = min(base, max(wa + recharge, 0.0_dp))
    sy = specific_yield(h, zwt)
    net = recharge - base
    wa_new = min(wa + net, wa_max)
    ! subsurface runoff = what did not stay in the aquifer (baseflow + overflow), booked from the
    ! stored change so that a small constant baseflow cannot drift through the rounding of wa
    rsub = recharge - (wa_new - wa)
    zwt = zwt - (wa_new - wa) / (1000.0_dp * sy)
    wa = wa_new
    zwt = min(zwt_max, max(0.0_dp, zwt))
  end subroutine aquifer
end module colm_hydrology
