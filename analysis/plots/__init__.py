"""Figures of the PCA dissection (matplotlib, object API: no pyplot state, no display).

Every function returns a ``matplotlib.figure.Figure``; ``png_bytes`` renders one. Maps are
drawn as stored (row 0 at the top), so an arrow of direction theta is drawn as
(d_col, d_row) = (cos theta, -sin theta): counter-clockwise as viewed, 0 = right.
Signed scores use a diverging map (RdBu_r, white = 0, symmetric limits) with a colour bar.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from nca.model import to_rgb

from analysis.representation.axes import direction_vector

DIVERGING = "RdBu_r"
KIND_SHORT = {"along-axis": "along", "across-axis": "across", "radial": "radial", "none": "none"}
COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def rgba_on_white(states: np.ndarray) -> np.ndarray:
    """[..., H, W, C] premultiplied state -> [..., H, W, 3] RGB on white (``nca.to_rgb``)."""
    return np.clip(np.asarray(to_rgb(states)), 0.0, 1.0)


def _colour(j: int) -> str:
    return COLOURS[j % len(COLOURS)]


def component_label(c: dict) -> str:
    """Short label: kind, angle, association, R^2 (what the map's title shows)."""
    kind = c["kind"]
    if kind in ("along-axis", "across-axis"):
        return (f"{KIND_SHORT[kind]} {c['direction_deg']:.0f}\u00b0 "
                f"\u03c1={c['association']:.2f} R\u00b2={c['linear_r2']:.2f}")
    if kind == "radial":
        return f"radial \u03c1r={c['radial_association']:+.2f}"
    return f"none (\u03c1={c['association']:.2f}, \u03c1r={c['radial_association']:+.2f})"


def _draw_direction(ax, c: dict, centroid_rc, length: float) -> None:
    r0, c0 = centroid_rc
    if c["kind"] in ("along-axis", "across-axis"):
        du, dv = direction_vector(c["direction_deg"]) * length
        ax.annotate("", xy=(c0 + du, r0 - dv), xytext=(c0 - du, r0 + dv),
                    arrowprops=dict(arrowstyle="-|>", color="k", lw=1.8, mutation_scale=14))
    elif c["kind"] == "radial":
        ax.plot([c0], [r0], marker="o", ms=10, mfc="none", mec="k", mew=1.5)
        ax.plot([c0], [r0], marker="o", ms=22, mfc="none", mec="k", mew=1.0, ls="")


def _draw_axis(ax, body: dict, length: float) -> None:
    r0, c0 = body["body_centroid_rc"]
    du, dv = direction_vector(body["body_axis_deg"]) * length
    ax.plot([c0 - du, c0 + du], [r0 + dv, r0 - dv], "k--", lw=1.2)


def _body_length(alpha: np.ndarray, threshold: float) -> float:
    n = float((alpha > threshold).sum())
    return 0.45 * np.sqrt(max(n, 1.0) / np.pi) * 1.6


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def fig_pc_maps(states: np.ndarray, maps: np.ndarray, bodies: list[dict], row_labels: list[str],
                threshold: float = 0.1, max_components: int = 6) -> Figure:
    """Rows: grids (steps, models...); columns: the RGB image (dashed: body long axis), then
    PC maps with arrows (axial: direction of increase) or rings (radial).

    states: [R, H, W, C]; maps: [R, H, W, k]; bodies: R ``describe_body`` dicts.
    Colour limits are shared per component across rows (symmetric, 99th percentile of |score|).
    """
    rows = len(bodies)
    k = min(maps.shape[-1], max_components)
    fig = Figure(figsize=(1.9 * (k + 1) + 0.4, 2.15 * rows + 0.6))
    grid = fig.add_gridspec(rows + 1, k + 1, height_ratios=[1] * rows + [0.06], hspace=0.35, wspace=0.08)
    rgb = rgba_on_white(states)
    for r in range(rows):
        length = _body_length(states[r, ..., 3], threshold)
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(rgb[r], interpolation="nearest")
        _draw_axis(ax, bodies[r], length)
        ax.set_title(f"{row_labels[r]}\naxis {bodies[r]['body_axis_deg']:.0f}\u00b0 "
                     f"(elong. {bodies[r]['body_elongation']:.2f})", fontsize=7)
        _clean(ax)
    for j in range(k):
        lim = np.nanpercentile(np.abs(maps[..., j]), 99) if np.isfinite(maps[..., j]).any() else 1.0
        lim = float(lim) if lim > 0 else 1.0
        im = None
        for r in range(rows):
            ax = fig.add_subplot(grid[r, j + 1])
            ax.set_facecolor("#d9d9d9")  # dead cells (NaN) show grey
            im = ax.imshow(maps[r, ..., j], cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            c = bodies[r]["components"][j]
            _draw_direction(ax, c, bodies[r]["body_centroid_rc"], _body_length(states[r, ..., 3], threshold))
            ax.set_title(f"PC{j + 1} ({c['explained_variance_ratio']:.0%})\n{component_label(c)}", fontsize=6.5)
            _clean(ax)
        cax = fig.add_subplot(grid[rows, j + 1])
        fig.colorbar(im, cax=cax, orientation="horizontal")
        cax.tick_params(labelsize=6)
    return fig


def fig_profiles(maps: np.ndarray, alpha: np.ndarray, body: dict, threshold: float = 0.1,
                 max_components: int = 6) -> Figure:
    """Each component's score against position: along its found direction (axial and none;
    x = signed distance from the centroid along direction_deg, cells) or against distance
    from the centroid (radial). Line: the best monotone fit (``axes.monotone_fit``), whose
    R^2 is ``monotone_r2``. maps: [H, W, k]; alpha: [H, W]."""
    from analysis.representation.axes import monotone_fit

    k = min(maps.shape[-1], max_components)
    rows, cols = np.nonzero(alpha > threshold)
    r0, c0 = body["body_centroid_rc"]
    u, v = cols - c0, -(rows - r0)
    fig = Figure(figsize=(2.6 * k, 2.6))
    for j in range(k):
        c = body["components"][j]
        y = maps[rows, cols, j]
        ax = fig.add_subplot(1, k, j + 1)
        if c["kind"] == "radial":
            x = np.hypot(u, v)
            ax.set_xlabel("distance from centroid (cells)", fontsize=7)
            sign = 1.0 if c["radial_association"] > 0 else -1.0  # increasing or decreasing
            fit = sign * monotone_fit(sign * y, x)
        else:
            d = direction_vector(c["direction_deg"])
            x = u * d[0] + v * d[1]
            ax.set_xlabel(f"position along {c['direction_deg']:.0f}\u00b0 (cells)", fontsize=7)
            fit = monotone_fit(y, x)
        o = np.argsort(x)
        ax.plot(x, y, ".", ms=2, color=_colour(j), alpha=0.5)
        ax.plot(x[o], fit[o], "k-", lw=1.2)
        ax.set_title(f"PC{j + 1}: {component_label(c)}", fontsize=6.5)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def fig_emergence(growth: dict, regrowth: dict | None, min_association: float,
                  damage_step: int | None = None) -> Figure:
    """Over development (and regrowth after damage): each fixed component's directional
    association, radial association, direction and variance share."""
    series = [growth] + ([regrowth] if regrowth is not None else [])
    k = len(growth["components"])
    fig = Figure(figsize=(11, 7))
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
    for j in range(k):
        col = _colour(j)
        for si, s in enumerate(series):
            c = s["components"][j]
            lab = f"PC{j + 1}" if si == 0 else None
            axes[0].plot(s["steps"], c["association"], "-", color=col, label=lab)
            axes[1].plot(s["steps"], np.abs(c["radial_association"]), "-", color=col, label=lab)
            axial = np.array([kd in ("along-axis", "across-axis") for kd in c["kind"]])
            d = np.array(c["direction_deg"], float)
            axes[2].plot(np.array(s["steps"])[axial], d[axial], ".", color=col, label=lab)
            axes[3].plot(s["steps"], c["variance_fraction"], "-", color=col, label=lab)
    axes[0].set_title("directional rank association \u03c1 (max over \u03b8)")
    axes[1].set_title("|radial rank association|")
    axes[2].set_title("direction of axial components (deg, 0 = right, 90 = up)")
    axes[3].set_title("share of that step's variance")
    for ax in axes[:2]:
        ax.axhline(min_association, color="k", ls=":", lw=1)
        ax.set_ylim(0, 1)
    axes[2].set_ylim(0, 360)
    axes[2].set_yticks([0, 90, 180, 270, 360])
    for ax in axes:
        ax.set_xlabel("step")
        if damage_step is not None:
            ax.axvline(damage_step, color="k", lw=1.5, alpha=0.6)
    axes[0].legend(fontsize=7, ncol=2)
    if damage_step is not None:
        axes[0].text(damage_step, 0.02, " damage", fontsize=8)
    fig.tight_layout()
    return fig


def fig_rotation(rotation: dict, states: np.ndarray, maps: np.ndarray, bodies: list[dict],
                 component: int, threshold: float = 0.1) -> Figure:
    """Left: measured rotation of each component vs the perception rotation (identity line
    = the component rotates with the body). Right: the rotated bodies and one component's
    map. states/maps/bodies: reference first, then one per angle."""
    angles = [0.0] + list(rotation["angles_deg"])
    n = len(angles)
    fig = Figure(figsize=(4.2 + 2.0 * n, 3.6))
    grid = fig.add_gridspec(2, n + 2, width_ratios=[2.2, 0.3] + [1] * n)
    ax = fig.add_subplot(grid[:, 0])
    a = np.array(rotation["angles_deg"])
    ax.plot([0, max(a.max(), 1)], [0, max(a.max(), 1)], "k:", lw=1, label="rotates with body")
    ax.plot(a, np.mod(rotation["body_axis_rotation_deg"], 180.0), "ks", mfc="none", label="body axis (mod 180)")
    for c in rotation["components"]:
        j = c["index"]
        meas = np.mod(np.array(c["measured_rotation_deg"]), 360.0)
        style = "o-" if c["kind"] in ("along-axis", "across-axis") else "x:"
        ax.plot(a, meas, style, color=_colour(j), label=f"PC{j + 1} ({KIND_SHORT[c['kind']]})")
    ax.set_xlabel("perception rotation \u03b8 (deg)")
    ax.set_ylabel("measured rotation (deg, mod 360)")
    ax.set_ylim(-5, 365)
    ax.legend(fontsize=6.5)
    rgb = rgba_on_white(states)
    lim = float(np.nanpercentile(np.abs(maps[..., component]), 99)) or 1.0
    for i in range(n):
        length = _body_length(states[i, ..., 3], threshold)
        top = fig.add_subplot(grid[0, i + 2])
        top.imshow(rgb[i], interpolation="nearest")
        _draw_axis(top, bodies[i], length)
        top.set_title(f"\u03b8 = {angles[i]:.0f}\u00b0", fontsize=8)
        _clean(top)
        bot = fig.add_subplot(grid[1, i + 2])
        bot.set_facecolor("#d9d9d9")
        bot.imshow(maps[i, ..., component], cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
        c = bodies[i]["components"][component]
        _draw_direction(bot, c, bodies[i]["body_centroid_rc"], length)
        bot.set_title(f"PC{component + 1}: {c['direction_deg']:.0f}\u00b0", fontsize=7)
        _clean(bot)
    fig.tight_layout()
    return fig


def fig_comparison(comparisons: list[dict]) -> Figure:
    """Principal angles between the reference PCA and each compared PCA (map space; loading
    space where the features mean the same)."""
    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, c in enumerate(comparisons):
        x = np.arange(1, len(c["map_angles_deg"]) + 1)
        ax1.plot(x, c["map_angles_deg"], "o-", color=_colour(i), label=c["label"])
        style = "o-" if c["loading_angles_meaningful"] else "x:"
        ax2.plot(x, c["loading_angles_deg"], style, color=_colour(i), label=c["label"])
    if comparisons and "loading_angles_null_median_deg" in comparisons[0]:
        null = comparisons[0]["loading_angles_null_median_deg"]
        ax2.plot(np.arange(1, len(null) + 1), null, "-", color="0.6", lw=3, alpha=0.6,
                 label="random subspaces (median)")
    ax1.set_title("PC-map subspaces (cells alive in both)")
    ax2.set_title("loading subspaces (dotted: different models)")
    for ax in (ax1, ax2):
        ax.set_xlabel("principal angle #")
        ax.set_ylabel("degrees")
        ax.set_ylim(0, 92)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- dissection II
# Knockouts, self-repair, damage assays, training dynamics (docs/interventions.md). Several
# models (seeds) are drawn as a bar (mean) with an error bar (sd) and one dot per model.


def _spread_bars(ax, labels: list[str], values: np.ndarray, horizontal: bool = True, colour="tab:blue") -> None:
    """values: [models, n] -> bars of the mean, sd error bars (if > 1 model), one dot per model."""
    values = np.atleast_2d(np.asarray(values, float))
    pos = np.arange(len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, 0)
        sd = np.nanstd(values, 0) if len(values) > 1 else None
    if horizontal:
        ax.barh(pos, mean, xerr=sd, color=colour, alpha=0.55, capsize=2)
        for row in values:
            ax.plot(row, pos, "k.", ms=3)
        ax.set_yticks(pos, labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.6)
    else:
        ax.bar(pos, mean, yerr=sd, color=colour, alpha=0.55, capsize=2)
        for row in values:
            ax.plot(pos, row, "k.", ms=3)
        ax.set_xticks(pos, labels, fontsize=7, rotation=45, ha="right")
        ax.axhline(0, color="k", lw=0.6)


def fig_knockout_effects(atlases: list[dict], conditions=("growth", "persistence", "regeneration")) -> Figure:
    """Single-knockout effects per condition; atlases: one ``knockouts.atlas`` dict per model
    (same labels). 0 = as intact, 1 = as an empty grid."""
    fig = Figure(figsize=(3.3 * len(conditions), 0.22 * len(atlases[0]["conditions"]["growth"]["labels"]) + 1.4))
    for i, name in enumerate(conditions):
        ax = fig.add_subplot(1, len(conditions), i + 1)
        c0 = atlases[0]["conditions"][name]
        vals = np.array([a["conditions"][name]["effect"] for a in atlases])
        labels = [lab if lab.startswith("PC") else f"ch {lab}" for lab in c0["labels"]]
        _spread_bars(ax, labels, vals, colour=_colour(i))
        ax.axvline(1.0, color="k", ls=":", lw=0.8)
        ax.set_title(f"{name} ({c0['steps']} steps)", fontsize=9)
        ax.set_xlabel("effect (1 = as empty)")
    fig.tight_layout()
    return fig


def fig_knockout_gallery(images: dict, labels: list[str], conditions=("growth", "persistence", "regeneration")) -> Figure:
    """Final bodies: one row per condition, first the start (for persistence/regeneration),
    the intact reference, then each single knockout. images: ``atlas(...)["images"]``."""
    n = len(labels) + 2
    fig = Figure(figsize=(0.9 * n + 0.5, 1.05 * len(conditions) + 0.3))
    for r, name in enumerate(conditions):
        im = images[name]
        tiles = [("start", im["start"]), ("intact", im["reference"])] + list(zip(labels, im["singles"]))
        for j, (lab, rgba) in enumerate(tiles):
            ax = fig.add_subplot(len(conditions), n, r * n + j + 1)
            rgba = np.asarray(rgba)
            ax.imshow(np.clip(rgba[..., :3] + 1.0 - rgba[..., 3:4], 0, 1), interpolation="nearest")
            ax.set_title(lab if lab in ("start", "intact") or lab.startswith("PC") else f"ch {lab}", fontsize=6)
            _clean(ax)
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def fig_epistasis(cond: dict, channels: list[int]) -> Figure:
    """Left: knockout effects (singles on the diagonal, pairs off it); right: epistasis
    effect(ij) - effect(i) - effect(j), squares around pairs flagged redundant."""
    n = len(channels)
    single = np.array(cond["effect"][:n], float)
    eff = np.full((n, n), np.nan)
    idx = {c: i for i, c in enumerate(channels)}
    for lab, e in zip(cond["pairs"]["labels"], cond["pairs"]["effect"]):
        a, b = (idx[int(x)] for x in lab.split("+"))
        eff[a, b] = eff[b, a] = e
    eff[np.arange(n), np.arange(n)] = single
    epi = np.array(cond["epistasis"], float)
    fig = Figure(figsize=(10, 4.4))
    ticks = [str(c) for c in channels]
    # colour scales stop at 2 (and -2): an exploding knockout (effect 10) would wash out the rest
    e_max = float(np.clip(np.nanmax(eff), 1.0, 2.0))
    p_max = float(np.clip(np.nanmax(np.abs(epi)), 0.1, 2.0))
    for k, (mat, title, cmap, lim) in enumerate([
            (eff, "knockout effect (diagonal: single)", "magma_r", (0.0, e_max)),
            (epi, "epistasis  e(ij) - e(i) - e(j)", DIVERGING, (-p_max, p_max))]):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.set_facecolor("#d9d9d9")
        im = ax.imshow(np.clip(mat, lim[0], lim[1]), cmap=cmap, vmin=lim[0], vmax=lim[1], interpolation="nearest")
        for i in range(n):
            for j in range(n):
                if np.isfinite(mat[i, j]) and abs(mat[i, j]) > lim[1]:
                    ax.text(j, i, f"{mat[i, j]:.0f}", ha="center", va="center", fontsize=5, color="w")
        ax.set_xticks(range(n), ticks, fontsize=7)
        ax.set_yticks(range(n), ticks, fontsize=7)
        ax.set_xlabel("channel")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        if k == 1:
            for r in cond.get("redundant", []):
                a, b = (idx[c] for c in r["pair"])
                for (y, x) in ((a, b), (b, a)):
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="k", lw=1.6))
    fig.tight_layout()
    return fig


def fig_spread(names: list[str], values: np.ndarray, title: str, ylabel: str = "") -> Figure:
    """One summary measure per model: values [models, n] over ``names`` -> mean +- sd, dots."""
    fig = Figure(figsize=(max(3.5, 0.7 * len(names) + 1.5), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    _spread_bars(ax, names, values, horizontal=False)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def _finish_curves(fig: Figure, ax, title: str, xlabel: str, ylabel: str) -> Figure:
    """The end of a one-panel curves figure: title, axis labels, legend, tight layout."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fig_curves(x, curves: np.ndarray, labels: list[str], title: str, xlabel: str, ylabel: str,
               logx: bool = False, logy: bool = False, vline=None) -> Figure:
    """Curves with spread: curves [models, series, len(x)] -> per series the mean line, a
    +-sd band (several models) and thin per-model lines."""
    curves = np.asarray(curves, float)
    if curves.ndim == 2:
        curves = curves[None]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(x)
    for s, lab in enumerate(labels):
        col = _colour(s)
        with warnings.catch_warnings():  # all-NaN columns (not measurable there) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(curves[:, s], 0)
            sd = np.nanstd(curves[:, s], 0)
        ax.plot(x, m, "-", color=col, lw=1.8, label=lab)
        if len(curves) > 1:
            ax.fill_between(x, m - sd, m + sd, color=col, alpha=0.18, lw=0)
            for row in curves[:, s]:
                ax.plot(x, row, "-", color=col, lw=0.5, alpha=0.5)
    if logx:
        ax.set_xscale("symlog", linthresh=1)
    if logy:
        ax.set_yscale("log")
    if vline is not None:
        ax.axvline(vline, color="k", lw=1, alpha=0.6)
    return _finish_curves(fig, ax, title, xlabel, ylabel)


def fig_damage_gallery(snapshots: dict, kinds: list[str], steps_shown: list[int]) -> Figure:
    """Rows: damage kinds (and the control); columns: right after the damage, half-way,
    end of regrowth. snapshots: kind -> RGBA [3, H, W, 4] (replicate 0)."""
    rows = list(kinds) + ["control"]
    fig = Figure(figsize=(1.25 * 3 + 0.6, 1.25 * len(rows) + 0.3))
    for r, kind in enumerate(rows):
        for j in range(3):
            ax = fig.add_subplot(len(rows), 3, r * 3 + j + 1)
            rgba = np.asarray(snapshots[kind][j])
            ax.imshow(np.clip(rgba[..., :3] + 1.0 - rgba[..., 3:4], 0, 1), interpolation="nearest")
            if r == 0:
                ax.set_title(f"+{steps_shown[j]} steps", fontsize=7)
            if j == 0:
                ax.set_ylabel(kind, fontsize=7)
            _clean(ax)
    fig.tight_layout(pad=0.3)
    return fig


# --------------------------------------------------------------------------- intervals (issue 13)
# Figures whose error bars are 95 % intervals over replicates (``analysis.stats``): the
# dicts carry {mean | value, lo, hi, n}.


def _ci_values(cis: list[dict | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval dicts {mean | value, lo, hi} -> (value, lo, hi) arrays, NaN where missing."""
    def get(c, k):
        v = (c.get(k) if k != "mean" else c.get("mean", c.get("value"))) if c else None
        return np.nan if v is None else float(v)

    return tuple(np.array([get(c, k) for c in cis]) for k in ("mean", "lo", "hi"))


def ci_arrays(cis: list[dict | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval dicts -> (mean, lo, hi) arrays for bands: NaN where the value is missing; lo
    and hi fall back to the value where the interval is missing (a band of zero width)."""
    m, lo, hi = _ci_values(cis)
    return m, np.where(np.isfinite(lo), lo, m), np.where(np.isfinite(hi), hi, m)


def ci_yerr(cis: list[dict | None]) -> tuple[np.ndarray, np.ndarray]:
    """Interval dicts -> (values, yerr [2, n]) for errorbar; missing intervals get no bar."""
    v, lo, hi = _ci_values(cis)
    err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
    return v, np.maximum(err, 0.0)


def fig_ci_bars(labels: list[str], groups: dict[str, list[dict]], title: str, ylabel: str,
                hline=None, horizontal: bool = False) -> Figure:
    """Grouped bars with 95 % interval error bars. groups: name -> one interval dict per label."""
    k = max(1, len(groups))
    n = len(labels)
    width = 0.8 / k
    if horizontal:
        fig = Figure(figsize=(5.5, 0.22 * n * max(1, k / 2) + 1.4))
    else:
        fig = Figure(figsize=(max(4.0, 0.35 * n * k + 1.5), 3.4))
    ax = fig.add_subplot(1, 1, 1)
    pos = np.arange(n)
    for g, (name, cis) in enumerate(groups.items()):
        v, err = ci_yerr(cis)
        off = pos + (g - (k - 1) / 2) * width
        if horizontal:
            ax.barh(off, v, width, xerr=err, color=_colour(g), alpha=0.6, capsize=1.5, label=name)
        else:
            ax.bar(off, v, width, yerr=err, color=_colour(g), alpha=0.6, capsize=1.5, label=name)
    if horizontal:
        ax.set_yticks(pos, labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.6)
        if hline is not None:
            ax.axvline(hline, color="k", ls=":", lw=0.8)
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(pos, labels, fontsize=7, rotation=45 if n > 8 else 0, ha="right" if n > 8 else "center")
        ax.axhline(0, color="k", lw=0.6)
        if hline is not None:
            ax.axhline(hline, color="k", ls=":", lw=0.8)
        ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_curves_ci(x, curves: dict[str, dict], title: str, xlabel: str, ylabel: str) -> Figure:
    """curves: name -> {"mean", "lo", "hi"} (lists over x) -> lines with 95 % bands."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(x)
    for s, (name, c) in enumerate(curves.items()):
        col = _colour(s)
        m = np.array(c["mean"], float)
        ax.plot(x, m, "-", color=col, lw=1.6, label=name)
        lo, hi = np.array(c["lo"], float), np.array(c["hi"], float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=col, alpha=0.18, lw=0)
    return _finish_curves(fig, ax, title, xlabel, ylabel)


def fig_repair_hydra(rep: dict) -> Figure:
    """Self-repair after McGrath et al. 2023 (``analysis.causal.repair``): per channel the direct
    (other hidden channels and life masks frozen at the clean run), total and pulse effects
    with 95 % bands over replicates; bottom: the repair fraction (direct - total) / direct at
    each reported horizon, with intervals."""
    chans = [p["channel"] for p in rep["per_channel"]]
    n = len(chans)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(2.1 * cols, 1.8 * rows + 2.6))
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1] * rows + [1.4])
    h = np.array(rep["h"])
    top = max(max(np.nanmax(np.array(p["curves"][k]["mean"], float)) for k in ("direct", "total"))
              for p in rep["per_channel"])
    for i, p in enumerate(rep["per_channel"]):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        for name, style, col in (("direct", "--", "k"), ("total", "-", "tab:red"), ("pulse", "-", "tab:blue")):
            c = p["curves"][name]
            ax.plot(h, c["mean"], style, color=col, lw=1.1, label=name)
            lo, hi = np.array(c["lo"], float), np.array(c["hi"], float)
            if np.isfinite(lo).any():
                ax.fill_between(h, lo, hi, color=col, alpha=0.15, lw=0)
        ax.set_ylim(0, max(top, 1e-9) * 1.05)
        ax.set_title(f"ch {p['channel']}", fontsize=8)
        ax.tick_params(labelsize=6)
        if i == 0:
            ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[rows, :])
    hz = rep["horizons"]
    width = 0.8 / len(hz)
    for j, hh in enumerate(hz):
        v, err = ci_yerr([p["at"][j]["repair_fraction"] for p in rep["per_channel"]])
        ax.bar(np.arange(n) + (j - (len(hz) - 1) / 2) * width, v, width, yerr=err, capsize=1.2,
               color=_colour(j), alpha=0.65, label=f"h = {hh}")
    ax.set_xticks(np.arange(n), [f"ch {c}" for c in chans], fontsize=7)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("repair fraction")
    ax.legend(fontsize=6, ncol=len(hz))
    fig.tight_layout()
    return fig


def fig_unit_atlas(units: dict) -> Figure:
    """Left: single knockout effect of every hidden unit, sorted, with 95 % intervals; right:
    Segre's scaled epistasis of the tested pairs (sorted, intervals), -1 = a backup pair."""
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    m = np.array(units["effect"]["mean"], float)
    lo, hi = np.array(units["effect"]["lo"], float), np.array(units["effect"]["hi"], float)
    o = np.argsort(-m)
    x = np.arange(len(m))
    ax.errorbar(x, m[o], yerr=np.maximum(np.nan_to_num(np.vstack([m[o] - lo[o], hi[o] - m[o]])), 0), fmt=".",
                ms=3, lw=0.7, color="tab:blue")
    ax.axhline(0.1, color="k", ls=":", lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("hidden unit (sorted by effect)")
    ax.set_ylabel("single knockout effect")
    ax.set_title(f"{units['units']} units, {units['condition']} ({units['steps']} steps); dotted: eligibility",
                 fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    r = units["redundancy"]
    se = sorted(((p["scaled_epistasis"], p["pair"]) for p in r["pairs"] if p["scaled_epistasis"]["mean"] is not None),
                key=lambda t: t[0]["mean"])
    if se:
        v, err = ci_yerr([s for s, _ in se])
        ax.errorbar(np.arange(len(v)), v, yerr=err, fmt=".", ms=3, lw=0.7, color="tab:red")
    ax.axhline(-1, color="k", ls=":", lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylim(-1.1, min(3.0, max(1.1, ax.get_ylim()[1])))  # > 3: suppression on near-zero singles (noise)
    ax.set_xlabel("tested pair (sorted)")
    ax.set_ylabel("scaled epistasis (Segre 2005)")
    ax.set_title(f"{r['verdict']}", fontsize=8)
    fig.tight_layout()
    return fig
