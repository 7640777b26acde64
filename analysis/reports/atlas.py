"""The cell-atlas report (scripts/atlas_report.py): AtlasSettings -> run -> AtlasResult ->
write(result, out) -> summary_lines. The measures are ``analysis.representation.atlas``; every key of
report.json is documented in docs/atlas.md.

Per model:

1. grow ``replicates`` fire-mask replicates from the seed for ``steps`` steps (frames every
   ``every`` steps); the living cells of the last frame are the atlas;
2. **types**: Leiden on the pooled replicates' z-scored states (16 channels); the same
   pipeline on each replicate alone, compared between replicates by the ARI over the grid
   positions living in both; **nulls**: the same pipeline on channel-shuffled states and on
   an untrained (random) rule's grown cells, so that the number of types and their modularity
   are read against what clustering finds in structureless data;
3. **markers**: Cohen's d per channel, type vs rest, per replicate, mean and t interval;
4. **space** (replicate 0's body): Moran's I of each channel with its permutation p (Holm),
   and the enrichment of contacts between types;
5. **time**: diffusion pseudotime from the seed cell over every frame of growth, per
   replicate, against the true step (Spearman), mean and t interval over replicates;
6. **after damage**: the grown body is cut, regrows ``regrow`` steps; each cell born in
   regrowth gets its parent (the nearest living cell of the previous frame) and the type of
   both (nearest-type classifier on the atlas's z-scored states); the parent type -> child
   type table says which type derives from which.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nca.errors import NCAError, require_at_least

from analysis.representation import atlas as A


@dataclass(frozen=True)
class AtlasSettings:
    """steps: growth steps (the atlas is the last frame); every: frames kept for pseudotime
    and regrowth; replicates: fire-mask replicates (>= 2 for the stability ARI); resolution:
    Leiden resolution; neighbors: k of the kNN graphs; clusters: force this many types
    (resolution bisected) instead of the resolution; permutations: of the Moran and
    enrichment tests; null_draws: channel shuffles (the modularity's permutation p; the
    first ``FULL_NULL_DRAWS`` also give the null's replicate ARI); cut / regrow: the damage
    (``nca.damage.Cut``) and the regrowth steps (0: no damage section); max_cells: cells per
    replicate in the pseudotime (subsampled); seed; size: grid (None: the model's)."""

    steps: int = 96
    every: int = 4
    replicates: int = 3
    resolution: float = 1.0
    neighbors: int = 15
    clusters: int | None = None
    permutations: int = 999
    null_draws: int = 19
    cut: str = "left"
    regrow: int = 48
    max_cells: int = 2500
    seed: int = 0
    size: int | None = None

    def __post_init__(self):
        require_at_least(self, ("steps", "every", "replicates", "neighbors", "permutations", "null_draws",
                                "max_cells"), 1)
        if self.regrow < 0:
            raise NCAError(f"regrow must be >= 0, got {self.regrow}")
        if self.steps % self.every or self.regrow % self.every:
            raise NCAError(f"steps ({self.steps}) and regrow ({self.regrow}) must be multiples of every ({self.every})")
        if not self.resolution > 0:
            raise NCAError(f"resolution must be > 0, got {self.resolution}")
        if self.clusters is not None and self.clusters < 1:
            raise NCAError(f"clusters must be >= 1, got {self.clusters}")
        from nca.damage import CUTS

        if self.cut not in CUTS:
            raise NCAError(f"cut must be one of {', '.join(CUTS)}, got {self.cut!r}")


@dataclass(frozen=True)
class AtlasReportSettings:
    models: tuple[str, ...]
    atlas: AtlasSettings = AtlasSettings()
    command: str = ""


@dataclass(frozen=True)
class AtlasResult:
    """report: the JSON-ready dict; figures: (name, title, caption, PNG bytes)."""

    report: dict
    figures: list


FULL_NULL_DRAWS = 2  # shuffled draws run through the whole type pipeline (the rest: pooled types only)


def _types(Z, s: AtlasSettings, seed: int):
    return A.leiden(Z, s.neighbors, s.resolution, seed, s.clusters)


def _pairs_ari(labs, rcs) -> dict:
    from analysis.stats import mean_ci

    vals = [A.positional_ari(labs[i], rcs[i], labs[j], rcs[j])[0]
            for i in range(len(labs)) for j in range(i + 1, len(labs))]
    return mean_ci(vals)


def _pairs_transfer_ari(Xs, labs, k: int = 5) -> dict:
    """Pose-free stability of types between replicates: replicate i's types carried to
    replicate j through the cells' states (a k-nearest-neighbour classifier fitted on i),
    against j's own types (ARI), over every ordered pair. Xs: [n_i, C] per replicate, on one
    scale; labs: [n_i] each. Unlike the positional ARI it does not ask the bodies to lie in
    the same pose (a rotation-invariant rule's replicates do not)."""
    from sklearn.neighbors import KNeighborsClassifier

    from analysis.stats import mean_ci

    vals = [A.ari(KNeighborsClassifier(n_neighbors=min(k, len(Xs[i]))).fit(Xs[i], labs[i]).predict(Xs[j]), labs[j])
            for i in range(len(labs)) for j in range(len(labs)) if i != j]
    return mean_ci(vals)


def untrained_model(model, seed: int):
    """A random rule of the model's architecture: both layers drawn (Glorot-uniform; the
    article's untrained rule has an all-zero second layer and does nothing at all)."""
    import dataclasses

    import jax

    from nca.model import init_params

    cfg = model.model_config
    p = init_params(jax.random.key(seed), cfg)
    lim = np.sqrt(6.0 / (cfg.hidden + cfg.channels))
    w2 = np.asarray(jax.random.uniform(jax.random.key(seed + 1), p["w2"].shape, minval=-lim, maxval=lim))
    p = dict(p, w2=w2.astype(np.float32))
    return dataclasses.replace(model, name=f"untrained rule (seed {seed})", params=p)


def type_pipeline(X, rc, rep, s: AtlasSettings, seed: int) -> dict:
    """Types of pooled cells X [n, C] (rows of replicate ``rep``, positions rc [n, 2]) and of
    each replicate alone, with the between-replicate positional and transfer ARIs."""
    from analysis.stats import mean_ci

    Z = A.zscore(X)
    lab, q = _types(Z, s, seed)
    per_lab, per_q, per_n, per_rc, per_z, agree = [], [], [], [], [], []
    for b in np.unique(rep):
        m = rep == b
        lb, qb = _types(A.zscore(X[m]), s, seed)
        per_lab.append(lb)
        per_q.append(qb)
        per_n.append(lb.max() + 1)
        per_rc.append(rc[m])
        per_z.append(Z[m])
        agree.append(A.ari(lb, lab[m]))
    return {"labels": lab, "n_types": int(lab.max() + 1), "modularity": q,
            "per_replicate_types": mean_ci(per_n), "per_replicate_modularity": mean_ci(per_q),
            "replicate_ari": _pairs_ari(per_lab, per_rc), "replicate_transfer_ari": _pairs_transfer_ari(per_z, per_lab),
            "pooled_vs_alone_ari": mean_ci(agree), "_per_lab": per_lab}


def cell_ages(alive: np.ndarray, steps) -> np.ndarray:
    """Each living cell's age: steps since its position last came alive (alive continuously
    since; a cell alive in the first frame is born then). alive: [T, H, W]; steps: [T] ->
    [T, H, W] int (0 where dead). With frames every k steps the birth is known to k steps."""
    steps = np.asarray(steps)
    birth = np.zeros(alive.shape[1:], int)
    out = np.zeros(alive.shape, int)
    for f in range(len(alive)):
        new = alive[f] & (~alive[f - 1] if f else True)
        birth = np.where(new, steps[f], birth)
        out[f] = np.where(alive[f], steps[f] - birth, 0)
    return out


def run_model(model, s: AtlasSettings, progress=None) -> dict:
    """Every atlas measure of one loaded model. Raises NCAError when no cell lives after
    ``steps`` steps, or when fewer cells live than the kNN graph needs."""
    from analysis.representation.axes import spearman
    from analysis.rollouts import grow_states
    from analysis.stats import mean_ci

    import jax

    say = progress or (lambda line: None)
    cfg = model.model_config
    grid = s.size or model.grid_size
    key = jax.random.key(s.seed)
    states = grow_states(model, s.steps, key, seeds=s.replicates, size=grid, every=s.every)  # [T, B, H, W, C]
    steps = np.arange(0, s.steps + 1, s.every)
    last = states[-1]
    alive = last[..., 3] > cfg.alive_threshold
    n_alive = int(alive.sum())
    if n_alive == 0:
        raise NCAError(f"{model.name} has no living cells after {s.steps} steps: there is nothing to type")
    if alive.sum((1, 2)).min() <= s.neighbors:
        raise NCAError(f"{model.name}: {int(alive.sum((1, 2)).min())} living cells in a replicate after {s.steps} "
                       f"steps, too few for a {s.neighbors}-neighbour graph")
    if s.clusters is not None and s.clusters > n_alive:
        raise NCAError(f"{s.clusters} clusters requested but {model.name} has only {n_alive} living cells")
    b_idx, rows, cols = np.nonzero(alive)
    X = last[alive]
    rc = np.stack([rows, cols], 1)
    names = A.channel_names(cfg.channels)
    say(f"{model.name}: {n_alive} living cells in {s.replicates} replicates after {s.steps} steps")

    # -- types, and the nulls
    ty = type_pipeline(X, rc, b_idx, s, s.seed)
    lab = ty.pop("labels")
    per_lab = ty.pop("_per_lab")
    rng = np.random.default_rng(s.seed)
    shuf_n, shuf_q, shuf_ari, shuf_tari = [], [], [], []
    for d in range(s.null_draws):
        Xs = np.concatenate([A.shuffle_channels(X[b_idx == b], rng) for b in range(s.replicates)])
        if d < FULL_NULL_DRAWS:  # the whole pipeline (types of each replicate alone, their ARI)
            full = type_pipeline(Xs, rc, b_idx, s, s.seed)
            shuf_n.append(full["n_types"])
            shuf_q.append(full["modularity"])
            shuf_ari.append(full["replicate_ari"]["mean"])
            shuf_tari.append(full["replicate_transfer_ari"]["mean"])
        else:  # the pooled types only: enough for the modularity's p
            lab_s, q_s = _types(A.zscore(Xs), s, s.seed)
            shuf_n.append(int(lab_s.max() + 1))
            shuf_q.append(q_s)
    p_q = (1 + sum(q >= ty["modularity"] for q in shuf_q)) / (1 + s.null_draws)
    null_shuffle = {"n_types": mean_ci(shuf_n), "n_types_max": int(max(shuf_n)), "modularity": mean_ci(shuf_q),
                    "replicate_ari": mean_ci(shuf_ari), "replicate_transfer_ari": mean_ci(shuf_tari),
                    "draws": s.null_draws, "full_draws": len(shuf_ari)}
    un = untrained_model(model, s.seed)
    ust = grow_states(un, s.steps, key, seeds=s.replicates, size=grid, every=s.steps)[-1]
    ualive = ust[..., 3] > cfg.alive_threshold
    if ualive.sum((1, 2)).min() > s.neighbors:
        ub, ur, uc = np.nonzero(ualive)
        u = type_pipeline(ust[ualive], np.stack([ur, uc], 1), ub, s, s.seed)
        u.pop("labels"), u.pop("_per_lab")
        null_untrained = {"cells": int(ualive.sum()), **u}
    else:
        null_untrained = {"cells": int(ualive.sum()), "reason": "too few living cells for the kNN graph"}
    ty["modularity_p"] = p_q
    ty["beyond_null"] = bool(p_q <= 0.05)  # with 19 draws: above every one
    sd_q = float(np.std(shuf_q, ddof=1)) if len(shuf_q) > 1 else float("nan")
    ty["modularity_z"] = float((ty["modularity"] - np.mean(shuf_q)) / sd_q) if sd_q > 0 else None
    say(f"{model.name}: {ty['n_types']} types (shuffled channels: {null_shuffle['n_types']['mean']:.1f})")

    # -- markers
    mk = A.markers(X, lab, b_idx, names)

    # -- space: replicate 0's body
    m0 = b_idx == 0
    W = A.grid_adjacency(rows[m0], cols[m0], model.model_config.topology)
    moran = A.moran_test(X[m0], W, s.permutations, np.random.default_rng(s.seed + 1))
    nh = A.nhood_enrichment(lab[m0], W, s.permutations, np.random.default_rng(s.seed + 2))

    # -- time: diffusion pseudotime from the seed cell, per replicate
    rhos, rho_age, pt_example = [], [], None
    for b in range(s.replicates):
        al = states[:, b, ..., 3] > cfg.alive_threshold  # [T, H, W]
        t_i, r_i, c_i = np.nonzero(al)
        Xt = states[:, b][al]
        st = steps[t_i]
        age = cell_ages(al, steps)[al]
        root = int(np.flatnonzero(st == 0)[0]) if (st == 0).any() else int(np.argmin(st))
        sub = np.random.default_rng(s.seed + 10 + b)
        keep = np.arange(len(Xt))
        if len(keep) > s.max_cells:
            keep = np.union1d(sub.choice(len(Xt), s.max_cells - 1, replace=False), [root])
        root_k = int(np.flatnonzero(keep == root)[0])
        Zt = A.zscore(Xt[keep])
        dpt = A.diffusion_pseudotime(Zt, root_k, s.neighbors)
        ok = np.isfinite(dpt)
        rhos.append(spearman(dpt[ok], st[keep][ok]))
        rho_age.append(spearman(dpt[ok], age[keep][ok]))
        if b == 0:
            pt_example = (st[keep][ok], dpt[ok])
    pseudotime = {"spearman": mean_ci(rhos), "per_replicate": rhos, "spearman_age": mean_ci(rho_age),
                  "per_replicate_age": rho_age, "cells_per_replicate": s.max_cells}
    say(f"{model.name}: pseudotime vs step Spearman {np.mean(rhos):.2f}, vs cell age {np.mean(rho_age):.2f}")

    # -- after damage
    derivation = None
    if s.regrow:
        derivation = _derivation(model, s, last, X, lab, key, grid)

    res = {"model": model.name, "grid": grid, "cells": n_alive, "cells_per_replicate": alive.sum((1, 2)).tolist(),
           "types": ty, "null_shuffled": null_shuffle, "null_untrained": null_untrained,
           "markers": mk, "moran": {"channels": names, **moran},
           "nhood_enrichment": nh, "pseudotime": pseudotime, "derivation": derivation}
    res["_plot"] = {"states": last, "alive": alive, "rows": rows, "cols": cols, "b": b_idx, "labels": lab,
                    "per_lab": per_lab, "pt": pt_example}
    return res


def _derivation(model, s: AtlasSettings, last, X, lab, key, grid) -> dict:
    """Cut the grown bodies, regrow, and tabulate parent type -> child type of the cells born."""
    from sklearn.neighbors import KNeighborsClassifier

    from nca.damage import Cut

    from analysis.rollouts import cell_positions, grow_states

    cfg = model.model_config
    mean, sd = X.mean(0), X.std(0)
    clf = KNeighborsClassifier(n_neighbors=5).fit(A.zscore(X, mean, sd), lab)
    cut = Cut(s.steps, s.cut).mask(grid, grid)
    x0 = last * (~cut)[None, ..., None]
    frames = grow_states(model, s.regrow, key, size=grid, x0=x0, t0=s.steps, every=s.every)  # [F, B, H, W, C]
    K = int(lab.max()) + 1
    table = np.zeros((K, K), int)
    kept = np.zeros((K, K), int)
    for b in range(frames.shape[1]):
        prev = None
        for f in range(frames.shape[0]):
            al = frames[f, b, ..., 3] > cfg.alive_threshold
            r, c = np.nonzero(al)
            if not len(r):
                prev = None
                continue
            types = clf.predict(A.zscore(frames[f, b][al], mean, sd))
            cur = {"rc": np.stack([r, c], 1), "xy": cell_positions(r, c, cfg), "types": types, "alive": al}
            if prev is not None:
                born = ~prev["alive"][r, c]
                if born.any():
                    par = A.born_parents(prev["xy"], cur["xy"][born])  # nearest in the grid's own geometry
                    np.add.at(table, (prev["types"][par], types[born]), 1)
            if f == 0:
                start = cur
            prev = cur
        # survivors: type just after the cut vs at the end of regrowth
        if prev is not None and len(start["rc"]):
            both = prev["alive"][start["rc"][:, 0], start["rc"][:, 1]]
            end_idx = {tuple(x): i for i, x in enumerate(prev["rc"].tolist())}
            for i in np.flatnonzero(both):
                j = end_idx[tuple(start["rc"][i].tolist())]
                kept[start["types"][i], prev["types"][j]] += 1
    born_n = int(table.sum())
    frac = table / np.maximum(table.sum(1, keepdims=True), 1)
    return {"cut": s.cut, "regrow": s.regrow, "born": born_n, "parent_to_child": table.tolist(),
            "parent_to_child_fraction": frac.tolist(),
            "same_type_as_parent": float(np.trace(table) / born_n) if born_n else None,
            # the same rate if a child's type were drawn independently of its parent's (the margins kept)
            "same_type_chance": float(table.sum(1) @ table.sum(0) / born_n ** 2) if born_n else None,
            "survivor_kept_type": float(np.trace(kept) / kept.sum()) if kept.sum() else None,
            "survivor_table": kept.tolist()}


HEX_ATLAS_GEOMETRY = ("hex grid: cell positions (obsm spatial, body frame, parents after the cut) are the lattice "
                      "points (analysis.rollouts.cell_positions), Moran's I and the neighbourhood enrichment use the "
                      "6 hex neighbours; the regrowth cut removes half of the axial array (a sheared half)")


def conventions(s: AtlasSettings) -> dict:
    return {
        "cells": f"living cells (alpha > the model's alive threshold) after {s.steps} steps, {s.replicates} "
                 "fire-mask replicates pooled",
        "types": f"Leiden (RB configuration, resolution {s.resolution}"
                 + (f", bisected to {s.clusters} types" if s.clusters else "")
                 + f") on the symmetric {s.neighbors}-NN graph of the z-scored states (every channel); "
                 "modularity at resolution 1",
        "replicate_ari": "each replicate clustered alone; ARI between two replicates' types over the grid "
                         "positions living in both; mean and t interval over the pairs (asks the bodies to lie in "
                         "the same pose)",
        "replicate_transfer_ari": "pose-free: replicate i's types carried to replicate j through the states "
                                  "(5-NN classifier on the pooled z-scores) against j's own types, ARI; mean and "
                                  "t interval over the ordered pairs",
        "null_shuffled": f"the same pipeline after permuting each channel over the cells of each replicate "
                         f"independently ({s.null_draws} draws; replicate ARI from the first {FULL_NULL_DRAWS}); "
                         "modularity_p = (1 + #draws with modularity >= the real one) / (1 + draws); "
                         "beyond_null: modularity_p <= 0.05; modularity_z: (real - mean of the draws) / their sd",
        "null_untrained": "the same pipeline on a random rule of the same architecture (both layers "
                          "Glorot-uniform) grown the same way",
        "markers": "Cohen's d (pooled sd) of each channel, type vs the other cells, per replicate; mean and t "
                   "interval over replicates",
        "moran": f"Moran's I on the rook adjacency of replicate 0's living cells; one-sided permutation p "
                 f"({s.permutations} permutations), Holm over channels",
        "nhood_enrichment": f"contacts between types (rook adjacency, replicate 0) as z against {s.permutations} "
                            "label permutations",
        "pseudotime": f"diffusion pseudotime (Haghverdi et al. 2016) from the seed cell over the living cells of "
                      f"every {s.every}-th step 0..{s.steps} (subsampled to {s.max_cells} per replicate), "
                      "Spearman with the true step (organism time) and with the cell's age (steps since its "
                      "position came alive, known to the frame spacing) per replicate; mean and t interval over "
                      "replicates",
        "derivation": f"cut {s.cut}, {s.regrow} steps of regrowth (frames every {s.every}); a cell born between "
                      "two frames takes as parent the nearest living cell of the earlier frame; types by a "
                      "5-NN classifier on the atlas's z-scored states; parent_to_child[a][b] counts born cells",
    }


def run(settings: AtlasReportSettings, progress=None, models=None) -> AtlasResult:
    """Measure every model; across models (same grid), the positional ARI of their types."""
    import nca

    from analysis.rollouts import geometry_caveat

    t0 = time.time()
    if not settings.models and not models:
        raise NCAError("no model given")
    A.require("leidenalg", "igraph")
    s = settings.atlas
    models = models or [nca.load_model(m) for m in settings.models]
    res = [run_model(m, s, progress) for m in models]
    rep = {"models": [r["model"] for r in res], "command": settings.command,
           "settings": dict(s.__dict__),
           "conventions": {**conventions(s), **geometry_caveat(models, HEX_ATLAS_GEOMETRY)},
           "results": [{k: v for k, v in r.items() if k != "_plot"} for r in res]}
    if len(res) > 1:
        from analysis.stats import mean_ci

        vals = []
        for i in range(len(res)):
            for j in range(i + 1, len(res)):
                pi, pj = res[i]["_plot"], res[j]["_plot"]
                if res[i]["grid"] == res[j]["grid"]:
                    mi, mj = pi["b"] == 0, pj["b"] == 0
                    vals.append(A.positional_ari(pi["labels"][mi], np.stack([pi["rows"], pi["cols"]], 1)[mi],
                                                 pj["labels"][mj], np.stack([pj["rows"], pj["cols"]], 1)[mj])[0])
        rep["across_models"] = {"positional_ari": mean_ci(vals), "pairs": vals}
    from analysis.plots import png_bytes

    figs = [(n, t, cap, png_bytes(f)) for n, t, cap, f in figures(res, s)]
    rep["timing_s"] = time.time() - t0
    return AtlasResult(rep, figs)


def run_with_progress(settings: AtlasReportSettings, quiet: bool = False, models=None) -> AtlasResult:
    """``run`` with a progress line per stage on stderr (none with quiet): the report
    contract's entry point for scripts (analysis.reports.html.run_report)."""
    import sys

    return run(settings, None if quiet else (lambda line: print(line, file=sys.stderr, flush=True)), models)


def figures(res: list[dict], s: AtlasSettings) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    cmap = plt.get_cmap("tab20")
    for r in res:
        p = r["_plot"]
        slug = r["model"].replace("/", "_").replace(":", "_")
        H = W = r["grid"]
        B = len(p["per_lab"])
        fig, axes = plt.subplots(1, B + 1, figsize=(3.2 * (B + 1), 3.4), squeeze=False)
        for k in range(B + 1):
            ax = axes[0, k]
            img = np.full((H, W, 4), 1.0)
            m = p["b"] == (0 if k == 0 else k - 1)
            lab = p["labels"][m] if k == 0 else p["per_lab"][k - 1]
            img[p["rows"][m], p["cols"][m]] = cmap(lab % 20)
            ax.imshow(img, interpolation="nearest")
            ax.set_title("pooled types (rep. 0)" if k == 0 else f"rep. {k - 1} alone", fontsize=9)
            ax.axis("off")
        out.append((f"types_{slug}", f"Cell types on the body: {r['model']}",
                    f"Leiden types of the living cells after {s.steps} steps. Left: the types of the pooled "
                    f"replicates on replicate 0's body; then each replicate clustered alone (colours are "
                    f"ordered by size within each panel). Replicate ARI "
                    f"{_fmt(r['types']['replicate_ari'])}.", fig))
        mk = r["markers"]
        names = r["moran"]["channels"]
        D = np.array([[np.nan if t["d"][n]["mean"] is None else t["d"][n]["mean"] for n in names] for t in mk])
        fig2, ax = plt.subplots(1, 2, figsize=(12, 0.4 * len(mk) + 2.5))
        lim = np.nanmax(np.abs(D)) if np.isfinite(D).any() else 1
        im = ax[0].imshow(D, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax[0].set_xticks(range(len(names)), names, fontsize=8)
        ax[0].set_yticks(range(len(mk)), [f"type {t['type']} ({t['cells']})" for t in mk], fontsize=8)
        fig2.colorbar(im, ax=ax[0], label="Cohen's d (type vs rest)")
        I = np.asarray(r["moran"]["I"], float)
        ax[1].bar(range(len(names)), I, color=["tab:red" if (q is not None and q < 0.05) else "tab:gray"
                                              for q in r["moran"]["p_holm"]])
        ax[1].set_xticks(range(len(names)), names, fontsize=8)
        ax[1].set_ylabel("Moran's I")
        ax[1].axhline(0, color="k", lw=0.5)
        out.append((f"markers_{slug}", f"Marker channels and spatial autocorrelation: {r['model']}",
                    "Left: mean Cohen's d over replicates of each channel, type vs rest. Right: Moran's I per "
                    "channel on replicate 0's body (red: Holm-adjusted permutation p < 0.05).", fig2))
        if p["pt"] is not None:
            st, dpt = p["pt"]
            fig3, ax = plt.subplots(figsize=(4.5, 3.5))
            ax.scatter(st + np.random.default_rng(0).uniform(-1, 1, len(st)), dpt, s=2, alpha=0.4)
            ax.set_xlabel("true step")
            ax.set_ylabel("diffusion pseudotime")
            out.append((f"pseudotime_{slug}", f"Pseudotime against developmental time: {r['model']}",
                        f"Replicate 0, every cell of every {s.every}-th step. Spearman over replicates "
                        f"{_fmt(r['pseudotime']['spearman'])}.", fig3))
    return out


def _z(z) -> str:
    return "-" if z is None else f"{z:.0f}"


def _fmt(c) -> str:
    from analysis.stats import fmt_ci

    return fmt_ci(c)


def summary_lines(result: AtlasResult) -> list[str]:
    lines = []
    for r in result.report["results"]:
        t, ns, nu = r["types"], r["null_shuffled"], r["null_untrained"]
        sig = int(np.sum(np.asarray([q for q in r["moran"]["p_holm"] if q is not None]) < 0.05))
        lines.append(f"{r['model']}: {r['cells']} cells, {t['n_types']} types (modularity {t['modularity']:.2f}; "
                     f"shuffled channels {_fmt(ns['n_types'])} types, modularity {_fmt(ns['modularity'])}; "
                     f"permutation p {t['modularity_p']:.3f}, z {_z(t['modularity_z'])})")
        lines.append(f"{r['model']}: replicate ARI {_fmt(t['replicate_ari'])} (shuffled {_fmt(ns['replicate_ari'])}), "
                     f"transfer ARI {_fmt(t['replicate_transfer_ari'])} (shuffled "
                     f"{_fmt(ns['replicate_transfer_ari'])}"
                     + (f"; untrained rule {nu['n_types']} types" if "n_types" in nu else
                        f"; untrained rule: {nu['cells']} cells, {nu.get('reason', '')}") + ")")
        lines.append(f"{r['model']}: Moran's I significant (Holm p < 0.05) in {sig}/{len(r['moran']['I'])} "
                     f"channels; pseudotime vs step Spearman {_fmt(r['pseudotime']['spearman'])}, vs cell age "
                     f"{_fmt(r['pseudotime']['spearman_age'])}")
        d = r["derivation"]
        if d:
            same = "-" if d["same_type_as_parent"] is None else f"{d['same_type_as_parent']:.2f}"
            lines.append(f"{r['model']}: after the {d['cut']} cut, {d['born']} cells born in {d['regrow']} steps; "
                         f"{same} of them of their parent's type (independent types: "
                         f"{'-' if d['same_type_chance'] is None else format(d['same_type_chance'], '.2f')})")
    if "across_models" in result.report:
        lines.append(f"across models: positional ARI {_fmt(result.report['across_models']['positional_ari'])}")
    return lines


def write(result: AtlasResult, out) -> None:
    """report.json, index.html and the PNGs, each atomically."""
    from pathlib import Path

    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import esc, report_files

    rep = dict(result.report)
    intro = (f"<p>Command: <code>{esc(rep.get('command', ''))}</code></p><pre>"
             + esc("\n".join(summary_lines(result))) + "</pre>")
    files = report_files("Cell atlas: " + ", ".join(rep["models"]), intro, rep, list(result.figures))
    files["index.html"] = files["index.html"].replace(b"docs/interventions.md", b"docs/atlas.md")
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(Path(out) / name, data)
