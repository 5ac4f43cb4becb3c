!> Soil layer geometry (CoLM) and soil hydraulic functions behind one interface.
!>
!> The hydraulic model is selected per column by an integer code (hyd_campbell = Campbell 1974 /
!> Clapp & Hornberger 1978); a van Genuchten-Mualem branch can be added in the select-case blocks of
!> soil_psi and soil_k without touching the solver.
module colm_soil
  use colm_kinds, only: dp
  use colm_const, only: psi_min
  implicit none
  private
  public :: soil_hyd_t, hyd_campbell, valid_hydmodel
  public :: layer_geometry, soil_psi, soil_k, soil_psi_layers, soil_k_layers, specific_yield, air_dry_theta

  integer, parameter :: hyd_campbell = 1   !< Campbell / Clapp-Hornberger power laws

  !> Hydraulic parameters of one soil column (uniform with depth).
  type :: soil_hyd_t
    integer :: model = hyd_campbell
    real(dp) :: theta_s = 0.45_dp   !< porosity (m3/m3)
    real(dp) :: b = 5.0_dp          !< Clapp-Hornberger exponent (-)
    real(dp) :: psi_s = -200.0_dp   !< saturated matric potential (mm, negative)
    real(dp) :: k_s = 0.005_dp      !< saturated hydraulic conductivity (mm/s)
    real(dp) :: theta_air = 0.0_dp  !< air-dry water content (derived once, colm_api::colm_derive)
    real(dp) :: tort = 1.0_dp       !< vapour tortuosity of the dry surface layer (derived)
    real(dp) :: s_fc = 0.7_dp       !< relative saturation at field capacity (derived)
  end type soil_hyd_t

contains

  !> True if the hydraulic model code is implemented.
  elemental logical function valid_hydmodel(model)
    integer, intent(in) :: model
    valid_hydmodel = (model == hyd_campbell)
  end function valid_hydmodel

  !> CoLM layer geometry: node depths z, thicknesses dz and layer bottoms zi (m), all size nlev.
  !> z_j = 0.025 [exp(0.5 (j - 0.5)) - 1]; dz_1 = (z_1 + z_2)/2; dz_j = (z_{j+1} - z_{j-1})/2;
  !> dz_n = z_n - z_{n-1}; zi_j = (z_j + z_{j+1})/2, zi_n = z_n + dz_n/2.
  pure subroutine layer_geometry(z, dz, zi)
    real(dp), intent(out), contiguous :: z(:), dz(:), zi(:)
    integer :: j, n
    n = size(z)
    do j = 1, n
      z(j) = 0.025_dp * (exp(0.5_dp * (real(j, dp) - 0.5_dp)) - 1.0_dp)
    end do
    dz(1) = 0.5_dp * (z(1) + z(2))
    do j = 2, n - 1
      dz(j) = 0.5_dp * (z(j + 1) - z(j - 1))
    end do
    dz(n) = z(n) - z(n - 1)
    do j = 1, n - 1
      zi(j) = 0.5_dp * (z(j) + z(j + 1))
    end do
    zi(n) = z(n) + 0.5_dp * dz(n)
  end subroutine layer_geometry

  !> Matric potential psi (mm) and d psi / d theta (mm) at volumetric liquid water theta (m3/m3).
  !> Guards: relative saturation >= 0.01 and <= 1, psi >= psi_min.
  elemental subroutine soil_psi(h, theta, psi, dpsi)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: theta
    real(dp), intent(out) :: psi, dpsi
    real(dp) :: s
    select case (h%model)
    case default   ! hyd_campbell
      s = min(1.0_dp, max(theta / h%theta_s, 0.01_dp))
      psi = h%psi_s * exp(-h%b * log(s))
      psi = max(psi_min, psi)
      dpsi = -h%b * psi / (s * h%theta_s)
    end select
  end subroutine soil_psi

  !> Hydraulic conductivity K (mm/s) and dK/dtheta (mm/s) at volumetric liquid water theta (m3/m3).
  elemental subroutine soil_k(h, theta, k, dk)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: theta
    real(dp), intent(out) :: k, dk
    real(dp) :: s, p
    select case (h%model)
    case default   ! hyd_campbell: one power, s^(2b+2), for both K and dK/dtheta
      s = min(1.0_dp, max(theta / h%theta_s, 0.0_dp))
      p = 0.0_dp
      if (s > 0.0_dp) p = exp((2.0_dp * h%b + 2.0_dp) * log(s))
      k = h%k_s * p * s
      dk = (2.0_dp * h%b + 3.0_dp) * h%k_s * p / h%theta_s
    end select
  end subroutine soil_k

  !> soil_psi of every layer, and the log of the (guarded) relative saturation logs, in one loop the
  !> compiler vectorises (branch-free body: the hydraulic model is selected outside the loop).
  pure subroutine soil_psi_layers(h, theta, psi, dpsi, logs)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in), contiguous :: theta(:)
    real(dp), intent(out), contiguous :: psi(:), dpsi(:), logs(:)
    real(dp) :: s
    integer :: j
    select case (h%model)
    case default   ! hyd_campbell
      do j = 1, size(theta)
        s = min(1.0_dp, max(theta(j) / h%theta_s, 0.01_dp))
        logs(j) = log(s)
        psi(j) = max(psi_min, h%psi_s * exp(-h%b * logs(j)))
        dpsi(j) = -h%b * psi(j) / (s * h%theta_s)
      end do
    end select
  end subroutine soil_psi_layers

  !> soil_k at every entry of theta, in one loop the compiler vectorises (K = 0 at theta = 0).
  pure subroutine soil_k_layers(h, theta, k, dk)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in), contiguous :: theta(:)
    real(dp), intent(out), contiguous :: k(:), dk(:)
    real(dp) :: s, p
    integer :: j
    select case (h%model)
    case default   ! hyd_campbell: one power, s^(2b+2), for both K and dK/dtheta
      do j = 1, size(theta)
        s = min(1.0_dp, max(theta(j) / h%theta_s, 0.0_dp))
        ! s = 0: exp of <= 2 log(tiny) underflows to exactly 0 (b > 0)
        p = exp((2.0_dp * h%b + 2.0_dp) * log(max(s, tiny(1.0_dp))))
        k(j) = h%k_s * p * s
        dk(j) = (2.0_dp * h%b + 3.0_dp) * h%k_s * p / h%theta_s
      end do
    end select
  end subroutine soil_k_layers

  !> Specific yield of the aquifer at water-table depth zwt (m): theta_s [1 - (1 + zwt/|psi_s|)^(-1/b)],
  !> at least 0.02.
  elemental real(dp) function specific_yield(h, zwt) result(sy)
    type(soil_hyd_t), intent(in) :: h
    real(dp), intent(in) :: zwt
    sy = h%theta_s * (1.0_dp - exp(-log(1.0_dp + 1000.0_dp * max(zwt, 0.0_dp) / abs(h%psi_s)) / h%b))
    sy = max(sy, 0.02_dp)
  end function specific_yield

  !> Air-dry volumetric water content (theta at psi_min) (m3/m3).
  elemental real(dp) function air_dry_theta(h) result(theta)
    type(soil_hyd_t), intent(in) :: h
    theta = h%theta_s * (psi_min / h%psi_s)**(-1.0_dp / h%b)
  end function air_dry_theta
end module colm_soil
