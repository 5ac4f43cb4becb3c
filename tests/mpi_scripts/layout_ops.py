"""Every reduction, gather, scatter and transposition of landimg.layout.Layout on every G x K of P ranks.

Usage: mpirun -n P python -m mpi4py layout_ops.py
Each rank checks its results against what one rank computes from the whole arrays (bitwise), for
every factorisation P = G x K, with 7, 5 and 2 members (groups beyond the members hold none: P > nmem),
29 columns (one per chunk) and 300 columns (chunks of 5). Prints "layout ops OK <P>" on rank 0.
"""

import itertools

import numpy as np
from landimg.layout import Layout, chunked_sum, column_chunks, halo_columns
from landimg.parallel import default_comm

comm = default_comm()
P, rank = comm.Get_size(), comm.Get_rank()
NLEV = 3


def whole(nmem: int, ncol: int, seed: int) -> np.ndarray:
    """A global array (NLEV, ncol, nmem) of widely varying magnitudes (round-off shows), every rank alike."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((NLEV, ncol, nmem)) * 10.0 ** rng.integers(-6, 6, (NLEV, ncol, nmem))


def serial_member_sum(a: np.ndarray) -> np.ndarray:
    acc = np.zeros(a.shape[:-1])
    for i in range(a.shape[-1]):
        acc += a[..., i]
    return acc


def fixed_chunking(a: np.ndarray) -> np.ndarray:
    """The definition: every chunk's values summed on their own, then the chunk sums in column order."""
    b = column_chunks(a.shape[-1])
    sums = np.stack(
        [np.ascontiguousarray(a[..., i:j]).sum(axis=-1) for i, j in itertools.pairwise(b)], axis=-1
    )
    return sums.sum(axis=-1)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"rank {rank}: {what}")


def same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    check(a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{what} differs")


def run(nmem: int, ncol: int, k: int) -> None:
    lay = Layout(nmem, comm, ncol=ncol, column_blocks=k)
    g = P // k
    check((lay.member_groups, lay.column_blocks) == (g, k), "G x K")
    check(lay.rank == lay.group * k + lay.block, "rank = group K + block")
    # blocks: whole chunks, contiguous, every rank's block from the same bounds
    chunks = column_chunks(ncol)
    check(np.all(np.isin(lay.column_bounds, chunks)), "blocks made of whole chunks")
    same(np.asarray(comm.allgather(lay.column_bounds)), np.tile(lay.column_bounds, (P, 1)), "column bounds")
    full = whole(nmem, ncol, 7)
    local = lay.take(full)
    check(local.flags.f_contiguous and local.shape == (NLEV, lay.ncol_local, lay.nloc), "take")
    # members: the chain is the serial loop over members, on this block's columns
    ref = serial_member_sum(full)[:, lay.col_start : lay.col_stop]
    same(lay.ordered_sum(local, axis=2), ref, "ordered_sum")
    same(lay.ordered_sum_terms((local[..., i] for i in range(lay.nloc)), ref.shape), ref, "ordered_sum_terms")
    mu, var = lay.mean_var(local, axis=2)
    same(mu, ref / nmem, "mean")
    dev = full - (serial_member_sum(full) / nmem)[..., None]
    same(var, serial_member_sum(dev**2)[:, lay.col_start : lay.col_stop] / (nmem - 1), "variance")
    gathered = lay.allgather_members(np.moveaxis(local, 2, 0))
    same(
        gathered,
        np.ascontiguousarray(np.moveaxis(full[:, lay.col_start : lay.col_stop], 2, 0)),
        "allgather_members",
    )
    # columns: the fixed chunking, whatever the blocks
    per_col = full[0, :, 0]
    same(chunked_sum(per_col), fixed_chunking(per_col), "chunked_sum")
    same(lay.column_sum(per_col[lay.col_start : lay.col_stop]), fixed_chunking(per_col), "column_sum")
    same(
        lay.column_sum(full[:, lay.col_start : lay.col_stop, 0]),
        fixed_chunking(full[:, :, 0]),
        "column_sum (lead)",
    )
    same(lay.domain_sum(local), fixed_chunking(serial_member_sum(full)), "domain_sum")
    same(lay.allgather_columns(per_col[lay.col_start : lay.col_stop]), per_col, "allgather_columns")
    check(lay.column_max(float(lay.block)) == k - 1, "column_max")
    # whole arrays: gather, allgather, scatter (every dtype)
    for arr in (full, full > 0):
        part = lay.take(arr)
        got = lay.gather(part, root=0)
        if rank == 0:
            same(got, np.asfortranarray(arr), f"gather {arr.dtype}")
            check(got.flags.f_contiguous, "gather is Fortran-ordered")
        else:
            check(got is None, "gather: None off root")
        same(lay.allgather(part), np.asfortranarray(arr), f"allgather {arr.dtype}")
        back = lay.scatter(arr if rank == 0 else None, root=0)
        same(back, part, f"scatter {arr.dtype}")
    # transpositions: to the column-complete layout (1 x P, with a halo) and the whole-member one (P x 1)
    lat, lon = 30.0 + np.arange(ncol) // 7, 1.0 * (np.arange(ncol) % 7)  # rows of 7 columns, 1 degree apart
    la, lo = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    cols = Layout(nmem, comm, ncol=ncol, column_blocks=P, weights=1.0 + (np.arange(ncol) % 3))
    held = halo_columns(cols, xyz, 250.0)  # two rows either side
    check(P == 1 or held.size > cols.ncol_local or cols.ncol_local == 0, "a halo")
    tr = lay.transposer(cols, held)
    check(np.array_equal(tr.held, held) and tr.owned.sum() == cols.ncol_local, "held / owned")
    for arr in (full, full > 0):
        fwd = tr.forward(lay.take(arr))
        same(fwd, np.asfortranarray(arr[:, held]), f"forward to columns {arr.dtype}")
        check(fwd.flags.f_contiguous, "forward is Fortran-ordered")
        # backward: only owned columns count (scribble on the halo: it must not come back)
        scribbled = np.where(tr.owned[None, :, None], fwd, ~fwd if arr.dtype == bool else -1e300)
        same(tr.backward(scribbled), lay.take(arr), f"backward from columns {arr.dtype}")
    mem = Layout(nmem, comm, ncol=ncol, column_blocks=1)
    tm = lay.transposer(mem)
    fwd = tm.forward(local)
    same(fwd, np.asfortranarray(full[..., mem.start : mem.stop]), "forward to whole members")
    same(tm.backward(fwd), local, "backward from whole members")
    check(tm.identity == (k == 1), "identity transposition when the partitions agree")
    # the whole-member layout reduces over P ranks (empty ones when P > nmem) like the serial loop
    same(mem.ordered_sum(fwd, axis=2), serial_member_sum(full), "ordered_sum on whole members")


for nmem in (7, 5, 2):
    for ncol in (29, 300):
        for k in [k for k in range(1, P + 1) if P % k == 0]:
            run(nmem, ncol, k)  # groups beyond the members (P / k > nmem) hold none
comm.Barrier()
if rank == 0:
    print(f"layout ops OK {P}", flush=True)
