"""ColumnModel API: geometry, in-place state, validation, analysis increments, snapshots, members."""

import dataclasses

import landimg
import numpy as np
import pytest
from landimg import soil
from landimg.model import _binding
from landimg.model._colm import colm_api

NLEV = 10


def forcing(ncol, nmem=None, seed=0, **over):
    """Physical forcing (ncol,) or (ncol, nmem) from a fixed seed."""
    rng = np.random.default_rng(seed)
    shape = (ncol,) if nmem is None else (ncol, nmem)
    tair = rng.uniform(275.0, 300.0, shape)
    f = {
        "tair": tair,
        "qair": 0.6 * 0.622 * 611.2 * np.exp(17.67 * (tair - 273.15) / (tair - 29.65)) / 1.0e5,
        "psurf": rng.uniform(9.5e4, 1.02e5, shape),
        "precip": rng.exponential(5e-4, shape) * (rng.random(shape) < 0.5),
        "wind": rng.uniform(0.5, 8.0, shape),
        "swdown": rng.uniform(0.0, 800.0, shape),
        "lwdown": rng.uniform(250.0, 400.0, shape),
    }
    f.update(over)
    return f


def balance_residual(m, s0):
    F = m.fluxes
    return (m.water_storage() - s0) - (
        F["precip"] - F["evap_soil"] - F["transpiration"] - F["evap_canopy"]
        - F["runoff_surface"] - F["runoff_subsurface"] + F["analysis"]
    )  # fmt: skip


def test_geometry_matches_colm_formula():
    m = landimg.ColumnModel(2, 1)
    j = np.arange(1, NLEV + 1)
    z = 0.025 * (np.exp(0.5 * (j - 0.5)) - 1.0)
    assert m.nlev == NLEV
    np.testing.assert_allclose(m.z_node, z, rtol=1e-14)
    np.testing.assert_allclose(m.dz[0], 0.5 * (z[0] + z[1]), rtol=1e-14)
    np.testing.assert_allclose(m.dz[1:-1], 0.5 * (z[2:] - z[:-2]), rtol=1e-14)
    np.testing.assert_allclose(m.dz[-1], z[-1] - z[-2], rtol=1e-14)
    bottoms = [0.0175, 0.0451, 0.0906, 0.1655, 0.2891, 0.4929, 0.8289, 1.3828, 2.2961, 3.4331]
    np.testing.assert_allclose(m.z_bottom, bottoms, atol=6e-5)
    np.testing.assert_allclose(np.cumsum(m.dz), m.z_bottom, rtol=1e-13)


def test_layer_weights_match_reference_fractions():
    m = landimg.ColumnModel(1, 1)
    w = m.layer_weights([(0.0, 0.1), (0.1, 0.4), (0.4, 1.0)])
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-14)
    # fraction of each layer inside the interval (CoLM geometry: 0.1259 of layer 4 etc., 4 digits)
    frac = w * np.array([0.1, 0.3, 0.6])[:, None] / m.dz[None, :]
    np.testing.assert_allclose(frac[0, :3], 1.0, rtol=1e-12)
    np.testing.assert_allclose(frac[0, 3], 0.1259, atol=6e-4)
    np.testing.assert_allclose(frac[1, 3], 0.8741, atol=6e-4)
    np.testing.assert_allclose(frac[1, 5], 0.5441, atol=6e-4)
    np.testing.assert_allclose(frac[2, 5], 0.4559, atol=6e-4)
    np.testing.assert_allclose(frac[2, 7], 0.3089, atol=6e-4)
    with pytest.raises(ValueError, match="intervals"):
        m.layer_weights([(0.2, 0.1)])


def test_theta_and_layer_mean():
    m = landimg.ColumnModel(3, 2, soil=soil.from_class(["sand", "loam", "clay"]))
    th = m.theta()
    assert th.shape == (NLEV, 3, 2)
    # cold start is saturated
    np.testing.assert_allclose(th, m.theta_sat[:, :, None] * np.ones((1, 1, 2)), rtol=1e-14)
    rng = np.random.default_rng(1)
    m.state["wliq"][...] = rng.uniform(0.1, 0.3, (NLEV, 3, 2)) * 1000.0 * m.dz[:, None, None]
    m.state["wice"][...] = 0.0
    lm = m.layer_mean([(0.0, 0.1), (0.1, 0.4)])
    t = m.theta()
    manual = np.zeros((2, 3, 2))
    for k, (a, b) in enumerate([(0.0, 0.1), (0.1, 0.4)]):
        for j in range(NLEV):
            ov = max(0.0, min(b, m.z_bottom[j]) - max(a, m.z_top[j]))
            manual[k] += ov * t[j] / (b - a)
    np.testing.assert_allclose(lm, manual, rtol=1e-13)


def test_state_buffers_are_updated_in_place():
    m = landimg.ColumnModel(5, 3, dt=1800.0)
    before = {k: (v, v.__array_interface__["data"][0]) for k, v in m.state.items()}
    flux_before = {k: v.__array_interface__["data"][0] for k, v in m.fluxes.items()}
    w0 = m.state["wliq"].copy()
    m.step(forcing(5, 3), nsteps=3)
    for k, v in m.state.items():
        assert v is before[k][0], k
        assert v.__array_interface__["data"][0] == before[k][1], k
        assert v.dtype == np.float64 and v.flags.f_contiguous, k
    for k, v in m.fluxes.items():
        assert v.__array_interface__["data"][0] == flux_before[k], k
    assert not np.array_equal(m.state["wliq"], w0)  # it really was updated
    assert m.fluxes["precip"].sum() > 0
    with pytest.raises(TypeError):
        m.state["wliq"] = np.zeros_like(w0)  # buffers cannot be rebound


def test_f2py_kinds_and_no_silent_copies():
    """real(c_double) reaches Fortran as double; a C-ordered inout array is refused, never copied."""
    m = landimg.ColumnModel(4, 2)
    args = dict(
        forcing=np.asfortranarray(np.stack([forcing(4, 2)[k] for k in _binding.FORTRAN_FORCING])),
        params=m._params, rootfr=m._rootfr, cstate=m._cstate, fluxes=m._fluxes, colerr=m._colerr,
    )  # fmt: skip
    lstate_c = np.ascontiguousarray(m._lstate)
    with pytest.raises(ValueError):
        colm_api.colm_step(1, 1800.0, lstate=lstate_c, **args)
    # geometry computed in Fortran equals the formula in double precision (float would be ~1e-8 off)
    z, _, _ = colm_api.colm_geometry(NLEV)
    j = np.arange(1, NLEV + 1)
    np.testing.assert_allclose(z, 0.025 * (np.exp(0.5 * (j - 0.5)) - 1.0), rtol=1e-15)
    # a column block of a larger Fortran array is updated in place
    big = np.asfortranarray(np.concatenate([m._lstate, m._lstate], axis=3))
    view = big[..., :3]
    assert view.flags.f_contiguous
    ierr = colm_api.colm_step(1, 1800.0, lstate=view, **args)
    assert ierr == 0
    assert not np.array_equal(big[..., :3], big[..., 3:])


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("tair", np.full(4, 140.0), "tair"),
        ("tair", np.full(4, 360.0), "tair"),
        ("precip", np.full(4, -1e-5), "precip.*negative"),
        ("qair", np.array([0.01, np.nan, 0.01, 0.01]), "qair.*NaN"),
        ("swdown", np.array([np.inf, 0.0, 0.0, 0.0]), "swdown.*NaN or Inf"),
        ("wind", np.full(5, 2.0), "wind.*shape"),
        ("lwdown", np.full((4, 3), 300.0), "lwdown.*shape"),
        ("psurf", np.full(4, 1e5, dtype=complex), "psurf.*dtype"),
        ("tair", np.array(["a"] * 4), "tair.*dtype"),
    ],
)
def test_bad_forcing_raises_and_leaves_state_untouched(name, value, match):
    m = landimg.ColumnModel(4, 2)
    m.step(forcing(4), nsteps=2)
    snap = m.get_state()
    f = forcing(4, seed=3)
    f[name] = value
    with pytest.raises(ValueError, match=match):
        m.step(f)
    after = m.get_state()
    for k in snap:
        assert np.array_equal(snap[k], after[k]), k


def test_missing_unknown_forcing_and_bad_arguments():
    m = landimg.ColumnModel(2, 1)
    f = forcing(2)
    del f["lwdown"]
    with pytest.raises(ValueError, match="lwdown"):
        m.step(f)
    with pytest.raises(ValueError, match="rainf"):
        m.step({**forcing(2), "rainf": np.zeros(2)})
    with pytest.raises(ValueError, match="nsteps"):
        m.step(forcing(2), nsteps=-1)
    with pytest.raises(ValueError, match="dt"):
        landimg.ColumnModel(2, 1, dt=7200.0)
    with pytest.raises(ValueError, match="ncol"):
        landimg.ColumnModel(0, 1)
    with pytest.raises(ValueError, match="columns"):
        landimg.ColumnModel(3, 1, soil=soil.from_class("loam", 2))


@pytest.mark.parametrize(
    "field, value", [("theta_s", 1.2), ("b", 0.0), ("psi_s", 50.0), ("k_s", -1e-3), ("tkdry", np.nan)]
)
def test_unphysical_soil_parameters_are_rejected(field, value):
    sl = soil.from_class("loam", 3)
    bad = dataclasses.replace(sl, **{field: np.array([getattr(sl, field)[0], value, getattr(sl, field)[2]])})
    with pytest.raises(ValueError, match=f"soil.{field}"):
        landimg.ColumnModel(3, 1, soil=bad)
    with pytest.raises(ValueError, match="soil.k_s.*shape"):
        landimg.ColumnModel(3, 1, soil=dataclasses.replace(sl, k_s=np.full(4, 0.007)))


def test_forcing_per_column_equals_broadcast_per_member():
    a = landimg.ColumnModel(3, 2)
    b = landimg.ColumnModel(3, 2)
    f = forcing(3)
    a.step(f, nsteps=5)
    b.step({k: np.repeat(v[:, None], 2, axis=1) for k, v in f.items()}, nsteps=5)
    for k in a.state:
        assert np.array_equal(a.state[k], b.state[k])


def test_members_together_equal_members_alone_bitwise():
    ncol, nmem = 4, 3
    sl = soil.from_class(["sand", "loam", "clay", "silt loam"])
    together = landimg.ColumnModel(ncol, nmem, soil=sl, dt=3600.0, igbp=np.array([1, 10, 12, 16]))
    alone = [
        landimg.ColumnModel(ncol, 1, soil=sl, dt=3600.0, igbp=np.array([1, 10, 12, 16])) for _ in range(nmem)
    ]
    for k in range(48):
        f = forcing(ncol, nmem, seed=k)
        together.step(f)
        for i, mi in enumerate(alone):
            mi.step({n: v[:, i] for n, v in f.items()})
    for i, mi in enumerate(alone):
        for key in together.state:
            assert np.array_equal(together.state[key][..., i], mi.state[key][..., 0]), key
        for key in together.fluxes:
            assert np.array_equal(together.fluxes[key][:, i], mi.fluxes[key][:, 0]), key


def test_permuting_columns_permutes_results():
    ncol = 6
    names = ["sand", "loam", "clay", "silt loam", "sandy clay", "loamy sand"]
    igbp = np.array([1, 7, 10, 12, 16, 4])
    perm = np.array([3, 0, 5, 1, 4, 2])
    a = landimg.ColumnModel(ncol, 2, soil=soil.from_class(names), dt=3600.0, igbp=igbp)
    b = landimg.ColumnModel(ncol, 2, soil=soil.from_class(names).take(perm), dt=3600.0, igbp=igbp[perm])
    for k in range(48):
        f = forcing(ncol, 2, seed=100 + k)
        a.step(f)
        b.step({n: v[perm] for n, v in f.items()})
    for key in a.state:
        assert np.array_equal(a.state[key][..., perm, :], b.state[key]), key
    for key in a.fluxes:
        assert np.array_equal(a.fluxes[key][perm], b.fluxes[key]), key


def test_get_set_state_restores_bitwise():
    m = landimg.ColumnModel(3, 2, dt=3600.0)
    for k in range(10):
        m.step(forcing(3, 2, seed=k))
    snap = m.get_state()
    assert set(snap) >= set(landimg.model.column.STATE_UNITS)
    for k in range(10, 30):
        m.step(forcing(3, 2, seed=k))
    ref = m.get_state()
    m.set_state(snap)
    for k in range(10, 30):
        m.step(forcing(3, 2, seed=k))
    for key, v in m.get_state().items():
        assert np.array_equal(v, ref[key]), key
    with pytest.raises(ValueError, match="wliq"):
        m.set_state({**snap, "wliq": np.zeros((2, 2))})
    bad = dict(snap)
    del bad["zwt"]
    with pytest.raises(ValueError, match="zwt"):
        m.set_state(bad)


def test_add_soil_water_clips_books_and_keeps_balance():
    ncol, nmem = 4, 3
    m = landimg.ColumnModel(
        ncol, nmem, soil=soil.from_class(["sand", "loam", "clay", "silt loam"]), dt=3600.0
    )
    for k in range(24 * 5):
        m.step(forcing(ncol, nmem, seed=k, precip=np.zeros(ncol)))
    s0 = m.water_storage()
    m.reset_fluxes()
    rng = np.random.default_rng(7)
    delta = rng.normal(0.0, 30.0, (NLEV, ncol, nmem))
    delta[:, 0, 0] = 1.0e4  # far beyond saturation: mostly clipped
    delta[:, 1, 0] = -1.0e4  # far below zero: clipped at dry
    wliq_before = m.state["wliq"].copy()
    applied, clipped = m.add_soil_water(delta)
    assert applied.shape == clipped.shape == (ncol, nmem)
    np.testing.assert_allclose(applied + clipped, delta.sum(axis=0), rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(m.state["wliq"].sum(axis=0) - wliq_before.sum(axis=0), applied, atol=1e-10)
    np.testing.assert_array_equal(m.fluxes["analysis"], applied)
    assert np.all(m.state["wliq"] >= 0.0)
    assert np.all(m.theta() <= m.theta_sat[:, :, None] + 1e-12)
    np.testing.assert_allclose(m.theta()[:, 0, 0], m.theta_sat[:, 0], rtol=1e-12)  # filled to saturation
    np.testing.assert_array_equal(m.state["wliq"][:, 1, 0], 0.0)  # emptied
    np.testing.assert_allclose(applied[1, 0], -wliq_before[:, 1, 0].sum(), rtol=1e-13)
    # balance identity including the analysis term, then through further steps
    assert np.abs(balance_residual(m, s0)).max() < 1e-9
    for k in range(48):
        m.step(forcing(ncol, nmem, seed=500 + k))
    assert np.abs(balance_residual(m, s0)).max() < 1e-9
    with pytest.raises(ValueError, match="delta_wliq"):
        m.add_soil_water(np.zeros((NLEV, ncol)))
    with pytest.raises(ValueError, match="delta_wliq"):
        m.add_soil_water(np.full((NLEV, ncol, nmem), np.nan))


def test_add_soil_water_respects_ice():
    m = landimg.ColumnModel(1, 1)
    m.state["wliq"][...] = 0.0
    m.state["wice"][...] = 0.5 * m.theta_sat[:, :, None] * 917.0 * m.dz[:, None, None]
    applied, _ = m.add_soil_water(np.full((NLEV, 1, 1), 1.0e4))
    np.testing.assert_allclose(m.theta(), m.theta_sat[:, :, None], rtol=1e-12)
    np.testing.assert_allclose(applied[0, 0], (0.5 * m.theta_sat[:, 0] * 1000.0 * m.dz).sum(), rtol=1e-12)


def test_frozen_flags():
    m = landimg.ColumnModel(3, 1)
    assert not m.frozen().any()
    m.state["tsoil"][1, 0, 0] = 270.0  # below freezing within 10 cm
    m.state["wice"][3, 1, 0] = 1.0  # ice in layer 4 (its top is above 10 cm)
    assert m.frozen()[:, 0].tolist() == [True, True, False]
    m.state["wsnow"][2, 0] = 5.0
    assert m.frozen()[2, 0]
    m.state["wsnow"][2, 0] = 0.0
    m.state["tsoil"][6, 2, 0] = 260.0  # deep frost does not flag the surface
    assert not m.frozen()[2, 0]


def test_water_storage_sums_all_stores():
    m = landimg.ColumnModel(2, 2)
    for key, v in (("wa", 1.0), ("wcanopy", 0.25), ("wsnow", 3.0), ("wpond", 0.5)):
        m.state[key][...] = v
    m.state["wice"][...] = 0.0
    expect = m.state["wliq"].sum(axis=0) + 4.75
    np.testing.assert_allclose(m.water_storage(), expect, rtol=1e-15)


def test_fortran_failure_raises_runtime_error_naming_the_column():
    m = landimg.ColumnModel(3, 2)
    m._params[landimg.model.column._PARAM_INDEX["hydmodel"], 1] = 7.0  # model code 7 does not exist
    with pytest.raises(RuntimeError, match="column 1, member 0: unknown soil hydraulic model"):
        m.step(forcing(3))


def test_stale_extension_is_refused_with_a_rebuild_message():
    class Old:
        @staticmethod
        def api_version():
            return _binding.API_VERSION - 1

    with pytest.raises(ImportError, match="API version .*needs version .*stale build.*rebuild the extension"):
        _binding._check_version(Old)
    with pytest.raises(ImportError, match="rebuild the extension"):
        _binding._check_version(object())  # no api_version at all
    _binding._check_version(colm_api)  # the built extension passes


def test_fortran_and_python_agree_by_name():
    """Names come from the Fortran table; a renamed or missing entry is an ImportError naming it;
    parameters are packed by name whatever the Fortran order."""
    from landimg.model import column

    assert set(_binding.FORTRAN_PARAMS) == set(column.PARAM_NAMES)
    assert _binding.FORTRAN_FORCING == tuple(column.FORCING_NAMES) or set(_binding.FORTRAN_FORCING) == set(
        column.FORCING_NAMES
    )
    with pytest.raises(ImportError, match="only in Fortran: \\['k_sat'\\].*only in Python: \\['k_s'\\]"):
        _binding.check_names("parameter", ("theta_s", "k_sat"), ("theta_s", "k_s"))
    idx = _binding.check_names("parameter", ("b", "a"), ("a", "b"))
    assert idx == {"a": 1, "b": 0}
    sl = soil.from_class(["sand", "clay"])
    m = landimg.ColumnModel(2, 1, soil=sl, igbp=np.array([1, 16]))
    for name in ("theta_s", "b", "psi_s", "k_s", "tkdry"):
        np.testing.assert_array_equal(m.param(name), getattr(sl, name)[:, None])
        name_f = colm_api.colm_field_name(2, column._PARAM_INDEX[name] + 1)[0]
        assert bytes(name_f).decode().strip() == name
    np.testing.assert_array_equal(m.param("lai"), m.veg.lai[:, None])
    with pytest.raises(ValueError, match="unknown parameter 'porosity'"):
        m.param("porosity")


def test_the_state_passes_to_fortran_by_name():
    """Every state entry is the slice of the Fortran state array that colm_field_name names (groups 4: per
    layer, 5: per column), one Fortran-contiguous block each; a Python name the extension lacks is refused."""
    from landimg.model import column

    assert set(_binding.FORTRAN_LSTATE) | set(_binding.FORTRAN_CSTATE) == set(column.STATE_UNITS)
    m = landimg.ColumnModel(3, 2)
    for group, stack, index in ((4, m._lstate, column._LSTATE_INDEX), (5, m._cstate, column._CSTATE_INDEX)):
        assert stack.flags.f_contiguous and stack.shape[-1] == len(index)
        for name, i in index.items():
            assert bytes(colm_api.colm_field_name(group, i + 1)[0]).decode().strip() == name
            view = m.state[name]
            assert view.flags.f_contiguous and np.shares_memory(view, stack[..., i]) and view.shape == stack.shape[:-1]
        assert colm_api.colm_field_name(group, len(index) + 1)[1] == 1  # past the table: ierr 1
    m.state["tsoil"][...] = 271.0  # written through the name reaches the Fortran array at the named index
    assert (m._lstate[..., column._LSTATE_INDEX["tsoil"]] == 271.0).all()
    with pytest.raises(ImportError, match="only in Python: \\['wsoil'\\]"):
        _binding.check_names("layer state", _binding.FORTRAN_LSTATE, ("wliq", "wice", "wsoil"))


def test_per_member_soil_equals_separate_runs_bitwise():
    """Members with different soil parameters (arrays (ncol, nmem), one Fortran call per step) equal
    separate one-member runs with those parameters, bitwise; per-column (ncol,) soil broadcasts to
    every member."""
    ncol, nmem = 3, 3
    igbp = np.array([1, 10, 16])
    per = [soil.from_class(["sand", "loam", "clay"]), soil.from_class(["clay", "silt loam", "sand"]),
           soil.from_texture(np.array([20.0, 50.0, 80.0]), np.array([30.0, 20.0, 5.0]))]  # fmt: skip
    stacked = soil.stack_members(per)
    assert stacked.nmem == nmem and stacked.theta_s.shape == (ncol, nmem)
    together = landimg.ColumnModel(ncol, nmem, soil=stacked, dt=3600.0, igbp=igbp)
    alone = [landimg.ColumnModel(ncol, 1, soil=p, dt=3600.0, igbp=igbp) for p in per]
    np.testing.assert_array_equal(together.porosity()[0], stacked.theta_s)
    for k in range(72):
        f = forcing(ncol, nmem, seed=k)
        together.step(f)
        for i, mi in enumerate(alone):
            mi.step({n: v[:, i] for n, v in f.items()})
    for i, mi in enumerate(alone):
        for key in together.state:
            assert np.array_equal(together.state[key][..., i], mi.state[key][..., 0]), key
        for key in together.fluxes:
            assert np.array_equal(together.fluxes[key][:, i], mi.fluxes[key][:, 0]), key
    # the members really differ, and the bounds of add_soil_water follow each member's porosity
    assert not np.array_equal(together.state["wliq"][..., 0], together.state["wliq"][..., 1])
    together.add_soil_water(np.full((NLEV, ncol, nmem), 1.0e4))
    np.testing.assert_allclose(together.theta(), together.porosity(), rtol=1e-12)
    # per-column soil: the same as the per-member form with equal members
    a = landimg.ColumnModel(ncol, 2, soil=per[0], dt=3600.0, igbp=igbp)
    b = landimg.ColumnModel(ncol, 2, soil=soil.stack_members([per[0], per[0]]), dt=3600.0, igbp=igbp)
    for k in range(24):
        f = forcing(ncol, 2, seed=50 + k)
        a.step(f)
        b.step(f)
    for key in a.state:
        assert np.array_equal(a.state[key], b.state[key]), key
    assert stacked.member(1).b.tolist() == per[1].b.tolist()
    with pytest.raises(ValueError, match="members"):
        landimg.ColumnModel(ncol, 2, soil=stacked)
    with pytest.raises(ValueError, match="soil.b must have shape"):
        landimg.ColumnModel(ncol, nmem, soil=dataclasses.replace(stacked, b=stacked.b[:, 0]))


def test_from_texture_per_member():
    sand = np.array([[20.0, 40.0], [60.0, 80.0]])
    clay = np.array([[30.0, 20.0], [10.0, 5.0]])
    p = soil.from_texture(sand, clay)
    assert p.theta_s.shape == (2, 2) and p.nmem == 2
    q = soil.from_texture(sand[:, 1], clay[:, 1])
    for k in ("theta_s", "b", "psi_s", "k_s", "csol", "tksol", "tkdry"):
        np.testing.assert_array_equal(getattr(p.member(1), k), getattr(q, k))
