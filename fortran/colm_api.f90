!> The only module numpy.f2py reads: explicit-shape real(c_double) arrays, loops over columns and members.
module colm_api
  use, intrinsic :: iso_c_binding, only: c_double, c_int
  use colm_kinds, only: dp
  implicit none
  private
  public :: api_version

contains

  !> Version of the Fortran API (bumped when an argument list changes).
  subroutine api_version(version)
    integer(c_int), intent(out) :: version
    version = 1
  end subroutine api_version

end module colm_api
