"""The PCA dissection report as a library: frozen settings -> ``run`` -> result -> ``write``.

``scripts/pca_report.py`` and ``scripts/dissect.py`` are argparse -> ``PCAReportSettings`` ->
``run`` -> ``write``. Shapes: S analysed steps, R replicates (rollouts from the same seed
state with independent fire masks), a grid H x W, F features, k PCs.

What is measured (docs/pca.md has every key):
1. R rollouts; one PCA of the alive cells pooled over the analysed steps and replicates.
2. Per analysed step and replicate, each PC map's axis measures (``analysis.representation.axes``) and
   its spatial-null p-values (``analysis.representation.axis_null``: any direction, radial, along and
   across the body's long axis); per component the kind is axial or radial only when
   significant (Holm over the body's k components, per test) and the same in at least
   ``min_agreement`` of the replicates, and likewise the fixed-axis gradient (along / across /
   both / none); only a component with a significant direction (kind axial) gets a
   bootstrap interval of its direction; association, radial association and variance share
   get a 95 % interval over replicates.
3. Descriptive extras on the first replicate (no null, documented as such): emergence over
   development and regrowth after damage, the rotation test, comparison with a second seed
   and with other models.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nca.errors import NCAError

from analysis.representation.axes import AxisThresholds, alive_of, view_coords
from analysis.representation.axis_null import BodyNull, KindRule, NullSettings, agreed_kind, body_kinds, direction_ci, holm

# Named PRNG streams (jax.random.fold_in of the command's key; NumPy SeedSequence spawn keys).
STREAM_ROLLOUTS = 11
STREAM_SECOND_SEED = 12
STREAM_DAMAGE = 13
STREAM_REGROW = 14
STREAM_ROTATION = 15
STREAM_COMPARE = 16
STREAM_NULL_LOADINGS = 17


@dataclass(frozen=True)
class PCAReportSettings:
    """Everything a PCA report depends on (the CLI flags of scripts/pca_report.py).

    steps: CA steps to grow (None: the largest of ``at``, else 200); at: steps to analyse
    (None: steps/4, steps/2, 3 steps/4, steps); replicates: rollouts with independent fire
    masks (pooled in the PCA; intervals and kind agreement are over them); seed: the one
    PRNG seed; every: emergence resolution (measure every N steps); regrow: steps of
    regrowth after a damage disc (0: none); rotations: perception rotations (deg) of the
    rotation test; compare: other models (None: the other experiments of a published emoji);
    surrogates, bootstrap: null surrogates per map and bootstrap draws per direction interval;
    alpha, min_agreement: the kind rule (``analysis.representation.axis_null.KindRule``).
    """

    model: str
    steps: int | None = None
    at: tuple[int, ...] | None = None
    replicates: int = 5
    seed: int = 0
    size: int | None = None
    features: str = "hidden"
    components: int = 6
    standardize: bool = False
    per_step: bool = False
    every: int = 5
    regrow: int = 100
    rotations: tuple[float, ...] = (45.0, 90.0, 180.0)
    compare: tuple[str, ...] | None = None
    surrogates: int = 999
    bootstrap: int = 100
    alpha: float = 0.05
    min_agreement: float = 0.8
    command: str = ""

    def rollout_steps(self) -> int:
        return self.steps if self.steps is not None else (max(self.at) if self.at else 200)

    def analysed_steps(self) -> list[int]:
        n = self.rollout_steps()
        return sorted(set(self.at)) if self.at else sorted({max(1, n * i // 4) for i in (1, 2, 3, 4)})

    def validate(self) -> None:
        """Raise NCAError (one line) on bad settings, before anything is computed."""
        from analysis.representation.pca import FEATURES

        if self.replicates < 1:
            raise NCAError("--replicates must be >= 1")
        if self.every < 1:
            raise NCAError("--every must be >= 1")
        if self.components < 1:
            raise NCAError("--components must be >= 1")
        if self.regrow < 0:
            raise NCAError("--regrow must be >= 0")
        if (self.surrogates + 1) * self.alpha <= self.components:
            need = int(np.floor(self.components / self.alpha))
            raise NCAError(f"--surrogates {self.surrogates} is too few: with {self.components} components the "
                           f"smallest Holm threshold is {self.alpha}/{self.components}; use at least {need}")
        if self.bootstrap < 10:
            raise NCAError("--bootstrap must be >= 10")
        if not 0 < self.alpha < 1:
            raise NCAError("--alpha must be in (0, 1)")
        if not 0 < self.min_agreement <= 1:
            raise NCAError("--min-agreement must be in (0, 1]")
        if self.features not in FEATURES:
            raise NCAError(f"--features must be one of {', '.join(FEATURES)}")
        if self.at and min(self.at) < 1:
            raise NCAError(f"--at must be >= 1 (step t is the state after t steps), got {min(self.at)}")
        n = self.rollout_steps()
        if n < 1:
            raise NCAError(f"--steps must be >= 1, got {n}")
        bad = [t for t in self.analysed_steps() if not 1 <= t <= n]
        if bad:
            raise NCAError(f"--at {bad} outside the rollout: analysed steps must be in 1..{n} "
                           f"(raise --steps or choose smaller steps)")


@dataclass(frozen=True)
class PCAReportResult:
    """report: every number (report.json after ``analysis.reports.html.json_safe``); figures:
    (name, title, caption, PNG bytes); viewer: the analysis the live viewer shows (the
    pooled PCA and its maps, ``analysis.viewer``), or None."""

    settings: PCAReportSettings
    report: dict
    figures: list = field(default_factory=list)
    viewer: dict | None = None


def settings_from_args(a, argv: list[str]) -> "PCAReportSettings":
    """The flags of scripts/pca_report.py (or scripts/dissect.py's) -> settings."""
    import shlex

    return PCAReportSettings(
        model=a.model, steps=a.steps, at=tuple(a.at) if a.at is not None else None,
        replicates=a.replicates, seed=a.seed, size=a.size, features=a.features, components=a.components,
        standardize=a.standardize, per_step=a.per_step, every=a.every, regrow=a.regrow,
        rotations=tuple(a.rotations), compare=tuple(a.compare) if a.compare is not None else None,
        surrogates=a.surrogates, bootstrap=a.bootstrap, alpha=a.alpha, min_agreement=a.min_agreement,
        command="python scripts/pca_report.py " + " ".join(shlex.quote(x) for x in argv))


def preflight(settings: "PCAReportSettings") -> None:
    """Everything that can be refused before computing: the settings, the model names, the
    number of components against the features. Raises NCAError (one line)."""
    import nca

    settings.validate()
    model = nca.load_model(settings.model)
    if model.model_config.life == "none":
        raise NCAError(f"{model.name} grows a texture, not a body (no alive masking): the PCA report's "
                       "alive cells and body axes are undefined for it")
    for c in settings.compare or ():
        nca.load_model(c)
    mc = model.model_config
    n_feat = {"hidden": mc.channels - 4, "state": mc.channels, "perception": mc.perception_dim, "mlp": mc.hidden}
    if settings.components > n_feat[settings.features]:
        raise NCAError(f"asked for {settings.components} components but the features have only "
                       f"{n_feat[settings.features]} dimensions")


def mean_interval(values, level: float = 0.95) -> dict:
    """{"mean", "lo", "hi", "n"}: Student-t interval of the mean over replicates (NaN
    ignored); lo/hi None for n < 2. ``analysis.stats.mean_ci`` in report.json's layout."""
    from analysis.stats import mean_ci

    c = mean_ci(np.asarray(values, np.float64), level)
    return {k: c[k] for k in ("mean", "lo", "hi", "n")}


# --------------------------------------------------------------------------- the null per component


NULL_THREADS = 2


def _body_tests(step: int, r: int, maps: np.ndarray, alpha: np.ndarray, threshold: float, null: NullSettings,
                rule: KindRule, seed: int) -> dict:
    """One body's measures and spatial-null test: maps [H, W, k], alpha [H, W] -> a record
    (frame, measures, the alive cells' values [n, k] and positions, the test, the kinds)."""
    from analysis.representation.axes import measure_maps

    k = maps.shape[-1]
    alive = alive_of(alpha, threshold)
    n_alive = int(alive.sum())
    frame, meas = measure_maps(maps, alpha, threshold, AxisThresholds())
    rows, cols = np.nonzero(alive)
    values = maps[rows, cols]  # [n, k]
    rec = {"frame": frame, "meas": meas, "values": values, "uv": view_coords(rows, cols)}
    if n_alive < null.min_cells:
        rec["test"] = None
        rec["reason"] = f"only {n_alive} alive cells (< {null.min_cells}): no null"
        kinds = ["none"] * k
        reasons = [rec["reason"]] * k
    else:
        centre = view_coords([frame.centroid_rc[0]], [frame.centroid_rc[1]])[0]
        test = BodyNull(alive, centre, null, seed=seed, key=(int(step), r), axis_deg=frame.axis_deg).test(values)
        rec["test"] = test
        rec["reason"] = None
        kinds, reasons = body_kinds(test["p_value"], test["radial_p_value"], test["association_stat"],
                                    test["radial_stat"], np.array([m.angle_to_body_axis_deg for m in meas]),
                                    frame.elongation, rule)
    rec["kinds"], rec["kind_reasons"] = kinds, reasons
    rec["gradients"] = (["none"] * k if rec["test"] is None else
                        axis_gradients(rec["test"]["along_p_value"], rec["test"]["across_p_value"], rule.alpha))
    return rec


def axis_gradients(p_along: np.ndarray, p_across: np.ndarray, alpha: float) -> list[str]:
    """The fixed-axis question per component: a gradient along the body's long (head-tail)
    axis, across it, both, or none -- each test Holm-adjusted over the k components.
    p_along, p_across: [k] -> [k] labels."""
    adj_a, adj_c = holm(np.asarray(p_along, float)), holm(np.asarray(p_across, float))
    return [{(True, True): "both", (True, False): "along", (False, True): "across", (False, False): "none"}[
        (bool(a < alpha), bool(c < alpha))] for a, c in zip(adj_a, adj_c)]


def add_null_tests(steps: list[int], maps: np.ndarray, alpha: np.ndarray, res: dict, threshold: float,
                    null: NullSettings, rule: KindRule, n_boot: int, seed: int, evr: np.ndarray | None = None,
                    progress=None) -> None:
    """Add the spatial null, kinds, intervals to ``res["steps"][s]["components"]`` in place.

    maps: [S, R, H, W, k] PC maps (NaN where dead); alpha: [S, R, H, W]; res: from
    ``analysis.representation.dissect.analyse_steps`` (its measures are the first replicate's); evr:
    [S, R, k] each replicate's variance share (for its interval) or None.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    n_s, n_r = maps.shape[:2]

    def one_body(sr):  # every (step, replicate) body is independent, with its own PRNG streams
        s, r = sr
        rec = _body_tests(steps[s], r, maps[s, r], alpha[s, r], threshold, null, rule, seed)
        if progress is not None:
            progress()
        return rec

    # The bodies on two threads: their NumPy and FFT work releases the GIL for most of the
    # time (1.2-1.9x on 2 cores, alternated runs). BLAS is held to one thread for the whole section, not per call:
    # threadpool_limits is process-wide, so nested per-thread limits would undo each other.
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(NULL_THREADS) as pool:
        recs = list(pool.map(one_body, [(s, r) for s in range(n_s) for r in range(n_r)]))
        bodies = [recs[s * n_r:(s + 1) * n_r] for s in range(n_s)]
        cis = {}
        for s in range(n_s):
            per_rep = bodies[s]
            if not all(len(rec["values"]) >= null.min_cells for rec in per_rep):
                continue
            for j, c in enumerate(res["steps"][s]["components"]):
                # a direction interval only for a significant direction (issue 23): random
                # fields got 6-deg-wide intervals of a direction that is not there
                if agreed_kind([rec["kinds"][j] for rec in per_rep], rule)[0] not in ("along-axis", "across-axis"):
                    continue
                cis[s, j] = pool.submit(direction_ci, [rec["values"][:, j] for rec in per_rep],
                                        [rec["uv"] for rec in per_rep], c["direction_deg"], n_boot, seed=seed,
                                        key=(int(steps[s]), j), starts=[rec["meas"][j].direction_deg for rec in per_rep])
        cis = {sj: f.result() for sj, f in cis.items()}
    for s in range(n_s):
        body = res["steps"][s]
        per_rep = bodies[s]
        first = per_rep[0]
        for j, c in enumerate(body["components"]):
            c["kind_threshold"] = c["kind"]  # the old fixed-threshold label (no null), first replicate
            kinds = [rec["kinds"][j] for rec in per_rep]
            kind, agreement, reason = agreed_kind(kinds, rule)
            c["kind"] = kind
            c["kind_agreement"] = agreement
            c["kind_seeds"] = kinds
            c["kind_reason"] = reason if reason else (first["kind_reasons"][j] if kind == "none" else None)
            if kind == "none" and reason is None and first["kinds"][j] != "none":
                c["kind_reason"] = f"the first replicate's kind is {first['kinds'][j]}, most replicates' none"
            if kind in ("along-axis", "across-axis") and first["kinds"][j] != kind:
                c["kind_reason"] = f"the first replicate gives {first['kinds'][j]}; the kind is the replicates' majority"
            grads = [rec["gradients"][j] for rec in per_rep]
            grad, grad_agreement, grad_reason = agreed_kind(grads, rule)
            c.update({"axis_gradient": grad, "axis_gradient_agreement": grad_agreement,
                      "axis_gradient_seeds": grads, "axis_gradient_reason": grad_reason})
            if first["test"] is None:
                for key in ("p_value", "radial_p_value", "p_value_holm", "radial_p_value_holm", "along_p_value",
                            "across_p_value", "along_p_value_holm", "across_p_value_holm", "along_stat",
                            "across_stat", "n_drawn", "null_sigma_px", "null_smooth_weight", "association_stat"):
                    c[key] = None
                c["p_value_reason"] = first["reason"]
            else:
                t = first["test"]
                adj = {name: holm(t[name]) for name in ("p_value", "radial_p_value", "along_p_value", "across_p_value")}
                c.update({name: float(t[name][j]) for name in adj})
                c.update({f"{name}_holm": float(v[j]) for name, v in adj.items()})
                c.update({"along_stat": float(t["along_stat"][j]), "across_stat": float(t["across_stat"][j]),
                          "n_drawn": int(t["n_drawn"][j]),
                          "null_sigma_px": float(t["sigma_px"][j]), "null_smooth_weight": float(t["smooth_weight"][j]),
                          "association_stat": float(t["association_stat"][j]), "p_value_reason": None})
            c["n_surrogates"] = null.n_surrogates
            c["min_p"] = 1.0 / (null.n_surrogates + 1)
            c["p_value_seeds"] = [None if rec["test"] is None else float(rec["test"]["p_value"][j]) for rec in per_rep]
            for name in ("radial_p_value", "along_p_value", "across_p_value"):
                c[f"{name}_seeds"] = [None if rec["test"] is None else float(rec["test"][name][j]) for rec in per_rep]
            c["direction_deg_seeds"] = [rec["meas"][j].direction_deg for rec in per_rep]
            c["association_ci"] = mean_interval([rec["meas"][j].association for rec in per_rep])
            c["radial_association_ci"] = mean_interval([rec["meas"][j].radial_association for rec in per_rep])
            if evr is not None:
                c["explained_variance_ratio_ci"] = mean_interval(evr[s, :, j])
            if (s, j) in cis:
                c["direction_ci_deg"] = cis[s, j]
                c["direction_ci_reason"] = None
            elif not all(len(rec["values"]) >= null.min_cells for rec in per_rep):
                c["direction_ci_deg"] = None
                c["direction_ci_reason"] = f"a replicate has fewer than {null.min_cells} alive cells"
            else:
                c["direction_ci_deg"] = None
                c["direction_ci_reason"] = "no significant direction (kind is not axial): no interval"
            if c["kind"] not in ("along-axis", "across-axis"):
                c["profile"] = None
        body["n_alive_ci"] = mean_interval([rec["frame"].n_alive for rec in per_rep])
        body["body_axis_deg_seeds"] = [rec["frame"].axis_deg for rec in per_rep]


# --------------------------------------------------------------------------- run


def run(settings: PCAReportSettings, progress=None, on_pca=None, figures=None) -> PCAReportResult:
    """Grow, fit, measure, test. -> ``PCAReportResult``: the JSON-ready report, the figures
    (name, title, caption, png bytes) and the live viewer's PCA data (this report's pooled
    PCA; ``analysis.viewer.analysis_from``) or None. The stages: rollouts and the pooled PCA
    with its null tests, then ``_emergence``, ``_rotations`` and ``_comparisons``; the
    rollouts that need nothing from the analysis run on a side thread from the start. progress: callable(description) called at each stage;
    on_pca: callable(pca, features [N, F] of its fitted cells), called as soon as the pooled
    PCA is fitted (``scripts/dissect.py`` starts its animation's PC panels with it);
    figures: an ``analysis.reports.figure_pool.FigurePool`` that draws the figures beside the
    analysis as their inputs are ready (None: drawn here at the end; same bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    import jax

    import nca

    from analysis import viewer

    from analysis.representation import dissect

    from analysis.plots import pca as pca_figures
    from analysis.reports.figure_pool import FigurePool
    from analysis.representation.pca import FEATURES, state_features, variance_captured
    from analysis.rollouts import activations, euclidean, grow_states

    a = settings
    a.validate()
    t_start = time.time()
    tell = progress or (lambda desc: None)
    rollout = a.rollout_steps()
    steps = a.analysed_steps()
    model = nca.load_model(a.model)
    if model.model_config.life == "none":  # channel 3 is not an alpha: no alive cells, no body axis
        raise NCAError(f"{model.name} grows a texture, not a body (no alive masking): the PCA report's "
                       "alive cells and body axes are undefined for it")
    thr = model.model_config.alive_threshold
    thresholds = AxisThresholds()
    rule = KindRule(alpha=a.alpha, min_agreement=a.min_agreement)
    null = NullSettings(n_surrogates=a.surrogates)
    key = jax.random.key(a.seed)

    def feats(m, states):
        """[..., H, W, C] states -> [..., H, W, F] features of model m."""
        if a.features in ("hidden", "state"):
            return state_features(states, a.features)
        return activations(m, states, a.features)

    def analysed(m, states):
        """Native states [..., H, W, C] of model m -> (features, states) in the frame the
        analysis measures in (``analysis.rollouts.euclidean``: the hex grid resampled)."""
        return euclidean(feats(m, states), m.model_config), euclidean(states, m.model_config)

    compare = list(a.compare) if a.compare is not None else []
    if a.compare is None and model.name.startswith("distill:"):
        emoji = model.name.split(":")[1].split("/")[0]
        compare = [n for n in nca.published_names() if n.startswith(f"distill:{emoji}/") and n != model.name]
    others = [nca.load_model(c) for c in compare]  # fail early on a bad name
    mc = model.model_config
    n_feat = {"hidden": mc.channels - 4, "state": mc.channels, "perception": mc.perception_dim, "mlp": mc.hidden}
    if a.components > n_feat[a.features]:
        raise NCAError(f"asked for {a.components} components but the features have only "
                       f"{n_feat[a.features]} dimensions")

    # The rollouts that need nothing from the analysis (rotated perception, a second seed,
    # other models) run on a second thread from the start: on a CPU, XLA compiles and the
    # NumPy measures are mostly one-threaded, so they overlap. Same keys, same numbers.
    t_last = steps[-1]
    grid = a.size or model.grid_size
    pairs = [(f"{model.name} second seed", model, jax.random.fold_in(key, STREAM_SECOND_SEED), True)]
    pairs += [(m.name, m, jax.random.fold_in(key, STREAM_COMPARE), False) for m in others]
    # Record only the states the analysis reads (every g-th; 10x less to copy at dissect.py's
    # settings). The t_last-step rollouts and the regrowth share g1, hence one compilation
    # when the regrowth is as long as the growth.
    g = math.gcd(a.every, rollout, *steps)
    g1 = math.gcd(a.every, a.regrow, *steps)
    with ThreadPoolExecutor(1) as pool:
        rot_grown = {theta: pool.submit(grow_states, model.rotated(theta), t_last,
                                        jax.random.fold_in(key, STREAM_ROTATION), size=a.size, every=g1)
                     for theta in a.rotations}
        pair_grown = [pool.submit(grow_states, m, t_last, k, size=grid, every=g1) for _, m, k, _ in pairs]
        # 1. rollouts and the PCA of the analysed steps
        tell("grow")
        states = grow_states(model, rollout, jax.random.fold_in(key, STREAM_ROLLOUTS), seeds=a.replicates, size=a.size,
                             every=g)  # states[i]: after i * g steps
        if a.regrow > 0:  # the damage and the regrowth need only the grown body: on the side thread now
            regrown = pool.submit(_damage_and_regrow, model, states[-1, :1], key, grid, thr, a.regrow, rollout, g1)
        tell("pca")
        f_at, at = analysed(model, states[[t // g for t in steps]])  # [S, R, H, W, F], [S, R, H, W, C]
        pooled, maps, res = dissect.analyse_steps(steps, f_at, at[..., 3], a.components, a.standardize, a.per_step,
                                                  a.features, thr, thresholds)
        alive_at = alive_of(at[..., 3], thr)
        if on_pca is not None:
            on_pca(pooled, f_at[alive_at])
        # the page's live viewer shows this same PCA (it supports the hidden channels only)
        viewer_data = (viewer.analysis_from(pooled, at[alive_at], steps, a.replicates)
                       if a.features == "hidden" and not a.standardize else None)
        evr_rep = np.stack([np.stack([variance_captured(pooled, f_at[s, r][None], alive_at[s, r][None])[0]
                                      for r in range(a.replicates)]) for s in range(len(steps))])  # [S, R, k]
        tell("null")
        add_null_tests(steps, maps, at[..., 3], res, thr, null, rule, a.bootstrap, a.seed,
                        None if a.per_step else evr_rep)
        res["pca"]["explained_variance_ratio_ci"] = [mean_interval(evr_rep[:, :, j].mean(0))
                                                     for j in range(a.components)]
        fig_pool = figures if figures is not None else FigurePool(0)
        drawn = [fig_pool.submit(f) for f in pca_figures.body_figure_specs(res["pca"], res["steps"], a.replicates,
                                                                        steps, at, maps, evr_rep, thr)]

        # 2. emergence over development (first replicate), then damage and regrowth
        growth, regrowth, damage_info, emergence = _emergence(a, model, pooled, states, g, g1, regrown if a.regrow > 0
                                                              else None, analysed, thr, thresholds, tell)
        # 3. rotation test: grow with rotated perception, score with the same PCA
        rotation, rot_states, rot_maps, rot_bodies = _rotations(a, model, pooled, rot_grown, res["steps"][-1],
                                                                at[-1, 0], maps[-1, 0], t_last, analysed, thr,
                                                                thresholds, tell)
        # 4. comparison with a second seed and with other models (own PCA each, same steps)
        comparisons, cmp_rows = _comparisons(a, pooled, maps, pairs, pair_grown, steps, g1, key, analysed, thr,
                                             thresholds, tell)

    # 5. the report dict and the figures
    tell("figures")
    out = {
        "model": model.name, "command": a.command, "settings": asdict(a),
        "grid": grid, "rollout_steps": rollout, "seed": a.seed, "replicates": a.replicates,
        "features": a.features, "features_description": FEATURES[a.features], "n_features": int(pooled.mean.shape[0]),
        "standardize": a.standardize, "alive_threshold": thr,
        "conventions": _conventions(model.model_config), "thresholds": dissect.thresholds_dict(thresholds),
        "kind_rule": asdict(rule), "null": {**asdict(null), "method": NULL_METHOD},
        **res, "emergence": emergence, "rotation": rotation, "comparison": comparisons,
    }
    drawn += [fig_pool.submit(f) for f in pca_figures.later_figure_specs(
        out, steps, at, maps, growth, regrowth, damage_info, rotation, rot_states, rot_maps, rot_bodies,
        comparisons, cmp_rows, thr, thresholds)]
    figs = fig_pool.collect(drawn)
    out["timing_s"] = time.time() - t_start
    out["figures"] = [f"{name}.png" for name, *_ in figs]
    return PCAReportResult(settings, out, figs, viewer_data)


def _emergence(a: PCAReportSettings, model, pooled, states, g: int, g1: int, regrown, analysed, thr: float,
               thresholds, tell):
    """Stage 2: the pooled PCA's components tracked over development (first replicate), then
    after damage and regrowth (``regrown``: the side thread's future, or None).
    -> (growth, regrowth, damage_info, the report's "emergence")."""
    from analysis.representation import dissect

    rollout = a.rollout_steps()
    tell("emergence")
    ts = sorted(set(range(a.every, rollout + 1, a.every)) | {rollout})
    f, grown_ts = analysed(model, states[[t // g for t in ts], 0])
    growth = dissect.track(pooled, ts, f, grown_ts[..., 3], thr, thresholds)
    regrowth, damage_info = None, None
    if a.regrow > 0:
        tell("damage + regrowth")
        re, frac = regrown.result()
        rts = sorted(set(range(0, a.regrow + 1, a.every)) | {a.regrow})
        f, re_ts = analysed(model, re[[t // g1 for t in rts], 0])
        regrowth = dissect.track(pooled, [rollout + t for t in rts], f, re_ts[..., 3], thr, thresholds)
        damage_info = {"step": rollout, "regrow_steps": a.regrow, "fraction_of_body_erased": frac,
                       "disc": "nca.damage.circle_masks (the article's training damage)"}
    emergence = {"growth": growth, "regrowth": regrowth, "damage": damage_info,
                 "summary": dissect.summarise_emergence(growth, regrowth),
                 "note": "descriptive: first replicate, fixed-threshold kinds (kind_threshold rule), no null"}
    return growth, regrowth, damage_info, emergence


def _rotations(a: PCAReportSettings, model, pooled, rot_grown: dict, ref_body: dict, ref_state, ref_map,
               t_last: int, analysed, thr: float, thresholds, tell):
    """Stage 3: bodies grown with rotated perception (``rot_grown``: the side thread's
    futures), scored with the same PCA. -> (the report's "rotation" or None, states, maps,
    bodies: the reference first)."""
    from analysis.representation import dissect
    from analysis.representation.pca import pc_maps, variance_captured

    rot_bodies, rot_states, rot_maps = [ref_body], [ref_state], [ref_map]
    for theta in a.rotations:
        tell(f"rotation {theta:g}")
        m_rot = model.rotated(theta)
        f, x = analysed(m_rot, rot_grown[theta].result()[-1, 0])
        alive = x[..., 3] > thr
        if alive.sum() < 10:
            raise NCAError(f"the body grown with perception rotated by {theta:g} deg has no alive cells at step {t_last}")
        mp = pc_maps(pooled, f, alive)
        evr = variance_captured(pooled, f[None], alive[None])[0]
        rot_bodies.append(dissect.describe_body(mp, x[..., 3], evr, thr, thresholds))
        rot_states.append(x)
        rot_maps.append(mp)
    rotation = dissect.rotation_summary(list(a.rotations), ref_body, rot_bodies[1:]) if a.rotations else None
    if rotation:
        rotation["note"] = "descriptive: one rollout per angle; kinds of the rotated bodies are fixed-threshold labels"
    return rotation, rot_states, rot_maps, rot_bodies


def _comparisons(a: PCAReportSettings, pooled, maps, pairs: list, pair_grown: list, steps: list[int], g1: int, key,
                 analysed, thr: float, thresholds, tell):
    """Stage 4: a second seed and the other models, each with its own PCA at the same steps
    (``pair_grown``: the side thread's futures). -> (the report's "comparison", rows for the
    figures)."""
    import jax

    from analysis.representation import dissect
    from analysis.representation.compare import null_loading_angles_deg
    from analysis.representation.pca import fit_cell_pca, pc_maps

    comparisons, cmp_rows = [], []
    null_angles = null_loading_angles_deg(jax.random.fold_in(key, STREAM_NULL_LOADINGS), int(pooled.mean.shape[0]),
                                          a.components)
    for (label, m, k, same), grown in zip(pairs, pair_grown):
        tell(f"compare {label}")
        f, st = analysed(m, grown.result()[[t // g1 for t in steps], 0])  # [S, H, W, F], [S, H, W, C]
        alive = st[..., 3] > thr
        if (alive.sum((1, 2)) < 10).any():
            raise NCAError(f"{label} has fewer than 10 alive cells at one of steps {steps}: cannot compare")
        p = fit_cell_pca(f, alive, a.components, a.standardize, a.features)
        mp = pc_maps(p, f[-1], alive[-1])
        c = dissect.compare_pcas(pooled, maps[-1, 0], p, mp, same)
        body = dissect.describe_body(mp, st[-1, ..., 3], p.explained_variance_ratio, thr, thresholds)
        c.update({"loading_angles_null_median_deg": null_angles.tolist(), "label": label, "model": m.name,
                  "components_b": body["components"], "body_axis_deg_b": body["body_axis_deg"]})
        comparisons.append(c)
        cmp_rows.append((label, st[-1], mp, body))
    return comparisons, cmp_rows


def _damage_and_regrow(model, x_end: np.ndarray, key, grid: int, thr: float, steps: int, t0: int,
                       every: int) -> tuple[np.ndarray, float]:
    """The regrowth after damage: x_end [1, H, W, C] (the first replicate's grown body) hit by
    the first of the article's training discs (stream STREAM_DAMAGE) that erases >= 20 % of
    it, then grown ``steps`` steps from ``t0`` (stream STREAM_REGROW). -> (states [steps //
    every + 1, 1, H, W, C], the fraction of the body erased)."""
    import jax

    from analysis.rollouts import disc_damage, grow_states

    alive_end = x_end[0, ..., 3] > thr
    k_dmg = jax.random.fold_in(key, STREAM_DAMAGE)
    for i in range(100):  # the first training-distribution disc that erases >= 20% of the body
        mask = disc_damage(jax.random.fold_in(k_dmg, i), (grid, grid))
        frac = float((alive_end & (mask > 0)).sum() / max(alive_end.sum(), 1))
        if frac >= 0.2:
            break
    x_dam = x_end * (1.0 - mask)[None, :, :, None]
    return grow_states(model, steps, jax.random.fold_in(key, STREAM_REGROW), seeds=1, x0=x_dam, t0=t0,
                       every=every), frac


def run_with_progress(settings: PCAReportSettings, quiet: bool = False, on_pca=None, figures=None) -> PCAReportResult:
    """``run`` with a stage progress bar on stderr (none with quiet); the bar appears at the
    first stage, after the models have loaded (a bad name stops before any output)."""
    import sys

    from tqdm import tqdm

    stages = 7 + bool(settings.regrow) + len(settings.rotations) + 1 + len(settings.compare or ())
    bars = []

    def progress(desc):
        if not bars:
            bars.append(tqdm(total=stages, file=sys.stderr, unit="stage", disable=quiet))
        bars[0].update(1)
        bars[0].set_description(desc)

    try:
        return run(settings, progress, on_pca, figures)
    finally:
        for b in bars:
            b.close()


NULL_METHOD = ("surrogate maps on the body mask whose variogram matches the map's (normal scores) at lags up to "
               "half the body's length, as a non-negative mixture of smoothing scales up to half its length plus a "
               "white nugget (Burt et al. 2020 NeuroImage 220:117038); max over directions inside the null; "
               "fixed-axis statistics along / across the body's long axis with the same surrogates; sequential "
               "Monte-Carlo p-values (Besag & Clifford 1991 Biometrika 78:301)")


# The radial test's false-positive rate on the null battery (docs/validation/spatial_null.md,
# round 3): within the 8 % bound in only 10 of 23 smooth-field families; the any-direction,
# along and across tests are within it in 23/23. Said in report.json and beside any radial kind.
RADIAL_CALIBRATION = ("any-direction, along and across tests: false-positive rate within the 8 % bound in 23/23 "
                      "null-battery families; radial test NOT certified (3.4 % pooled, up to 6.2 % [4.1, 9.1] at "
                      "nominal 5 % on some smooth fields; docs/validation/spatial_null.md)")


HEX_GEOMETRY = ("hex grid (axial coordinates): states, features and maps resampled to the square image the isotropic "
                "demo draws (nearest cell, pixels sqrt(3)/2 cell spacings wide; analysis.rollouts.euclidean) before "
                "any map, axis, direction or distance is measured; the rollouts run on the hex grid")


def _conventions(cfg=None) -> dict:
    from analysis.reports.html import CONVENTIONS

    geometry = {"geometry": HEX_GEOMETRY} if cfg is not None and cfg.topology == "hex" else {}
    return {**CONVENTIONS, **geometry,
            "kind": "axial (along-/across-axis) or radial only when the spatial-null test is significant (Holm over "
                    "the body's k components, alpha in kind_rule) in at least min_agreement of the replicates; "
                    "kind_threshold is the old fixed-threshold label (association >= 0.5), for comparison",
            "calibration": RADIAL_CALIBRATION,
            "intervals": "*_ci: {mean, lo, hi, n}: Student-t 95% interval of the mean over replicates; "
                         "direction_ci_deg: [lo, hi] bootstrap over cells and replicates (counter-clockwise lo to hi)"}


def write(result: PCAReportResult, out: Path, viewer: bool = True) -> None:
    """report.json, index.html and the PNGs into ``out`` (created), each written atomically;
    with ``viewer``, also ``viewer.html``: the model running live in the browser (linked
    from the page; ``analysis.viewer``), for the article's architecture only (a variant,
    e.g. ``isonca:lizard``, gets the page without it)."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.plots import pca as pca_figures
    from analysis.reports.html import json_safe

    out = Path(out)
    rep = result.report
    for name, _, _, png in result.figures:
        atomic_write_bytes(out / f"{name}.png", png)
    atomic_write_bytes(out / "report.json", json.dumps(json_safe(rep), indent=1, allow_nan=False).encode())
    if viewer:
        import nca

        from analysis.viewer import ViewerSettings, write_viewer

        # the spec the report was run on: a model folder's display name need not be loadable
        model = nca.load_model(rep["settings"]["model"])
        # the WebGL viewer runs the article's architecture only: a variant's page has no viewer
        viewer = model.model_config.is_article
        if viewer:
            write_viewer(model, out / "viewer.html", ViewerSettings(seed=rep["seed"]), analysis=result.viewer)
    page = pca_figures.build_html(json_safe(rep), [(t, c, p) for _, t, c, p in result.figures],
                                  viewer="viewer.html" if viewer else None)
    atomic_write_bytes(out / "index.html", page.encode())


def summary_lines(result: PCAReportResult) -> list[str]:
    """What the script prints: the last analysed step's components."""
    from analysis.plots import component_label

    rep = result.report
    last = rep["steps"][-1]
    lines = [f"{rep['model']}: step {last['step']}, body axis {last['body_axis_deg']:.1f} deg, "
             f"{rep['replicates']} replicate(s); components by their share of step {last['step']}'s variance"]
    # A pooled PCA's components are ordered by their share of the pooled data, not of this
    # step's: listed in pooled order, a step's shares came out of order ("PC3 7.2 % / PC4 7.5 %").
    for c in sorted(last["components"], key=lambda c: -c["explained_variance_ratio"]):
        p = "-" if c.get("p_value") is None else f"{c['p_value']:.3f}"
        pr = "-" if c.get("radial_p_value") is None else f"{c['radial_p_value']:.3f}"
        lines.append(f"  PC{c['index'] + 1} {c['explained_variance_ratio']:6.1%}  {component_label(c)}  "
                     f"p={p} p_radial={pr} agreement={c['kind_agreement']:.0%}")
    if any(c.get("kind") == "radial" for c in last["components"]):
        lines.append("  note: " + RADIAL_CALIBRATION)
    return lines
