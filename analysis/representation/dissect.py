"""The PCA dissection as pure functions of arrays, returning JSON-ready dicts.

``scripts/pca_report.py`` grows the rollouts (``analysis.rollouts``), calls these, then
plots and writes. Shapes: S analysed steps, N seeds, a grid H x W, F features, k PCs.
Measures of one body are taken on the first seed; with N > 1 the other seeds' directions
and kinds are listed beside them.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from nca.errors import NCAError

from analysis.representation.axes import AxisThresholds, alive_of, axis_angle_between, measure_maps, wrap180
from analysis.representation.compare import emergence_step, loading_angles_deg, map_angles_deg, measured_rotation
from analysis.representation.pca import CellPCA, fit_cell_pca, fit_per_grid, pc_maps, variance_captured


def _frame_dict(frame) -> dict:
    return {"n_alive": frame.n_alive, "body_axis_deg": frame.axis_deg,
            "body_elongation": frame.elongation, "body_centroid_rc": list(frame.centroid_rc)}


def _component_dicts(measures, evr) -> list[dict]:
    out = []
    for j, m in enumerate(measures):
        d = {"index": j, "explained_variance_ratio": float(evr[j])}
        d.update(m.as_dict())
        if d["kind"] not in ("along-axis", "across-axis"):
            d["profile"] = None  # ramp/split only describes axial components
        out.append(d)
    return out


def describe_body(maps: np.ndarray, alpha: np.ndarray, evr: np.ndarray, threshold: float = 0.1,
                  thresholds: AxisThresholds = AxisThresholds()) -> dict:
    """Body frame + per-component measures of one grid. maps: [H, W, k]; alpha: [H, W]; evr: [k]."""
    frame, measures = measure_maps(maps, alpha, threshold, thresholds)
    out = _frame_dict(frame)
    out["components"] = _component_dicts(measures, evr)
    return out


def analyse_steps(steps: list[int], features: np.ndarray, alpha: np.ndarray, n_components: int = 6,
                  standardize: bool = False, per_step: bool = False, feature_name: str = "hidden",
                  threshold: float = 0.1, thresholds: AxisThresholds = AxisThresholds()):
    """PCA of the alive cells and the axis measures of every component at every step.

    steps: [S] step numbers; features: [S, N, H, W, F]; alpha: [S, N, H, W].
    per_step: fit one PCA per step instead of one pooled over steps and seeds.
    Returns (pooled CellPCA, maps [S, N, H, W, k], result dict with keys "pca", "steps").
    The pooled fit is always made (emergence and rotation use it); with per_step the maps
    and per-step measures come from each step's own fit.
    """
    alive = alive_of(alpha, threshold)
    for s, t in enumerate(steps):
        n = int(alive[s].reshape(alive.shape[1], -1).sum(1).min())
        if n < 10:
            raise NCAError(f"only {n} alive cells at step {t}: nothing to analyse there; choose "
                           "steps where the body has grown (or a model that grows)")
    pooled = fit_cell_pca(features, alive, n_components, standardize, feature_name)
    fits = fit_per_grid(features, alive, n_components, standardize, feature_name) if per_step else None
    if fits is None:
        maps = pc_maps(pooled, features, alive)
        evr_step = variance_captured(pooled, features[:, 0], alive[:, 0])
    else:
        maps = np.stack([pc_maps(f, features[s], alive[s]) for s, f in enumerate(fits)])
        evr_step = np.stack([f.explained_variance_ratio for f in fits])
    per = []
    for s, t in enumerate(steps):
        body = describe_body(maps[s, 0], alpha[s, 0], evr_step[s], threshold, thresholds)
        body = {"step": int(t), **body}
        if maps.shape[1] > 1:
            others = [measure_maps(maps[s, i], alpha[s, i], threshold, thresholds)[1]
                      for i in range(1, maps.shape[1])]
            for j, c in enumerate(body["components"]):
                c["direction_deg_seeds"] = [c["direction_deg"]] + [o[j].direction_deg for o in others]
                c["kind_seeds"] = [c["kind"]] + [o[j].kind for o in others]
        if fits is not None:
            body["explained_variance_ratio_fit"] = fits[s].explained_variance_ratio.tolist()
        per.append(body)
    result = {
        "pca": {
            "pooling": "per-step" if per_step else "pooled over steps and seeds",
            "fit_steps": [int(t) for t in steps],
            "n_samples": pooled.n_samples,
            "explained_variance_ratio": pooled.explained_variance_ratio.tolist(),
            "explained_variance": pooled.explained_variance.tolist(),
            "components": pooled.components.tolist(),
            "mean": pooled.mean.tolist(),
            "scale": pooled.scale.tolist(),
        },
        "steps": per,
    }
    return pooled, maps, result


def track(pca: CellPCA, steps: list[int], features: np.ndarray, alpha: np.ndarray,
          threshold: float = 0.1, thresholds: AxisThresholds = AxisThresholds(),
          progress=None) -> dict:
    """The measures of fixed components over a sequence of grids (development, regrowth).

    steps: [T]; features: [T, H, W, F]; alpha: [T, H, W]. Grids with fewer than 10 alive
    cells get kind "none" and NaN measures. Returns {"steps", "n_alive", "body_axis_deg",
    "components": [{"index", "kind", "direction_deg", "association", "radial_association",
    "linear_r2", "variance_fraction"} of lists over T]}.
    """
    alive = alive_of(alpha, threshold)
    k = pca.n_components
    keys = ("direction_deg", "association", "radial_association", "linear_r2", "angle_to_body_axis_deg")
    comps = [{"index": j, "kind": [], "variance_fraction": [], **{key: [] for key in keys}} for j in range(k)]
    n_alive, axis = [], []
    frac = variance_captured(pca, features, alive)
    for i in range(len(steps)):
        n = int(alive[i].sum())
        n_alive.append(n)
        if n < 10:
            axis.append(float("nan"))
            for j in range(k):
                comps[j]["kind"].append("none")
                comps[j]["variance_fraction"].append(float("nan"))
                for key in keys:
                    comps[j][key].append(float("nan"))
        else:
            frame, ms = measure_maps(pc_maps(pca, features[i], alive[i]), alpha[i], threshold, thresholds)
            axis.append(frame.axis_deg)
            for j, m in enumerate(ms):
                comps[j]["kind"].append(m.kind)
                comps[j]["variance_fraction"].append(float(frac[i, j]))
                for key in keys:
                    comps[j][key].append(getattr(m, key))
        if progress is not None:
            progress()
    return {"steps": [int(t) for t in steps], "n_alive": n_alive, "body_axis_deg": axis, "components": comps}


def summarise_emergence(growth: dict, regrowth: dict | None = None) -> list[dict]:
    """Per component: when its final kind appears during growth, and whether it is back
    (same kind, direction change) at the end of regrowth after damage."""
    out = []
    for j, c in enumerate(growth["components"]):
        d = {"index": j, "kind_at_end_of_growth": c["kind"][-1],
             "emerges_at_step": emergence_step(growth["steps"], c["kind"])}
        if regrowth is not None:
            r = regrowth["components"][j]
            d["kind_after_regrowth"] = r["kind"][-1]
            d["kind_right_after_damage"] = r["kind"][0]
            d["persists"] = r["kind"][-1] == c["kind"][-1] and c["kind"][-1] != "none"
            axial = ("along-axis", "across-axis")
            both = c["kind"][-1] in axial and r["kind"][-1] in axial
            # a direction change only means something between two axial measurements
            d["direction_change_deg"] = (float(measured_rotation(c["direction_deg"][-1], r["direction_deg"][-1]))
                                         if both else None)
        out.append(d)
    return out


def rotation_summary(angles_deg: list[float], ref: dict, rotated: list[dict]) -> dict:
    """Measured rotation of each component and of the body axis.

    ref, rotated[i]: ``describe_body`` dicts of the reference body and of the body grown
    with perception rotated by angles_deg[i], all scored with the *same* PCA (so component
    j is the same feature-space direction in each). Rotation of a component: signed
    difference of its direction; of the body: of its long axis (mod 180, in (-90, 90]).
    """
    comps = []
    for j, c in enumerate(ref["components"]):
        meas = [float(measured_rotation(c["direction_deg"], r["components"][j]["direction_deg"])) for r in rotated]
        comps.append({
            "index": j,
            "kind": c["kind"],
            "kind_rotated": [r["components"][j]["kind"] for r in rotated],
            "measured_rotation_deg": meas,
            "error_deg": [float(wrap180(m - a)) for m, a in zip(meas, angles_deg)],
        })
    body = []
    for r, a in zip(rotated, angles_deg):
        d = float(np.mod(r["body_axis_deg"] - ref["body_axis_deg"] + 90.0, 180.0) - 90.0)
        body.append(d)
    return {"angles_deg": [float(a) for a in angles_deg], "body_axis_rotation_deg": body,
            "body_axis_error_deg": [float(axis_angle_between(b, a)) for b, a in zip(body, angles_deg)],
            "components": comps}


def compare_pcas(pca_a: CellPCA, maps_a: np.ndarray, pca_b: CellPCA, maps_b: np.ndarray,
                 same_features: bool) -> dict:
    """Subspace similarity of two PCAs (see ``analysis.representation.compare``).

    maps_a, maps_b: [H, W, k] PC maps of one grid each (same grid size).
    same_features: both PCAs' features mean the same (same model): loading angles are then
    reported as meaningful.
    """
    angles, n = map_angles_deg(maps_a, maps_b)
    return {
        "map_angles_deg": angles.tolist(),
        "n_common_cells": n,
        "loading_angles_deg": loading_angles_deg(pca_a.components, pca_b.components).tolist(),
        "loading_angles_meaningful": bool(same_features),
        "explained_variance_ratio_b": pca_b.explained_variance_ratio.tolist(),
    }


def thresholds_dict(thresholds: AxisThresholds) -> dict:
    return asdict(thresholds)
