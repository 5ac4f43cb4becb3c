!> Physical constants and the index layout of the forcing, parameter, flux and state arrays shared by the
!> column physics, the f2py API and the pure-Fortran benchmark driver.
module colm_const
  use colm_kinds, only: dp
  implicit none
  private

  ! --- physical constants (CoLM values) ---
  real(dp), parameter, public :: tfrz = 273.16_dp       !< freezing point of water (K)
  real(dp), parameter, public :: hfus = 3.336e5_dp      !< latent heat of fusion (J/kg)
  real(dp), parameter, public :: hvap = 2.5104e6_dp     !< latent heat of vaporisation (J/kg)
  real(dp), parameter, public :: hsub = 2.844e6_dp      !< latent heat of sublimation (J/kg)
  real(dp), parameter, public :: denh2o = 1000.0_dp     !< density of liquid water (kg/m3)
  real(dp), parameter, public :: denice = 917.0_dp      !< density of ice (kg/m3)
  real(dp), parameter, public :: cpliq = 4188.0_dp      !< specific heat of liquid water (J/kg/K)
  real(dp), parameter, public :: cpice = 2117.27_dp     !< specific heat of ice (J/kg/K)
  real(dp), parameter, public :: cpair = 1004.64_dp     !< specific heat of dry air (J/kg/K)
  real(dp), parameter, public :: rdair = 287.04_dp      !< gas constant of dry air (J/kg/K)
  real(dp), parameter, public :: grav = 9.80616_dp      !< gravity (m/s2)
  real(dp), parameter, public :: vkc = 0.4_dp           !< von Karman constant
  real(dp), parameter, public :: stefan = 5.67e-8_dp    !< Stefan-Boltzmann constant (W/m2/K4)
  real(dp), parameter, public :: tkwat = 0.6_dp         !< thermal conductivity of water (W/m/K) (CoLM MOD_Const_Physical)
  real(dp), parameter, public :: tkice = 2.29_dp        !< thermal conductivity of ice (W/m/K)
  real(dp), parameter, public :: tkair = 0.023_dp       !< thermal conductivity of air (W/m/K)
  real(dp), parameter, public :: roverg = 4.71047e4_dp  !< R_w/g (mm/K) for the soil-air relative humidity
  real(dp), parameter, public :: wimp = 0.05_dp         !< water impermeable below this effective porosity (-)
  real(dp), parameter, public :: e_ice = 6.0_dp         !< soil ice impedance factor: K x 10^(-e_ice f_ice)
  real(dp), parameter, public :: snow_min_depth = 0.01_dp !< a snow layer of its own from this depth (m)
  real(dp), parameter, public :: zlnd = 0.01_dp         !< roughness length of bare soil for the snow cover (m)
  real(dp), parameter, public :: psi_wilt = -1.5e5_dp   !< wilting point matric potential (mm)
  real(dp), parameter, public :: psi_min = -1.0e8_dp    !< lower bound of matric potential (mm)
  real(dp), parameter, public :: pond_max = 10.0_dp     !< maximum ponding depth (kg/m2 = mm)
  real(dp), parameter, public :: wa_max = 5000.0_dp     !< aquifer storage above which water returns to the soil (kg/m2)
  real(dp), parameter, public :: zwt_max = 80.0_dp      !< deepest water table (m)
  real(dp), parameter, public :: zref = 10.0_dp         !< forcing reference height above displacement (m)

  ! --- adaptive sub-stepping (colm_api::colm_step) ---
  real(dp), parameter, public :: dtemp_substep = 25.0_dp !< largest soil-temperature change of a step (K)
  integer, parameter, public :: max_substeps = 32       !< finest sub-division of a step (power of 2)

  ! --- forcing array layout: forcing(nforc, ncol, nmem) ---
  integer, parameter, public :: if_tair = 1     !< air temperature (K)
  integer, parameter, public :: if_qair = 2     !< specific humidity (kg/kg)
  integer, parameter, public :: if_psurf = 3    !< surface pressure (Pa)
  integer, parameter, public :: if_precip = 4   !< total precipitation (kg/m2/s)
  integer, parameter, public :: if_wind = 5     !< wind speed (m/s)
  integer, parameter, public :: if_swdown = 6   !< downward shortwave (W/m2)
  integer, parameter, public :: if_lwdown = 7   !< downward longwave (W/m2)
  integer, parameter, public :: nforc = 7
  !> names of the forcing entries, in index order (read by Python through colm_api::colm_field_name)
  character(len=32), parameter, public :: forcing_names(nforc) = [character(len=32) :: &
    'tair', 'qair', 'psurf', 'precip', 'wind', 'swdown', 'lwdown']

  ! --- parameter array layout: params(npar, ncol) ---
  integer, parameter, public :: ip_theta_s = 1  !< porosity (m3/m3)
  integer, parameter, public :: ip_b = 2        !< Clapp-Hornberger exponent (-)
  integer, parameter, public :: ip_psi_s = 3    !< saturated matric potential (mm, negative)
  integer, parameter, public :: ip_k_s = 4      !< saturated hydraulic conductivity (mm/s)
  integer, parameter, public :: ip_csol = 5     !< heat capacity of soil solids (J/m3/K)
  integer, parameter, public :: ip_tksol = 6    !< thermal conductivity of soil solids (W/m/K)
  integer, parameter, public :: ip_tkdry = 7    !< thermal conductivity of dry soil (W/m/K)
  integer, parameter, public :: ip_lai = 8      !< leaf area index (m2/m2)
  integer, parameter, public :: ip_sai = 9      !< stem area index (m2/m2)
  integer, parameter, public :: ip_z0m = 10     !< roughness length for momentum (m)
  integer, parameter, public :: ip_albedo = 11  !< snow-free surface albedo (-)
  integer, parameter, public :: ip_emis = 12    !< surface emissivity (-)
  integer, parameter, public :: ip_gsmax = 13   !< maximum leaf stomatal conductance (m/s)
  integer, parameter, public :: ip_hydmodel = 14 !< soil hydraulic model (1 = Campbell/Clapp-Hornberger)
  ! derived from the above once (colm_api::colm_derive), never inside the step
  integer, parameter, public :: ip_theta_air = 15 !< air-dry water content, theta at psi_min (m3/m3)
  integer, parameter, public :: ip_tort = 16    !< vapour tortuosity of the dry surface layer (-)
  integer, parameter, public :: ip_s_fc = 17    !< relative saturation at field capacity, psi = -3399 mm (-)
  integer, parameter, public :: ip_log_tksol = 18 !< log of the solids' thermal conductivity
  integer, parameter, public :: ip_fveg = 19    !< vegetated fraction 1 - exp(-0.5 (LAI + SAI)) (-)
  integer, parameter, public :: ip_fint = 20    !< intercepted fraction of rain 0.25 (1 - exp(-0.5 (LAI + SAI)))
  integer, parameter, public :: ip_log_zm = 21  !< log(zref / z0m)
  integer, parameter, public :: ip_log_zh = 22  !< log(zref / z0h), z0h = z0m / 10
  integer, parameter, public :: npar_input = 14 !< parameters set by the caller; the rest are derived
  integer, parameter, public :: npar = 22
  !> names of the parameter entries, in index order
  character(len=32), parameter, public :: param_names(npar) = [character(len=32) :: &
    'theta_s', 'b', 'psi_s', 'k_s', 'csol', 'tksol', 'tkdry', 'lai', 'sai', 'z0m', 'albedo', &
    'emissivity', 'gsmax', 'hydmodel', 'theta_air', 'tortuosity', 's_fc', 'log_tksol', 'fveg', 'fint', &
    'log_zm', 'log_zh']

  ! --- accumulated flux layout: fluxes(nflux, ncol, nmem) ---
  integer, parameter, public :: ix_precip = 1          !< precipitation (kg/m2)
  integer, parameter, public :: ix_evap_soil = 2       !< soil evaporation + snow sublimation (kg/m2)
  integer, parameter, public :: ix_transpiration = 3   !< transpiration (kg/m2)
  integer, parameter, public :: ix_evap_canopy = 4     !< evaporation of intercepted water (kg/m2)
  integer, parameter, public :: ix_runoff_surface = 5  !< surface runoff (kg/m2)
  integer, parameter, public :: ix_runoff_subsurface = 6 !< baseflow + aquifer overflow (kg/m2)
  integer, parameter, public :: ix_analysis = 7        !< water added by data assimilation (kg/m2)
  integer, parameter, public :: ix_sensible = 8        !< sensible heat (J/m2)
  integer, parameter, public :: ix_latent = 9          !< latent heat (J/m2)
  integer, parameter, public :: ix_snowmelt = 10       !< snow melt (kg/m2)
  integer, parameter, public :: ix_ground_heat = 11    !< heat into the soil (J/m2)
  integer, parameter, public :: nflux = 11
  !> names of the flux entries, in index order
  character(len=32), parameter, public :: flux_names(nflux) = [character(len=32) :: &
    'precip', 'evap_soil', 'transpiration', 'evap_canopy', 'runoff_surface', 'runoff_subsurface', &
    'analysis', 'sensible_heat', 'latent_heat', 'snowmelt', 'ground_heat']

  ! --- error codes (per column and member) ---
  integer, parameter, public :: err_ok = 0
  integer, parameter, public :: err_nonfinite = 1      !< a state variable became NaN or Inf
  integer, parameter, public :: err_temperature = 2    !< soil temperature left 150-400 K
  integer, parameter, public :: err_solver = 3         !< singular tridiagonal system
  integer, parameter, public :: err_args = 4           !< inconsistent array sizes or bad dt
  integer, parameter, public :: err_hydmodel = 5       !< unknown soil hydraulic model

  ! --- state layout (colm_api::colm_step): one value per soil layer, lstate(nlev, ncol, nmem, nlstate), and one
  !     value per column, cstate(ncol, nmem, ncstate); the entry index is the last dimension, so that each
  !     entry is one contiguous (nlev, ncol, nmem) or (ncol, nmem) block, as the separate arrays were ---
  integer, parameter, public :: is_wliq = 1     !< liquid soil water per layer (kg/m2)
  integer, parameter, public :: is_wice = 2     !< soil ice per layer (kg/m2)
  integer, parameter, public :: is_tsoil = 3    !< soil temperature per layer (K)
  integer, parameter, public :: nlstate = 3
  !> names of the per-layer state entries, in index order
  character(len=32), parameter, public :: lstate_names(nlstate) = [character(len=32) :: 'wliq', 'wice', 'tsoil']
  integer, parameter, public :: ic_zwt = 1      !< water-table depth (m)
  integer, parameter, public :: ic_wa = 2       !< water in the unconfined aquifer (kg/m2)
  integer, parameter, public :: ic_wcanopy = 3  !< intercepted water on the canopy (kg/m2)
  integer, parameter, public :: ic_wsnow = 4    !< snow water equivalent (kg/m2)
  integer, parameter, public :: ic_wpond = 5    !< ponded surface water (kg/m2)
  integer, parameter, public :: ic_tskin = 6    !< surface (skin) temperature (K)
  integer, parameter, public :: ic_tsnow = 7    !< snow-layer temperature (K)
  integer, parameter, public :: ic_dsnow = 8    !< snow depth (m)
  integer, parameter, public :: ncstate = 8
  !> names of the per-column state entries, in index order
  character(len=32), parameter, public :: cstate_names(ncstate) = [character(len=32) :: &
    'zwt', 'wa', 'wcanopy', 'wsnow', 'wpond', 'tskin', 'tsnow', 'dsnow']
end module colm_const
