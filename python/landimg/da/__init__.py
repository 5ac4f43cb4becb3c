"""The DA room: analysis methods on arrays (no model, no experiment).

``METHODS`` maps the names used in configurations and output files to the method dataclasses; each
dataclass declares its hyper-parameters (type, default, one-line doc) once.
"""

from landimg.da.methods import CurveletEnKF, OpenLoop, PointEnKF, PointLETKF

METHODS: dict[str, type] = {
    "openloop": OpenLoop,
    "point_enkf": PointEnKF,
    "point_letkf": PointLETKF,
    "curvelet_enkf": CurveletEnKF,
}

__all__ = ["METHODS", "CurveletEnKF", "OpenLoop", "PointEnKF", "PointLETKF"]
