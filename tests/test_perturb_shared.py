"""Forcing perturbations: one draw per stream position, shared by ensembles on the same streams, same bits."""

import numpy as np
from landimg import Grid
from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber, SharedDraws
from landimg.random_fields import GaussianFieldGenerator


def _grid() -> Grid:
    land = np.ones((12, 20), dtype=bool)
    land[:3, :5] = False
    return Grid.regular(lat=(30.0, 42.0), lon=(-100.0, -80.0), res=1.0, land_mask=land)


def _alone(cfg, grid, members, seed, nsteps):
    """z after each step of a perturber advanced alone (sharing nothing)."""
    p = ForcingPerturber(cfg, grid, members, seed)
    out = [p.z.copy()]
    for _ in range(nsteps):
        p.advance(3600.0)
        out.append(p.z.copy())
    return out, p.get_state()


def test_shared_draws_are_bitwise_and_drawn_once(monkeypatch):
    grid, cfg = _grid(), ForcingPerturbation(length_km=150.0)
    ref, ref_state = _alone(cfg, grid, [0, 1, 2], 7, 5)
    calls = []
    real_draw = GaussianFieldGenerator.draw

    def counting_draw(self, rngs, nfield=1):
        calls.append(len(rngs))
        return real_draw(self, rngs, nfield)

    monkeypatch.setattr(GaussianFieldGenerator, "draw", counting_draw)
    shared = SharedDraws()
    trio = [ForcingPerturber(cfg, grid, [0, 1, 2], 7, shared=shared) for _ in range(3)]
    other = ForcingPerturber(cfg, grid, [0, 1, 2], 8, shared=shared)  # another seed: never shares
    for p in trio:
        assert np.array_equal(p.z, ref[0])
    for k in range(1, 6):
        for p in trio:
            p.advance(3600.0)
            other.advance(3600.0)  # interleaved: evicts the memo between the trio's calls
            assert np.array_equal(p.z, ref[k])
    assert not np.array_equal(other.z, ref[5])
    for p in trio:
        assert repr(p.get_state()["rng"]) == repr(ref_state["rng"])
    # without the interleaved perturber, the trio draws once per step
    calls.clear()
    for p in trio:
        p.advance(3600.0)
    assert calls == [3]


def test_shared_draws_keep_member_streams_and_restarts():
    grid, cfg = _grid(), ForcingPerturbation()
    full, _ = _alone(cfg, grid, [0, 1, 2, 3], 3, 4)
    shared = SharedDraws()
    lo, hi = ForcingPerturber(cfg, grid, [0, 1], 3, shared=shared), ForcingPerturber(cfg, grid, [2, 3], 3, shared=shared)
    lo2 = ForcingPerturber(cfg, grid, [0, 1], 3, shared=shared)
    for _ in range(2):
        for p in (lo, hi, lo2):
            p.advance(3600.0)
    saved = lo.get_state()
    for _ in range(2):
        for p in (lo, hi, lo2):
            p.advance(3600.0)
    assert np.array_equal(np.concatenate([lo.z, hi.z]), full[4])  # member i's stream whatever the split
    assert np.array_equal(lo2.z, lo.z)
    restarted = ForcingPerturber(cfg, grid, [0, 1], 3)
    restarted.set_state(saved)
    for _ in range(2):
        restarted.advance(3600.0)
    assert np.array_equal(restarted.z, lo.z)


def test_shared_step_only_from_the_same_fields_and_bits():
    """The AR step is shared only by a perturber whose fields hold the same bits before it (and the same draw):
    one whose state was set to other fields steps its own."""
    grid, cfg = _grid(), ForcingPerturbation(length_km=150.0)
    shared = SharedDraws()
    a, b, c = (ForcingPerturber(cfg, grid, [0, 1], 7, shared=shared) for _ in range(3))
    state = b.get_state()
    state["z"] = state["z"].copy()
    state["z"][0, 0, 0] = -0.0 if state["z"][0, 0, 0] == 0.0 else 0.0  # one value changed (or its zero's sign)
    b.set_state(state)
    z_b = b.z.copy()
    a.advance(3600.0)
    c.advance(3600.0)  # the same fields and draw as a: a's result, shared
    assert c.z is a.z and not c.z.flags.writeable
    b.advance(3600.0)  # the same draw (same streams), other fields before: its own step
    phi = np.full((b.z.shape[1], 1), np.exp(-1.0 / cfg.tau_hours))
    fields = shared.draw[2]
    assert b.z is not a.z
    assert b.z.tobytes() == (phi * z_b + np.sqrt(1.0 - phi**2) * fields).tobytes()
