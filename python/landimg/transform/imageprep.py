"""Make maps transformable by the (periodic) curvelet transform: fill gaps, pad edges, crop back.

The curvelet transform treats an image as periodic in both directions. Two things then create false
curvelets: gaps (ocean, missing observations; NaN cannot be transformed) and the jump between opposite edges
of a non-periodic domain. :func:`fill_gaps` removes the first, :class:`EdgePadding` the second.

Edge treatment (default): every non-periodic axis (latitude always, longitude of a regional grid) is
extended by a *mirror reflection* of the image, and the two mirrored halves are cross-faded with a smooth
(Meyer-type) weight in the middle of the padding, where they meet through the periodic wrap. The padded image
is therefore continuous across the original edges (a mirror has no jump) and across the periodic seam (the
cross-fade), so no edge-aligned curvelets appear, and the seam, where the padding is least realistic, lies
``pad`` pixels away from the domain. The longitude axis of a global grid (``periodic_lon=True``) is already
periodic and is left alone. Innovations that leak into the padding are cropped away; during an analysis
the padding counts as unobserved (use :attr:`EdgePadding.interior`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from landimg.transform._windows import meyer_nu

__all__ = ["EdgePadding", "default_pad", "fill_gaps"]


def fill_gaps(
    images: np.ndarray, valid: np.ndarray, background: np.ndarray | float | None = None
) -> np.ndarray:
    """Replace invalid pixels (land-sea mask, observation gaps) so the images can be transformed.

    Parameters
    ----------
    images : array_like, shape (..., ny, nx)
        Images (e.g. soil moisture, m3/m3). Values at invalid pixels are ignored (may be NaN).
    valid : array_like of bool, broadcastable to ``images``
        True where the pixel holds usable data. Non-finite values of ``images`` are treated as invalid too.
    background : array_like or float, optional
        Fill values, broadcastable to ``images`` (e.g. each member's own background image). If None,
        each image's mean over its valid pixels is used.

    Returns
    -------
    ndarray of float64, shape of ``images``
        A new array; valid pixels unchanged.

    Raises
    ------
    ValueError
        Shape mismatch, an image without any valid pixel (when ``background`` is None), or a non-finite
        background value at a pixel that needs filling.
    """
    x = np.array(images, dtype=np.float64, copy=True)
    if x.ndim < 2:
        raise ValueError(f"images must have shape (..., ny, nx), got {x.shape}")
    v = np.asarray(valid)
    if v.dtype != bool:
        raise ValueError(f"valid must be a boolean array, got dtype {v.dtype}")
    try:
        v = np.broadcast_to(v, x.shape)
    except ValueError:
        raise ValueError(
            f"valid of shape {v.shape} does not broadcast to images of shape {x.shape}"
        ) from None
    v = v & np.isfinite(x)
    if background is None:
        count = v.sum(axis=(-2, -1))
        if np.any(count == 0):
            raise ValueError("an image has no valid pixels: cannot fill from its mean (pass background=)")
        mean = np.where(v, x, 0.0).sum(axis=(-2, -1)) / count
        fill = np.broadcast_to(mean[..., None, None], x.shape)
    else:
        b = np.asarray(background, dtype=np.float64)
        try:
            fill = np.broadcast_to(b, x.shape)
        except ValueError:
            raise ValueError(
                f"background of shape {b.shape} does not broadcast to images of shape {x.shape}"
            ) from None
        if not np.isfinite(fill[~v]).all():
            raise ValueError("background is not finite at some pixel that needs filling")
    x[~v] = fill[~v]
    return x


def default_pad(n: int) -> int:
    """Default padding width (pixels per side) of a non-periodic axis of length ``n``.

    ``max(4, ceil(n / 8))``: with the default number of scales, ``ceil(log2(n) - 3)``, the coarsest
    curvelet lowpass has a spatial half-width of about ``0.75 * 2**(nscales - 1)``, i.e. between ``n/16``
    and ``n/8`` pixels, so a pad of ``n/8`` keeps the periodic seam (in the middle of the padding of both
    sides, ``2 * pad`` wide) out of reach of all but the coarsest elements centred on the edge, at a cost of
    ``1.25x`` pixels per padded axis.
    """
    return max(4, math.ceil(n / 8))


def _blend_axis(x: np.ndarray, before: int, after: int, axis: int) -> np.ndarray:
    """Mirror-pad ``x`` along ``axis`` with a smooth cross-fade at the periodic seam."""
    n = x.shape[axis]
    gap = before + after
    if gap == 0:
        return x
    x = np.moveaxis(x, axis, -1)
    k = np.arange(gap)
    # going right from the last pixel: mirror of the right edge (half-sample symmetric) ...
    right = x[..., n - 1 - k]
    # ... and coming from the left edge backwards: mirror of the left edge
    left = x[..., gap - 1 - k]
    t = meyer_nu((k + 0.5) / gap)  # 0 near the right edge, 1 near the left edge; smooth
    filled = (1.0 - t) * right + t * left
    out = np.concatenate([filled[..., gap - before :], x, filled[..., : gap - before]], axis=-1)
    return np.moveaxis(out, -1, axis)


class EdgePadding:
    """Pad images for the periodic curvelet transform and crop them back.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(ny, nx)`` (rows = latitude, columns = longitude).
    pad : int or (int, int), optional
        Pixels added on *each* side of the (latitude, longitude) axes. Default :func:`default_pad` of
        each non-periodic axis, with the far side enlarged by up to a few pixels so that the padded size
        factors into 2, 3 and 5 (fast FFTs). Must be at most half the axis length.
    periodic_lon : bool
        True for global grids: the longitude axis is periodic already and is not padded (its ``pad``
        must be 0 or omitted).

    Attributes
    ----------
    shape, padded_shape : tuple of int
    offset : (int, int)
        Position of pixel (0, 0) of the original image in the padded image.
    interior : ndarray of bool, shape padded_shape
        True at the original pixels.
    """

    def __init__(
        self, shape: tuple[int, int], pad: int | tuple[int, int] | None = None, periodic_lon: bool = False
    ):
        try:
            ny, nx = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be a pair of ints (ny, nx), got {shape!r}") from None
        if ny < 2 or nx < 2:
            raise ValueError(f"shape must be at least (2, 2), got {shape!r}")
        self.shape = (ny, nx)
        self.periodic_lon = bool(periodic_lon)
        if pad is None:
            py = self._auto(ny)
            px = (0, 0) if self.periodic_lon else self._auto(nx)
        else:
            p = (pad, pad) if np.isscalar(pad) else tuple(pad)
            if len(p) != 2 or any(int(v) != v or v < 0 for v in p):
                raise ValueError(f"pad must be a non-negative int or a pair of them, got {pad!r}")
            if self.periodic_lon and p[1] != 0:
                raise ValueError("pad along longitude must be 0 when periodic_lon=True")
            py, px = (int(p[0]), int(p[0])), (int(p[1]), int(p[1]))
        for (b, a), n, name in ((py, ny, "latitude"), (px, nx, "longitude")):
            if b + a > n:
                raise ValueError(f"pad along {name} ({b}+{a}) exceeds the axis length {n}")
        self._py, self._px = py, px
        self.offset = (py[0], px[0])
        self.padded_shape = (ny + sum(py), nx + sum(px))
        interior = np.zeros(self.padded_shape, dtype=bool)
        interior[py[0] : py[0] + ny, px[0] : px[0] + nx] = True
        interior.setflags(write=False)
        self.interior = interior

    @staticmethod
    def _auto(n: int) -> tuple[int, int]:
        p = min(default_pad(n), n // 2)
        total = scipy.fft.next_fast_len(n + 2 * p, real=True)
        after = min(total - n - p, n - p)
        return p, after

    def __repr__(self) -> str:
        return f"EdgePadding(shape={self.shape}, padded_shape={self.padded_shape}, periodic_lon={self.periodic_lon})"

    def pad(self, images: np.ndarray) -> np.ndarray:
        """Padded images.

        Parameters
        ----------
        images : array_like, shape (..., ny, nx)

        Returns
        -------
        ndarray of float64, shape (..., *padded_shape)
        """
        x = np.asarray(images, dtype=np.float64)
        if x.ndim < 2 or x.shape[-2:] != self.shape:
            raise ValueError(f"images must have trailing shape {self.shape}, got {x.shape}")
        x = _blend_axis(x, *self._py, axis=-2)
        x = _blend_axis(x, *self._px, axis=-1)
        return np.ascontiguousarray(x)

    def embed_mask(self, mask: np.ndarray) -> np.ndarray:
        """A boolean mask (..., ny, nx) placed into the padded grid, False in the padding.

        E.g. the observed-pixel mask of the padded images (the padding is unobserved).
        """
        m = np.asarray(mask)
        if m.dtype != bool or m.ndim < 2 or m.shape[-2:] != self.shape:
            raise ValueError(
                f"mask must be a boolean array with trailing shape {self.shape}, got {m.dtype} {m.shape}"
            )
        out = np.zeros((*m.shape[:-2], *self.padded_shape), dtype=bool)
        oy, ox = self.offset
        out[..., oy : oy + self.shape[0], ox : ox + self.shape[1]] = m
        return out

    def crop(self, images: np.ndarray) -> np.ndarray:
        """The original pixels of padded images, shape (..., ny, nx) (a copy)."""
        x = np.asarray(images)
        if x.ndim < 2 or x.shape[-2:] != self.padded_shape:
            raise ValueError(f"images must have trailing shape {self.padded_shape}, got {x.shape}")
        oy, ox = self.offset
        return x[..., oy : oy + self.shape[0], ox : ox + self.shape[1]].copy()
