!> Kinds used throughout the column physics.
module colm_kinds
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  implicit none
  private
  public :: dp, ip
  integer, parameter :: dp = c_double   !< working real kind (C double)
  integer, parameter :: ip = c_int      !< integer kind for the API
end module colm_kinds
