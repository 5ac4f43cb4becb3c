"""Public analysis API (a stable name): the methods and functional cores of :mod:`landimg.da`.

``landimg.analysis.CurveletEnKF``, ``PointEnKF``, ``PointLETKF``, ``OpenLoop`` and ``curvelet_enkf`` are
the names users and embedding hosts import; the code lives in the :mod:`landimg.da` room.
"""

from landimg.da.methods import *  # noqa: F403 - the names of landimg.da.methods, re-exported
from landimg.da.methods import __all__  # noqa: F401
