!> Small linear-algebra helpers for the column physics.
module colm_linalg
  use colm_kinds, only: dp
  implicit none
  private
  public :: tridiag

contains

  !> Solve a tridiagonal system a(j) u(j-1) + b(j) u(j) + c(j) u(j+1) = r(j) (Thomas algorithm).
  !> a(1) and c(n) are ignored. info = 0 on success, 1 on a zero, subnormal or NaN pivot.
  pure subroutine tridiag(a, b, c, r, u, info)
    real(dp), intent(in), contiguous :: a(:), b(:), c(:), r(:)
    real(dp), intent(out), contiguous :: u(:)
    integer, intent(out) :: info
    real(dp) :: gam(size(b)), bet
    integer :: j, n

    n = size(b)
    info = 0
    u = 0.0_dp
    bet = b(1)
    if (.not. (abs(bet) > tiny(1.0_dp))) then   ! zero, subnormal or NaN pivot
      info = 1
      return
    end if
    u(1) = r(1) / bet
    do j = 2, n
      gam(j) = c(j - 1) / bet
      bet = b(j) - a(j) * gam(j)
      if (.not. (abs(bet) > tiny(1.0_dp))) then   ! zero, subnormal or NaN pivot
        info = 1
        return
      end if
      u(j) = (r(j) - a(j) * u(j - 1)) / bet
    end do
    do j = n - 1, 1, -1
      u(j) = u(j) - gam(j + 1) * u(j + 1)
    end do
  end subroutine tridiag
end module colm_linalg
