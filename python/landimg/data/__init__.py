"""Real data as distributed: product readers, conservative regridding onto the model grid, ISMN
stations, and the preprocessing tool ``python -m landimg.data`` (regrid, stations, demo).

Modules: :mod:`~landimg.data.common` (errors, files, units, times), :mod:`~landimg.data.regrid`
(exact area-overlap regridding), one reader per product (:mod:`~landimg.data.smap`,
:mod:`~landimg.data.cci`, :mod:`~landimg.data.gridded`, :mod:`~landimg.data.gldas`,
:mod:`~landimg.data.era5`, :mod:`~landimg.data.cmfd`, :mod:`~landimg.data.alma`,
:mod:`~landimg.data.stations`), :mod:`~landimg.data.series` (a file series on the model grid),
:mod:`~landimg.data.fixtures` (format-faithful small files), :mod:`~landimg.data.cli`.
"""

from landimg.data.common import DataError

__all__ = ["DataError"]
