"""A cell atlas of an NCA: its cells as single-cell data, with the single-cell toolkit's measures.

Every living cell of a rollout is a sample: its state (RGBA + hidden channels) is its
"expression", its grid position its place in the tissue, the step its developmental time,
and the update the rule proposes for it an exact velocity (what RNA velocity estimates).

Export (``rollout_cells`` -> ``to_anndata`` -> ``write_h5ad``): an AnnData that opens in
scanpy and squidpy untouched (tests/test_atlas.py):

* ``X``: cells x channels (float32), ``var["kind"]`` "visible" (RGBA) or "hidden";
* ``layers["velocity"]``: the update vector the rule computes from the cell's state (before
  the fire mask; a firing cell moves by exactly this, scVelo's layer name);
* ``obsm["mlp_hidden"]``: the 128 MLP hidden-layer activations computed from the state
  (an ``obsm`` entry: AnnData layers must have X's 16 columns); ``obsm["spatial"]``:
  (x, y) = (column, row) of the grid;
* ``obs``: row, col, step, replicate, model, frame (one category per grid: pass it as
  squidpy's ``library_key`` so spatial graphs do not link cells of different grids),
  body_along / body_across (grid units from the body's alpha-weighted centroid, along and
  across its long axis, ``analysis.representation.axes.body_frame``).

Measures (each pure NumPy/SciPy on arrays, with a planted positive and negative control in
tests/test_atlas.py):

* ``leiden``: Leiden communities (Traag, Waltman & van Eck 2019) of the symmetric kNN graph of
  z-scored states, the scanpy recipe; ``ari``: adjusted Rand index; ``shuffle_channels``:
  the null (each channel permuted over cells independently: marginals kept, joint structure
  gone);
* ``markers``: Cohen's d of each channel, type vs rest, per replicate;
* ``grid_adjacency``, ``morans_i``, ``moran_test``: Moran's I (Moran 1950) on the rook
  adjacency of living cells (the 6 neighbours on a hex grid), permutation p-values; ``nhood_enrichment``: type-pair contact
  counts as z-scores against label permutations (squidpy's ``nhood_enrichment``);
* ``diffusion_pseudotime``: diffusion pseudotime (Haghverdi et al. 2016) from a root cell.

The optional packages (anndata, leidenalg, igraph; scanpy and squidpy to read the export)
are the ``[atlas]`` extra; ``require`` turns their absence into one line.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from nca.errors import NCAError

EXTRA = ("anndata", "leidenalg", "igraph")


def require(*names: str) -> None:
    """Import the optional packages ``names`` (default: the whole ``[atlas]`` extra) or raise
    one NCAError line naming the missing ones and the install command."""
    missing = []
    for n in names or EXTRA:
        try:
            importlib.import_module(n)
        except ImportError:
            missing.append(n)
    if missing:
        raise NCAError(f"the atlas needs the optional package(s) {', '.join(missing)}: "
                       "pip install -e '.[atlas]'")


# --------------------------------------------------------------------------- rollouts -> cells

def cell_activity(model, states: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The MLP hidden activations and the update vector the rule computes from each state.

    states: [N, H, W, C] -> (hidden [N, H, W, hidden], update [N, H, W, C]), via one recorded
    step of ``nca.grow`` (the run_with_cache style rollout: no model internals). Neither
    depends on the fire mask (the update is recorded before it)."""
    import jax

    import nca
    from nca.model import to_device

    states = np.asarray(states, np.float32)
    hid, upd = [], []
    for i in range(0, len(states), batch):
        chunk = states[i:i + batch]
        pad = batch - len(chunk) if len(states) > batch else 0  # one program for every chunk
        x = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.float32)]) if pad else chunk
        _, tr = nca.grow(model, 1, jax.random.key(0), x0=to_device(x), record=("hidden", "update"))
        hid.append(np.asarray(tr.hidden[0])[:len(chunk)])
        upd.append(np.asarray(tr.update[0])[:len(chunk)])
    return np.concatenate(hid), np.concatenate(upd)


def body_coords(alpha: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float = 0.1,
                cfg=None) -> np.ndarray:
    """(along, across) of cells in the body's own frame: cell spacings from the alpha-weighted
    centroid, along the long axis and 90 degrees counter-clockwise from it
    (``analysis.representation.axes.body_frame``; the axis has no head: its sign is a convention).
    Positions are ``analysis.rollouts.cell_positions`` of the model's grid (cfg None: square),
    so a hex-grid body is measured in its own geometry, not on the sheared axial array.
    alpha: [H, W]; rows, cols: [n] -> [n, 2]."""
    from analysis.representation.axes import body_frame, direction_vector, points_frame, view_coords

    if cfg is None or cfg.topology != "hex":
        f = body_frame(alpha, threshold)
        uv = view_coords(rows, cols) - np.array([f.centroid_rc[1], -f.centroid_rc[0]])
        d = direction_vector(f.axis_deg)
        return np.stack([uv @ d, uv @ np.array([-d[1], d[0]])], axis=1)
    from analysis.rollouts import cell_positions

    def view(r, c):  # (u, v) = (x, -y): image view, y up, as view_coords
        xy = cell_positions(r, c, cfg)
        return np.stack([xy[:, 0], -xy[:, 1]], axis=1)

    a = np.asarray(alpha, np.float64)
    ar, ac = np.nonzero(a > threshold)
    if len(ar) == 0:
        raise NCAError("no alive cells: the body frame is undefined")
    centre, axis, _ = points_frame(view(ar, ac), np.clip(a[ar, ac], 0.0, 1.0))
    d = direction_vector(axis)
    uv = view(rows, cols) - centre
    return np.stack([uv @ d, uv @ np.array([-d[1], d[0]])], axis=1)


def rollout_cells(model, states: np.ndarray, steps, threshold: float | None = None,
                  activity: bool = True) -> dict:
    """The living cells of recorded grids as a table.

    states: [T, B, H, W, C] (``analysis.rollouts.grow_states``: frame i at step ``steps[i]``,
    B replicates). -> {"X": [n, C], "hidden": [n, hidden] (if activity), "velocity": [n, C]
    (if activity), "row", "col", "step", "replicate", "body": [n, 2]} (numpy, n = living
    cells over every frame). Raises NCAError when no cell lives in any frame."""
    cfg = model.model_config
    thr = cfg.alive_threshold if threshold is None else threshold
    states = np.asarray(states, np.float32)
    T, B, H, W, C = states.shape
    alive = states[..., 3] > thr
    if not alive.any():
        raise NCAError(f"{model.name} has no living cells in any recorded step: nothing to export")
    t_idx, b_idx, rows, cols = np.nonzero(alive)
    from analysis.rollouts import cell_positions

    out = {"X": states[alive], "row": rows, "col": cols, "step": np.asarray(steps)[t_idx], "replicate": b_idx,
           "xy": cell_positions(rows, cols, cfg), "topology": cfg.topology}
    body = np.full((len(rows), 2), np.nan)
    for t in range(T):
        for b in range(B):
            sel = (t_idx == t) & (b_idx == b)
            if sel.sum() >= 2:
                body[sel] = body_coords(states[t, b, ..., 3], rows[sel], cols[sel], thr, cfg)
    out["body"] = body
    if activity:
        hid, upd = cell_activity(model, states.reshape((T * B, H, W, C)))
        hid, upd = hid.reshape((T, B, H, W, -1)), upd.reshape((T, B, H, W, C))
        out["hidden"], out["velocity"] = hid[alive], upd[alive]
    return out


def channel_names(channels: int) -> list[str]:
    return ["R", "G", "B", "A"] + [f"h{i}" for i in range(channels - 4)]


def to_anndata(cells: dict, model_name: str, meta: dict | None = None):
    """An AnnData of ``rollout_cells``' table (the layout in the module docstring)."""
    require("anndata")
    import anndata as ad
    import pandas as pd

    X = np.asarray(cells["X"], np.float32)
    names = channel_names(X.shape[1])
    var = pd.DataFrame({"kind": pd.Categorical(["visible"] * 4 + ["hidden"] * (len(names) - 4))},
                       index=pd.Index(names, name="channel"))
    step = np.asarray(cells["step"], int)
    rep = np.asarray(cells["replicate"], int)
    frame = np.array([f"r{r}_t{t}" for r, t in zip(rep, step)])
    obs = pd.DataFrame({
        "row": np.asarray(cells["row"], int), "col": np.asarray(cells["col"], int), "step": step,
        "replicate": pd.Categorical(rep.astype(str)), "model": pd.Categorical([model_name] * len(X)),
        "frame": pd.Categorical(frame, categories=list(dict.fromkeys(frame))),
        "body_along": np.asarray(cells["body"][:, 0], np.float32),
        "body_across": np.asarray(cells["body"][:, 1], np.float32)},
        index=pd.Index([f"c{i}" for i in range(len(X))], name="cell"))
    a = ad.AnnData(X=X, obs=obs, var=var)
    xy = cells.get("xy")
    a.obsm["spatial"] = (np.asarray(xy) if xy is not None else
                         np.stack([obs["col"].to_numpy(), obs["row"].to_numpy()], 1)).astype(np.float32)
    if "velocity" in cells:
        a.layers["velocity"] = np.asarray(cells["velocity"], np.float32)
    if "hidden" in cells:
        a.obsm["mlp_hidden"] = np.asarray(cells["hidden"], np.float32)
    a.uns["nca"] = {"model": model_name, **(meta or {})}
    return a


def spatial_note(cfg) -> str:
    """What ``obsm["spatial"]`` holds for a model's grid (``analysis.rollouts.cell_positions``)."""
    if cfg.topology == "hex":
        return ("(x, y) = (col - row/2, row * sqrt(3)/2): the hex lattice point of axial cell (row, col), every "
                "neighbour at distance 1 (obs row/col are the axial indices); one grid per obs['frame']")
    return "(x, y) = (col, row) of the grid; one grid per obs['frame']"


def export(model, steps: int = 96, every: int = 8, replicates: int = 2, seed: int = 0, size: int | None = None):
    """Grow ``replicates`` fire-mask replicates of ``model`` from the seed for ``steps`` steps
    and return the living cells of every ``every``-th step (step 0 included) as an AnnData
    (``to_anndata``). Raises NCAError for a model with no living cell in any kept step."""
    import jax

    from analysis.rollouts import grow_states

    require("anndata")
    if steps % every:
        raise NCAError(f"steps ({steps}) must be a multiple of every ({every})")
    states = grow_states(model, steps, jax.random.key(seed), seeds=replicates, size=size, every=every)
    cells = rollout_cells(model, states, np.arange(0, steps + 1, every))
    meta = {"steps": steps, "every": every, "replicates": replicates, "seed": seed,
            "grid": int(states.shape[2]), "alive_threshold": float(model.model_config.alive_threshold),
            "velocity": "the update the rule computes from the cell's state, before the fire mask",
            "spatial": spatial_note(model.model_config)}
    return to_anndata(cells, model.name, meta)


def export_somatic(model, steps: int = 96, every: int = 8, replicates: int = 2, seed: int = 0,
                   mutation_rate: float = 0.05, mutation_size: float = 0.02, genome_size: int = 4,
                   size: int | None = None):
    """The living cells of ``replicates`` somatic rollouts (``nca.selfish.somatic``: heritable
    per-clone genomes, mutation at birth) as an AnnData, with each cell's clone in ``obs``:
    ``clone`` (its id), ``clone_parent`` (the clone it mutated from, -1 for the founder),
    ``clone_born`` (the step it was founded, -1 for the founder), and its genome in
    ``obsm["genome"]`` [n, genome_size]. Replicate r's rollout draws its fire masks and
    mutations from the stream ``"atlas-somatic"`` (r). No velocity or MLP layer: a cell's
    update depends on its genome, which the shared rule's one-step recording does not see.
    Raises NCAError for a model with no living cell in any kept step."""
    import jax
    import jax.numpy as jnp

    from nca.model import to_device
    from nca.rng import stream
    from nca.selfish.somatic import SomaticConfig, founders, seed_clones, somatic_rollout

    require("anndata")
    if steps % every:
        raise NCAError(f"steps ({steps}) must be a multiple of every ({every})")
    cfg = model.model_config
    scfg = SomaticConfig(genome_size=genome_size, mutation_rate=mutation_rate, mutation_size=mutation_size)
    scfg.check(cfg)
    grid = int(size or model.grid_size)
    x0, ids0 = seed_clones(grid, grid, cfg, 1)
    x0 = to_device(np.asarray(x0))
    clones0 = founders(jnp.zeros((1, genome_size)), scfg.max_clones)
    params = jax.tree_util.tree_map(jnp.asarray, model.params)
    run = jax.jit(lambda k: somatic_rollout(params, x0, ids0, clones0, k, steps, cfg, scfg, every=every,
                                            record_states=True))
    states, ids, tables = [np.asarray(x0)[None]], [np.asarray(ids0)[None]], []
    for r in range(replicates):
        _, _, cl, _, tr = run(stream(jax.random.key(seed), "atlas-somatic", r))
        states.append(np.asarray(tr.states))
        ids.append(np.asarray(tr.ids))
        tables.append(jax.tree_util.tree_map(np.asarray, cl))
    # frame 0 is the seed (the same in every replicate); then each replicate's recorded steps
    x_seed, id_seed = states[0], ids[0]
    all_states = np.stack([np.concatenate([x_seed, s]) for s in states[1:]], 1)   # [T, B, H, W, C]
    all_ids = np.stack([np.concatenate([id_seed, i]) for i in ids[1:]], 1)        # [T, B, H, W]
    cells = rollout_cells(model, all_states, np.arange(0, steps + 1, every), activity=False)
    alive = all_states[..., 3] > cfg.alive_threshold
    t_idx, b_idx = np.nonzero(alive)[:2]
    clone = all_ids[alive]
    parent = np.array([tables[b].parent[c] if c >= 0 else -1 for b, c in zip(b_idx, clone)], np.int32)
    born = np.array([tables[b].born[c] if c >= 0 else -1 for b, c in zip(b_idx, clone)], np.int32)
    genome = np.stack([tables[b].genomes[c] if c >= 0 else np.zeros(genome_size, np.float32)
                       for b, c in zip(b_idx, clone)]) if len(clone) else np.zeros((0, genome_size))
    meta = {"steps": steps, "every": every, "replicates": replicates, "seed": seed, "grid": grid,
            "alive_threshold": float(cfg.alive_threshold), "somatic": {
                "mutation_rate": mutation_rate, "mutation_size": mutation_size, "genome_size": genome_size,
                "clones_founded": [int(t.n) for t in tables], "mutations_dropped": [int(t.dropped) for t in tables]},
            "spatial": spatial_note(cfg)}
    a = to_anndata(cells, model.name, meta)
    import pandas as pd

    a.obs["clone"] = pd.Categorical(clone.astype(str))
    a.obs["clone_parent"] = parent
    a.obs["clone_born"] = born
    a.obsm["genome"] = np.asarray(genome, np.float32)
    return a


def write_h5ad(adata, path) -> None:
    """Write ``adata`` to ``path`` atomically (``nca.checkpoint.atomic_write_with``: a temporary
    file in the same folder, renamed): a failed write leaves an existing file as it was. OS
    faults are one NCAError line."""
    from nca.checkpoint import atomic_write_with

    def write(fd: int, tmp: str) -> None:
        os.close(fd)  # anndata opens the file by its name
        adata.write_h5ad(tmp)

    atomic_write_with(path, write, suffix=".h5ad")


# --------------------------------------------------------------------------- types

def zscore(X: np.ndarray, mean=None, sd=None) -> np.ndarray:
    """Columns standardised (by the given mean/sd, else X's own); constant columns become 0."""
    X = np.asarray(X, np.float64)
    m = X.mean(0) if mean is None else mean
    s = X.std(0) if sd is None else sd
    return (X - m) / np.where(s > 1e-12, s, 1.0)


def knn_edges(Z: np.ndarray, k: int) -> np.ndarray:
    """Undirected edges [m, 2] (i < j, unique) of the symmetric kNN graph of rows of Z."""
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    k = min(k, n - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    i = np.repeat(np.arange(n), k)
    j = idx[:, 1:].ravel()
    e = np.sort(np.stack([i, j], 1), axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0)


def leiden(Z: np.ndarray, k: int = 15, resolution: float = 1.0, seed: int = 0,
           clusters: int | None = None) -> tuple[np.ndarray, float]:
    """Leiden types of the rows of Z (already standardised) on their symmetric kNN graph.

    resolution: of the RB configuration model (scanpy's default 1; 2 Leiden iterations, scanpy's
    igraph default); clusters: if given, the
    resolution is bisected (20 halvings over [0.005, 20]) to reach that many types, or the
    nearest count found. -> (labels [n] int, ordered by size, largest 0; modularity of the
    partition at resolution 1). Raises NCAError for fewer than 3 cells or more clusters
    than cells."""
    require("leidenalg", "igraph")
    import igraph as ig
    import leidenalg

    n = len(Z)
    if clusters is not None and clusters > n:
        raise NCAError(f"{clusters} clusters requested but there are only {n} cells")
    if clusters is not None and clusters < 1:
        raise NCAError(f"clusters must be >= 1, got {clusters}")
    if n < 3:
        raise NCAError(f"{n} cells: too few to cluster (need at least 3)")
    g = ig.Graph(n=n, edges=knn_edges(Z, k).tolist())

    def part(res):
        p = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, resolution_parameter=res,
                                     seed=seed, n_iterations=2)
        return np.asarray(p.membership)

    if clusters is None:
        lab = part(resolution)
    else:
        lo, hi, best = 0.005, 20.0, None
        for _ in range(20):
            mid = float(np.sqrt(lo * hi))
            lab = part(mid)
            m = lab.max() + 1
            if best is None or abs(m - clusters) < abs(best.max() + 1 - clusters):
                best = lab
            if m == clusters:
                break
            lo, hi = (mid, hi) if m < clusters else (lo, mid)
        lab = best
    # relabel by size (largest type 0), so labels are comparable between runs
    sizes = np.bincount(lab)
    order = np.argsort(-sizes, kind="stable")
    lab = np.argsort(order)[lab]
    return lab, float(g.modularity(lab.tolist()))


def ari(a, b) -> float:
    """Adjusted Rand index of two labelings of the same cells (1 = same partition, ~0 = chance)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(a), np.asarray(b)))


def positional_ari(lab_a, rc_a, lab_b, rc_b) -> tuple[float, int]:
    """ARI of two type maps over the grid positions living in both. lab_*: [n]; rc_*: [n, 2]
    (row, col). -> (ARI, number of shared positions); NaN with fewer than 2 shared."""
    ka = {(int(r), int(c)): i for i, (r, c) in enumerate(rc_a)}
    pairs = [(ka[(int(r), int(c))], j) for j, (r, c) in enumerate(rc_b) if (int(r), int(c)) in ka]
    if len(pairs) < 2:
        return float("nan"), len(pairs)
    ia, ib = np.array(pairs).T
    return ari(np.asarray(lab_a)[ia], np.asarray(lab_b)[ib]), len(pairs)


def shuffle_channels(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The null: every column permuted over the rows independently (marginals kept, the joint
    structure and the spatial arrangement destroyed)."""
    X = np.asarray(X)
    return np.stack([X[rng.permutation(len(X)), j] for j in range(X.shape[1])], 1)


def cohens_d(x: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Cohen's d of each column, cells ``inside`` vs the rest (pooled sd). x: [n, m] -> [m];
    NaN when either group has fewer than 2 cells."""
    a, b = x[inside], x[~inside]
    if len(a) < 2 or len(b) < 2:
        return np.full(x.shape[1], np.nan)
    sp = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (len(a) + len(b) - 2))
    return (a.mean(0) - b.mean(0)) / np.where(sp > 1e-12, sp, np.nan)


def markers(X: np.ndarray, labels: np.ndarray, groups: np.ndarray, names: list[str], top: int = 3) -> list[dict]:
    """Marker channels per type: Cohen's d (type vs rest) within each group (replicate), then
    mean and t interval over the groups (``analysis.stats.mean_ci``; n = groups with both).

    -> per type {"type", "cells", "d": {channel: mean_ci}, "top": the ``top`` channels by |mean d|}."""
    from analysis.stats import mean_ci

    out = []
    for t in range(int(labels.max()) + 1):
        per = np.array([cohens_d(X[groups == g], labels[groups == g] == t) for g in np.unique(groups)])
        d = {nm: mean_ci(per[:, j]) for j, nm in enumerate(names)}
        score = np.array([abs(d[nm]["mean"]) if d[nm]["mean"] is not None else -1 for nm in names])
        out.append({"type": t, "cells": int((labels == t).sum()), "d": d,
                    "top": [names[j] for j in np.argsort(-score)[:top]]})
    return out


# --------------------------------------------------------------------------- space

def grid_adjacency(rows, cols, topology: str = "square"):
    """Adjacency of cells at grid positions: scipy CSR [n, n], 0/1, symmetric. Square grid:
    rook (4 neighbours); hex grid (axial coordinates, ``nca.model.HEX_NEIGHBOURS``): the 6."""
    from scipy import sparse

    rows, cols = np.asarray(rows, int), np.asarray(cols, int)
    where = {(r, c): i for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))}
    i, j = [], []
    forward = ((0, 1), (1, 0), (1, 1)) if topology == "hex" else ((0, 1), (1, 0))  # each pair once
    for a, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        for dr, dc in forward:
            b = where.get((r + dr, c + dc))
            if b is not None:
                i += [a, b]
                j += [b, a]
    n = len(rows)
    return sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))


def morans_i(values: np.ndarray, W) -> np.ndarray:
    """Moran's I of each column of values [n, m] (or [n]) on the weights W [n, n]:
    I = n / S0 * z'Wz / z'z, z centred; NaN for a constant column. -> [m] (or scalar)."""
    v = np.asarray(values, np.float64)
    one = v.ndim == 1
    v = v[:, None] if one else v
    z = v - v.mean(0)
    s0 = W.sum()
    num = np.einsum("ij,ij->j", z, W @ z)
    den = np.einsum("ij,ij->j", z, z)
    out = np.where(den > 1e-12, len(z) / s0 * num / np.where(den > 1e-12, den, 1.0), np.nan)
    return out[0] if one else out


def moran_test(values: np.ndarray, W, permutations: int, rng: np.random.Generator) -> dict:
    """Moran's I of each column with a one-sided permutation p-value (values permuted over the
    cells: p = (1 + #{I_perm >= I}) / (1 + permutations)) and the Holm-adjusted p.
    -> {"I": [m], "p": [m], "p_holm": [m], "null_mean": [m], "null_sd": [m]}."""
    from analysis.representation.axis_null import holm

    v = np.asarray(values, np.float64)
    obs = morans_i(v, W)
    null = np.empty((permutations, v.shape[1]))
    for r in range(permutations):
        null[r] = morans_i(v[rng.permutation(len(v))], W)
    p = (1 + (null >= obs[None]).sum(0)) / (1 + permutations)
    p = np.where(np.isfinite(obs), p, np.nan)
    ok = np.isfinite(p)
    ph = np.full_like(p, np.nan)
    ph[ok] = holm(p[ok])
    return {"I": obs, "p": p, "p_holm": ph, "null_mean": null.mean(0), "null_sd": null.std(0)}


def nhood_enrichment(labels: np.ndarray, W, permutations: int, rng: np.random.Generator) -> dict:
    """Contacts between types against label permutations (squidpy's ``nhood_enrichment``).

    counts[a, b]: edges of W between a cell of type a and one of type b; z = (counts - null
    mean) / null sd over ``permutations`` shuffles of the labels over the cells.
    -> {"counts": [K, K], "z": [K, K]}."""
    lab = np.asarray(labels, int)
    K = int(lab.max()) + 1

    def count(l):
        O = np.eye(K)[l]
        return O.T @ (W @ O)

    obs = count(lab)
    null = np.array([count(lab[rng.permutation(len(lab))]) for _ in range(permutations)])
    sd = null.std(0)
    return {"counts": obs, "z": (obs - null.mean(0)) / np.where(sd > 1e-12, sd, np.nan)}


# --------------------------------------------------------------------------- time

def diffusion_pseudotime(Z: np.ndarray, root: int, k: int = 15, n_comps: int = 15) -> np.ndarray:
    """Diffusion pseudotime (Haghverdi, Buettner, Wolf, Theis & Theis 2016) of the rows of Z
    from the ``root`` row: the scanpy recipe (kNN Gaussian kernel with adaptive widths,
    density normalisation, the symmetric diffusion operator's top ``n_comps`` eigenpairs,
    the first dropped), DPT = ||sum_l lambda_l / (1 - lambda_l) (psi_l(x) - psi_l(root))||.
    -> [n], scaled to [0, 1] over the cells connected to the root (NaN elsewhere)."""
    from scipy import sparse
    from scipy.sparse import csgraph
    from scipy.sparse.linalg import eigsh
    from sklearn.neighbors import NearestNeighbors

    Z = np.asarray(Z, np.float64)
    n = len(Z)
    k = min(k, n - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    sigma = np.maximum(dist[:, -1] / 2, 1e-12)  # scanpy: half the distance to the k-th neighbour
    i = np.repeat(np.arange(n), k)
    j = idx[:, 1:].ravel()
    d2 = dist[:, 1:].ravel() ** 2
    si, sj = sigma[i], sigma[j]
    w = np.sqrt(2 * si * sj / (si ** 2 + sj ** 2)) * np.exp(-d2 / (si ** 2 + sj ** 2))
    K = sparse.csr_matrix((w, (i, j)), shape=(n, n))
    K = K.maximum(K.T)
    K = K + sparse.identity(n)
    q = np.asarray(K.sum(1)).ravel()
    K = sparse.diags(1 / q) @ K @ sparse.diags(1 / q)  # density normalisation (alpha = 1)
    z = np.asarray(K.sum(1)).ravel()
    T = sparse.diags(1 / np.sqrt(z)) @ K @ sparse.diags(1 / np.sqrt(z))
    m = min(n_comps, n - 2)
    lam, psi = eigsh(T, k=m, which="LA", v0=np.ones(n) / np.sqrt(n))
    order = np.argsort(-lam)
    lam, psi = lam[order], psi[:, order]
    lam, psi = lam[1:], psi[:, 1:]
    keep = lam < 1 - 1e-9
    coef = lam[keep] / (1 - lam[keep])
    emb = psi[:, keep] * coef
    dpt = np.linalg.norm(emb - emb[root], axis=1)
    _, comp = csgraph.connected_components(K, directed=False)
    dpt = np.where(comp == comp[root], dpt, np.nan)
    top = np.nanmax(dpt)
    return dpt / top if top > 0 else dpt


def born_parents(rc_prev: np.ndarray, rc_new: np.ndarray) -> np.ndarray:
    """For each newly living cell [m, 2], the index of the nearest cell (Euclidean) among the
    previous frame's living cells [n, 2]: its likely parent (a dead cell comes alive next to a
    living one). Positions: (row, col), or ``analysis.rollouts.cell_positions`` (the hex
    grid's lattice points). -> [m] int."""
    from scipy.spatial import cKDTree

    return cKDTree(np.asarray(rc_prev, float)).query(np.asarray(rc_new, float))[1]
