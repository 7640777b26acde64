"""Pictures, tables and the HTML page of the selfish-cells report (scripts/selfish.py).

Frames colour each living cell by its lineage or clone (``lineage_frame``,
``clone_frame``); GIFs are written with imageio; plots with matplotlib (Agg) as PNG bytes
(``png``) that the script writes next to ``index.html``. Also the analyses that build on
``analysis/`` (``axis_components``) and the somatic-evolution figures: Muller plot of clone
frequencies, clone-size distributions, the mutant-invasion fitness landscape, bands with
95% intervals over seeds. Functions return bytes/strings/figures; the script writes them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nca.model import to_rgb

# tab10: lineage 0 blue, 1 red (the mutant in an invasion), 2 green, ...
PALETTE = np.array([[0.12, 0.47, 0.71], [0.84, 0.15, 0.16], [0.17, 0.63, 0.17], [1.0, 0.50, 0.05],
                    [0.58, 0.40, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50]])


def lineage_frame(state: np.ndarray, ids: np.ndarray, tint: float = 0.5, scale: int = 1) -> np.ndarray:
    """state [H, W, C] + ids [H, W] -> uint8 RGB [H*scale, W*scale, 3]: the cells' colour
    on white, living cells blended ``tint`` of the way to their lineage's palette colour."""
    rgb = np.asarray(to_rgb(np.asarray(state, np.float32)))
    ids = np.asarray(ids)
    colour = PALETTE[np.clip(ids, 0, None) % len(PALETTE)]
    rgb = np.where((ids >= 0)[..., None], (1 - tint) * rgb + tint * colour, rgb)
    img = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return img.repeat(scale, 0).repeat(scale, 1)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid_figure(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], cmap=None, vmin=None, vmax=None):
    """rows: (row label, [(column title, image)]) -> one figure; RGB images or scalar maps
    (with ``cmap``, a shared colour scale and a colour bar)."""
    plt = _plt()
    ncol = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.9 * ncol, 1.9 * len(rows)), squeeze=False)
    im = None
    for r, (label, cells) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            title, img = cells[c]
            im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if cmap is not None and im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    return fig


def table(header: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def img(uri: str, alt: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{w}>'


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page from (heading, html body) sections: the reports' one page
    head and style (``analysis.reports.html.page_head``); notes are its ``cap`` captions."""
    from analysis.reports.html import page_head

    body = "".join(f"<h2>{html.escape(h)}</h2>\n" + b.replace("class='note'", "class='cap'") + "\n"
                   for h, b in sections)
    return (page_head(title) + "<style>img{margin:4px;image-rendering:pixelated}</style>"  # pixel-art frames
            f"<h1>{html.escape(title)}</h1>\n{body}</body></html>")


def png(fig) -> bytes:
    """PNG bytes of a pyplot figure (``analysis.plots.png_bytes``), closed afterwards."""
    import matplotlib.pyplot as plt

    from analysis.plots import png_bytes

    data = png_bytes(fig)
    plt.close(fig)
    return data


# --------------------------------------------------------------------------- body axes


def axis_components(states: np.ndarray, times: np.ndarray) -> dict:
    """The body-axis summary of one variant: the PCA report's default analysis
    (``analysis.representation.dissect.analyse_steps``: hidden channels, one PCA pooled over four steps
    spread over the second half of ``times``, where a body has formed), measured at the last.

    states: [T, H, W, C] recorded after the steps ``times`` [T]. Returns {"status": "ok",
    "step", "body_axis_deg", "components": [first 3, with index, explained_variance_ratio,
    kind, direction_deg, association, radial_association, angle_to_body_axis_deg]}, or
    {"status": "unavailable", "reason"} when there is too little body to analyse.
    """
    from analysis.representation.dissect import analyse_steps
    from nca.errors import NCAError

    idx = sorted({max(0, len(times) * k // 8 - 1) for k in (5, 6, 7, 8)})
    grids = np.asarray(states)[idx][:, None]  # [S, 1, H, W, C]
    try:
        _, _, res = analyse_steps([int(times[i]) for i in idx], grids[..., 4:], grids[..., 3])
    except NCAError as e:
        return {"status": "unavailable", "reason": str(e)}
    last = res["steps"][-1]
    keep = ("index", "explained_variance_ratio", "kind", "direction_deg", "association",
            "radial_association", "angle_to_body_axis_deg")
    return {"status": "ok", "step": last["step"], "body_axis_deg": last["body_axis_deg"],
            "components": [{k: c[k] for k in keep} for c in last["components"][:3]]}


# --------------------------------------------------------------------------- somatic evolution


def clone_colours(n: int) -> np.ndarray:
    """n distinct-ish colours: clone 0 (the founder / host) grey-blue, the rest from a
    golden-angle walk around the hue circle. -> [n, 3] in [0, 1]."""
    import colorsys

    out = [(0.55, 0.65, 0.8)]
    for i in range(1, n):
        h = (i * 0.618033988749895) % 1.0
        out.append(colorsys.hsv_to_rgb(h, 0.85, 0.9))
    return np.asarray(out[:n])


def clone_frame(state: np.ndarray, ids: np.ndarray, n_clones: int, scale: int = 3) -> np.ndarray:
    """The body with its clones coloured: state [H, W, C], ids [H, W] -> uint8 RGB; alive
    cells take their clone's colour (``clone_colours``), shaded by their alpha."""
    cols = clone_colours(max(1, n_clones))
    ids = np.asarray(ids)
    a = np.clip(np.asarray(state)[..., 3], 0, 1)[..., None]
    rgb = np.where((ids >= 0)[..., None], cols[np.clip(ids, 0, len(cols) - 1)] * (0.4 + 0.6 * a), 1.0)
    img = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return img.repeat(scale, 0).repeat(scale, 1)


def descent_order(parent: np.ndarray, n: int) -> list[int]:
    """Clones 0..n-1 in depth-first order of the descent tree (children after their
    parent, in birth order): the stacking order of a Muller plot, so that a clone's
    descendants sit next to it."""
    children: dict[int, list[int]] = {}
    roots = []
    for c in range(n):
        p = int(parent[c])
        (children.setdefault(p, []) if p >= 0 else roots).append(c)
    order, stack = [], list(reversed(roots))
    while stack:
        c = stack.pop()
        order.append(c)
        stack.extend(reversed(children.get(c, [])))
    return order


def muller_figure(times: np.ndarray, counts: np.ndarray, parent: np.ndarray, title: str, top: int = 40):
    """A Muller-style plot: clone frequencies [T, M] stacked in descent order
    (``descent_order``), each clone's band coloured by ``clone_colours``; clones that never
    reach the ``top`` largest peaks are merged into their nearest shown ancestor."""
    plt = _plt()
    n = int((counts.sum(0) > 0).nonzero()[0].max() + 1) if counts.any() else 1
    c = counts[:, :n].astype(float)
    peak = c.max(0)
    shown = set(np.argsort(-peak)[:top].tolist()) | {0}
    merged = c.copy()
    for k in range(n - 1, 0, -1):  # children before parents (ids grow with birth)
        if k not in shown:
            p = int(parent[k])
            if p >= 0:
                merged[:, p] += merged[:, k]
                merged[:, k] = 0
    order = [k for k in descent_order(parent, n) if k in shown]
    total = np.maximum(c.sum(1, keepdims=True), 1)
    freq = merged[:, order] / total
    cols = clone_colours(n)[order]
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.stackplot(times, freq.T, colors=cols, linewidth=0)
    ax.set_xlim(times[0], times[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("CA step")
    ax.set_ylabel("clone frequency")
    ax.set_title(title, fontsize=10)
    return fig


def band_figure(panels, ylabel: str, xlabel: str = "CA step", log: bool = False):
    """panels: [(title, {label: (x [T], values [S, T])})] -> the mean with a 95% t-band over
    seeds and a thin line per seed."""
    from analysis.stats import mean_ci_axis

    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.2), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for j, (label, (x, v)) in enumerate(series.items()):
            v = np.asarray(v, float)
            c = PALETTE[j % len(PALETTE)]
            for row in v:
                ax.plot(x, row, color=c, alpha=0.25, lw=0.7)
            m = v.mean(0)
            if len(v) > 1:  # the 95 % t band over seeds (analysis.stats, the one home)
                ci = mean_ci_axis(v, axis=0)
                ax.fill_between(x, ci["lo"], ci["hi"], color=c, alpha=0.25)
            ax.plot(x, m, color=c, lw=2, label=f"{label} (n={len(v)})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("symlog", linthresh=1e-4)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def clone_size_figure(sizes: dict[str, np.ndarray], title: str):
    """Complementary cumulative distribution of final clone sizes, one curve per arm
    (log-log): P(size >= s) over derived clones pooled across seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for j, (label, v) in enumerate(sizes.items()):
        v = np.sort(np.asarray(v))
        if len(v) == 0:
            continue
        ccdf = 1.0 - np.arange(len(v)) / len(v)
        ax.step(v, ccdf, where="post", color=PALETTE[j % len(PALETTE)], label=f"{label} ({len(v)} clones)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clone size (alive cells)")
    ax.set_ylabel("P(size >= s)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def landscape_figure(sizes, summary: dict, title: str):
    """Selection coefficient vs mutation size: mean and 95% interval of "alpha up" and of
    random gene directions (``nca.selfish.experiments.summarise_landscape``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for j, (key, label) in enumerate((("alpha_up", "alpha-up gene"), ("random", "random direction"))):
        m = np.array([summary[str(z)][key]["mean"] for z in sizes], float)
        lo = np.array([summary[str(z)][key]["lo"] if summary[str(z)][key]["lo"] is not None else np.nan for z in sizes])
        hi = np.array([summary[str(z)][key]["hi"] if summary[str(z)][key]["hi"] is not None else np.nan for z in sizes])
        x = np.asarray(sizes, float) * (1 + 0.04 * j)
        ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o-", color=PALETTE[j], capsize=3, label=label)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("symlog", linthresh=min([z for z in sizes if z > 0], default=1e-3))
    ax.set_xlabel("mutation size |genome|")
    ax.set_ylabel("selection coefficient s (log odds vs neutral twin)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def fmt_interval(d: dict, digits: int = 3) -> str:
    """An ``interval`` dict as 'mean [lo, hi] (n)'."""
    if d is None or d.get("mean") is None:
        return "n/a"
    if d.get("lo") is None:
        return f"{d['mean']:.{digits}g} (n={d['n']})"
    return f"{d['mean']:.{digits}g} [{d['lo']:.{digits}g}, {d['hi']:.{digits}g}] (n={d['n']})"


def fmt_prop(d: dict) -> str:
    if not d["n"]:
        return "n/a"
    return f"{d['k']}/{d['n']} [{d['lo']:.2f}, {d['hi']:.2f}]"


def summary_lines(result: SelfishReportResult) -> list[str]:
    """The headline numbers of the report, one line each, for the terminal: mean [95%
    interval] (n) over seeds."""
    summary = result.report
    lines = []
    for arm, d in summary.get("variants", {}).items():
        lines.append(f"variants  {arm:12s} loss {fmt_interval(d['summary']['final_loss'], 4)}")
    for host, d in summary.get("spontaneous", {}).items():
        for arm in ("mutant", "neutral", "control"):
            a = d["summary"][arm]
            lines.append(f"spontaneous {host} {arm:8s} derived share {fmt_interval(a['final_derived_share'])}, "
                         f"shape MSE {fmt_interval(a['final_loss'])}, cheater in {fmt_prop(a['seeds_with_cheater'])} seeds")
    for host, d in summary.get("landscape", {}).items():
        z = str(max(d["sizes"]))
        lines.append(f"landscape {host} s(alpha-up, size {z}) {fmt_interval(d['summary'][z]['alpha_up'])}, "
                     f"s(random) {fmt_interval(d['summary'][z]['random'])}")
    for arm, d in summary.get("policing", {}).items():
        cheat = "; ".join(f"cheater +{g} share {fmt_interval(c['final_share'])}" for g, c in d["cheater"].items())
        lines.append(f"policing  {arm:8s} shape MSE {fmt_interval(d['loss_trained_genomes'])}; {cheat}")
    return lines


# --------------------------------------------------------------------------- the report


def tojson(o):
    """numpy-free JSON values (non-finite floats -> None, floats rounded to 7 decimals):
    ``analysis.reports.html.json_safe``, the one JSON cleaner."""
    from analysis.reports.html import json_safe

    return json_safe(o, digits=7)


# Every key of report.json, documented (the page shows this table too).
JSON_KEYS = {
    "command": "the command line that made the report",
    "settings": "every setting of the run (presets with overrides)",
    "timings": "seconds per phase (null: reused from an earlier run of the same --out)",
    "variants.<arm>.per_seed.<seed>": "final_loss (RGBA MSE at eval_at), persist_loss (visible MSE at persist_steps), "
                                      "alive_end, regen_* (damage assay), loss_curve / alive_curve / shares over times",
    "variants.<arm>.summary.<metric>": "mean, lo, hi (95% t-interval over seeds), n, values",
    "axis_components.<arm>.<seed>": "the PCA body-axis summary at eval_at (analysis.representation.dissect)",
    "lineages_fair": "lineages vs the one-rule baseline (same parameters, seeds, initial weights): "
                     "difference of final_loss per seed with its interval",
    "invasion.<mutant>.<mode>": "final/peak mutant share, extinct seeds, harm (visible MSE - uninvaded twin) with intervals",
    "credit": "selfish vs private-copy gradient: per_cell relative differences, sum (relative difference of the "
              "summed gradients), cosine, per seed; summary intervals over seeds",
    "spontaneous.<host>.summary.<arm>": "arms mutant / neutral (mutation size 0) / control (no mutation): first cheater "
                                        "step, seeds with a cheater (Wilson interval), expansion, final derived share, "
                                        "largest derived clone, final loss and loss minus control, clones founded",
    "spontaneous.<host>.curves": "times, derived share and loss per seed and arm",
    "spontaneous.<host>.clone_sizes": "final sizes of the derived clones alive at the end, pooled over seeds, per arm",
    "landscape.<host>": "sizes, directions, s [seed, direction, size] (log odds of the mutant's final share vs its "
                        "neutral twin), summary per size with intervals",
    "policing.<arm>": "loss_wild / alive_wild (the body with genomes 0), loss_trained_genomes / alive_trained (with "
                      "the trained genomes), genomes [seed, K, G], cheater.<gene>: final share and final harm of a "
                      "cell whose alpha gene rises by <gene> above its clone's, per seed with intervals",
}


def _interval(values):
    from nca.selfish.experiments import interval

    return interval(values)


def _variants_section(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """Variants (cooperative, selfish credit, lineages, baseline): intervals over seeds, bodies, persistence, lineage shares.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    ccfg = settings.comparison
    results = res["variants"]
    metrics = ("final_loss", "persist_loss", "alive_end", "regen_recovery", "regen_gap")
    rows = []
    for variant, per in results.items():
        per_seed = {}
        for s, r in per.items():
            per_seed[s] = {k: r[k] for k in ("final_loss", "persist_loss", "alive_end", "regen_before",
                                             "regen_recovery", "regen_gap", "regen_hits", "regen_control",
                                             "final_loss_visible", "times", "loss_curve", "alive_curve",
                                             "fitness_curve", "shares")}
            per_seed[s]["final_shares"] = r["shares"][-1]
            per_seed[s]["coexist"] = bool((r["shares"][-1] >= 0.05).sum() >= 2)
            summary["axis_components"].setdefault(variant, {})[s] = axis_components(r["axis_states"], r["axis_times"])
        summ = {m: _interval([per_seed[s][m] for s in per]) for m in metrics}
        summary["variants"][variant] = {"per_seed": per_seed, "summary": summ}
        rows.append([variant] + [fmt_interval(summ[m], 4) for m in metrics])
    if rows:
        if "lineages" in results and "baseline" in results:
            common = sorted(set(results["lineages"]) & set(results["baseline"]))
            diff = [results["lineages"][s]["final_loss"] - results["baseline"][s]["final_loss"] for s in common]
            summary["lineages_fair"] = {"final_loss_lineages_minus_baseline": _interval(diff)}
        sections.append(("Variants: mean [95% interval] over seeds", table(
            ["variant", f"loss at step {ccfg.eval_at}", f"visible loss at step {ccfg.persist_steps}",
             f"alive fraction at {ccfg.persist_steps}", "regeneration recovery", "regeneration gap"], rows)
            + "<p class='note'>cooperative: the standard model; selfish: selfish credit (neighbour reads stopped "
              "in the gradient) -- myopic credit, not selfishness (see the credit section); lineages: "
              f"{ccfg.lineages} rules of hidden/{ccfg.lineages} units each, cut from the baseline's initial rule, "
              f"one seed cell each; baseline: one rule of the full width seeded with the same {ccfg.lineages} cells "
              "(same parameter count, same seeding, same initial weights, same budget). "
              f"Loss at step {ccfg.eval_at}: RGBA MSE. Later: visible MSE (clipped RGBA). Regeneration: "
              f"{ccfg.damage_n} damage discs at step {ccfg.damage_at}, {ccfg.regen_steps} steps to regrow; recovery 1 = "
              "as good as the undamaged twin.</p>"
            + (f"<p>lineages minus baseline, loss at step {ccfg.eval_at}: "
               f"{fmt_interval(summary['lineages_fair']['final_loss_lineages_minus_baseline'], 3)}</p>"
               if "lineages_fair" in summary else "")))
        grid_rows = []
        for variant, per in results.items():
            cells = []
            for s, r in per.items():
                t = ccfg.eval_at if ccfg.eval_at in r["snapshots"] else max(r["snapshots"])
                st, ids, _ = r["snapshots"][t]
                cells.append((f"seed {s}, t={t}", lineage_frame(st, ids)))
            grid_rows.append((variant, cells))
        sections.append(("Grown bodies (tinted by lineage)", figure("variants_bodies.png", image_grid_figure(grid_rows))))
        panels = [("visible MSE over time", {v: (per[min(per)]["times"], np.stack([r["loss_curve"] for r in per.values()]))
                                             for v, per in results.items()})]
        sections.append(("Persistence", figure("variants_loss.png", band_figure(panels, "visible MSE", log=True))))
        if "lineages" in results:
            per = results["lineages"]
            panel = [("lineage share of alive cells",
                      {f"lineage {i}": (per[min(per)]["times"], np.stack([r["shares"][:, i] for r in per.values()]))
                       for i in range(ccfg.lineages)})]
            lrows = [[s, " / ".join(f"{x:.2f}" for x in r["shares"][-1]), bool((r["shares"][-1] >= 0.05).sum() >= 2)]
                     for s, r in per.items()]
            sections.append(("Competing lineages", figure("lineage_shares.png", band_figure(panel, "share"))
                             + table(["seed", f"shares at step {ccfg.persist_steps}", "coexist (>= 2 with >= 5%)"],
                                     lrows)))


def _credit_section(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """Selfish vs private-copy gradients: selfish credit is myopic credit.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    if res["credit"]:
        per_seed = {s: {"per_cell": r["per_cell"], "sum": r["sum"], "cosine": r["cosine"],
                        "median_per_cell": float(np.median(r["per_cell"]))} for s, r in res["credit"].items()}
        summ = {"sum": _interval([r["sum"] for r in per_seed.values()]),
                "median_per_cell": _interval([r["median_per_cell"] for r in per_seed.values()]),
                "cosine": _interval([r["cosine"] for r in per_seed.values()])}
        summary["credit"] = {"per_seed": per_seed, "summary": summ}
        sections.append(("Selfish credit is myopic credit, not selfishness", (
            "<p>For cells of the trained selfish-credit organism, the selfish gradient (own fitness, neighbour reads "
            "stopped) is compared with the gradient the cell would follow if it owned a private copy of the rule "
            "(nca.selfish.credit). They differ only by the loop through the neighbours. All cells share the rule and "
            "the target, so their interests are aligned: no cell can gain by defecting.</p>"
            + table(["measure", "mean [95% interval] over seeds"],
                    [["relative difference of the summed gradients", fmt_interval(summ["sum"])],
                     ["median per-cell relative difference", fmt_interval(summ["median_per_cell"])],
                     ["cosine of the summed gradients", fmt_interval(summ["cosine"], 5)]]))))


def _invasion_section(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """Whole mutant rules invading the first host: shares, harm, overgrowth per mode.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    from nca.selfish import compare as cmp

    ccfg = settings.comparison
    if res["invasion"]:
        inv_rows = []
        for mutant, per in res["invasion"].items():
            summary["invasion"][mutant] = {}
            for mode in next(iter(per.values())):
                ps = {s: cmp.invasion_summary(r[mode]) for s, r in per.items()}
                summ = {m: _interval([ps[s][m] for s in ps]) for m in ("final_share", "peak_share", "final_harm",
                                                                       "final_overgrowth")}
                summary["invasion"][mutant][mode] = {"per_seed": ps, "summary": summ,
                                                     "curves": {s: {c: r[mode][c] for c in ("times", "mutant_share",
                                                                                            "harm")}
                                                                for s, r in per.items()}}
                inv_rows.append([mutant, mode, fmt_interval(summ["final_share"]), fmt_interval(summ["peak_share"]),
                                 f"{sum(ps[s]['extinct'] for s in ps)}/{len(ps)}", fmt_interval(summ["final_harm"]),
                                 fmt_interval(summ["final_overgrowth"])])
        panels = [(f"{m}: mutant share", {mode: (next(iter(per.values()))[mode]["times"],
                                                 np.stack([r[mode]["mutant_share"] for r in per.values()]))
                                          for mode in next(iter(per.values()))}) for m, per in res["invasion"].items()]
        sections.append((f"Cheater invasion of {settings.hosts[0]} by whole rules", (
            f"<p class='note'>Host grown {ccfg.host_grow} steps, mutant rules planted (patch radius {ccfg.patch_radius}, "
            f"one cell, or {ccfg.fraction:.0%} of cells), {ccfg.invasion_steps} steps. Harm: visible MSE minus the "
            "uninvaded twin (same fire masks).</p>"
            + table(["mutant", "mode", "final share", "peak share", "extinct (seeds)", "final harm", "final overgrowth"],
                    inv_rows)
            + figure("invasion_shares.png", band_figure(panels, "mutant share")))))


def _spontaneous_sections(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """Spontaneous cheaters per host: the mutant, neutral and control arms, Muller plots, clone sizes.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    from nca.selfish.experiments import final_clone_sizes, summarise_spontaneous

    ecfg = settings.experiment
    for hi, (name, r) in enumerate(res["spontaneous"].items()):
        summ = summarise_spontaneous(r, ecfg)
        sizes = {arm: final_clone_sizes(r[arm]) for arm in ("mutant", "neutral")}
        times = r["times"]
        curves = {arm: {"derived_share": r[arm]["counts"][..., 1:].sum(-1) / np.maximum(r[arm]["counts"].sum(-1), 1),
                        "loss": r[arm]["loss"]} for arm in ("mutant", "neutral", "control")}
        summary["spontaneous"][name] = {"summary": summ, "clone_sizes": sizes,
                                        "curves": {"times": times, **curves}}
        rows = []
        for arm in ("mutant", "neutral", "control"):
            a = summ[arm]
            rows.append([arm, fmt_prop(a["seeds_with_cheater"]), fmt_interval(a["first_cheater_step"]),
                         fmt_prop(a["seeds_with_expansion"]), fmt_interval(a["final_derived_share"]),
                         fmt_interval(a["final_largest_derived_share"]), fmt_interval(a["final_loss"], 3),
                         fmt_interval(a["clones_founded"])])
        tag = f"h{hi}"
        m = ecfg.mutation
        s0 = 0
        bodies = [(arm, [(f"seed {settings.seeds[i]}", clone_frame(r[arm]["final_states"][i], r[arm]["final_ids"][i],
                                                                    int(r[arm]["n_clones"][i])))
                         for i in range(min(4, len(settings.seeds)))]) for arm in ("mutant", "neutral")]
        sections.append((f"Spontaneous cheaters in {name}", (
            f"<p class='note'>The host grows {ecfg.steps} steps from its seed; each newborn cell founds a new clone with "
            f"probability {m.mutation_rate} (genome = parent's + N(0, {m.mutation_size}^2) per gene, {m.genome_size} genes "
            "adding to the RGBA updates). neutral: same clone founding, mutation size 0 (the null: expansions by drift "
            "and founder effects); control: no mutation. Cheater: a derived clone with >= "
            f"{ecfg.cheater_share:.0%} of living cells and >= {ecfg.cheater_outside:.0%} of its cells outside the "
            "target body. Intervals: 95% t (steps, shares, loss) or Wilson (seed counts).</p>"
            + table(["arm", "seeds with a cheater", "first cheater step", "seeds with an expansion",
                     "final derived share", "largest derived clone", "final visible MSE", "clones founded"], rows)
            + figure(f"muller_{tag}_mutant.png", muller_figure(times, r["mutant"]["counts"][s0], r["mutant"]["parent"][s0],
                                                             f"{name}: mutant arm, seed {settings.seeds[s0]}"))
            + figure(f"muller_{tag}_neutral.png", muller_figure(times, r["neutral"]["counts"][s0],
                                                              r["neutral"]["parent"][s0],
                                                              f"{name}: neutral arm, seed {settings.seeds[s0]}"))
            + figure(f"takeover_{tag}.png", band_figure([
                ("derived clones' share of living cells", {a: (times, curves[a]["derived_share"]) for a in ("mutant", "neutral")}),
                ("shape loss (visible MSE)", {a: (times, curves[a]["loss"]) for a in ("mutant", "neutral", "control")})],
                "", log=False))
            + figure(f"clone_sizes_{tag}.png", clone_size_figure(sizes, f"{name}: final clone sizes"))
            + figure(f"clones_body_{tag}.png", image_grid_figure(bodies)))))


def _landscape_sections(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """The mutant-invasion fitness landscape per host: selection coefficient vs mutation size.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    from nca.selfish.experiments import summarise_landscape

    ecfg = settings.experiment
    for hi, (name, r) in enumerate(res["landscape"].items()):
        summ = summarise_landscape(r)
        summary["landscape"][name] = {"sizes": r["sizes"], "directions": r["directions"], "s": r["s"],
                                      "share": r["share"], "share_neutral": r["share_neutral"], "harm": r["harm"],
                                      "summary": summ}
        rows = [[z, fmt_interval(summ[str(z)]["alpha_up"]), fmt_interval(summ[str(z)]["random"]),
                 fmt_interval(summ[str(z)]["harm_alpha_up"])] for z in r["sizes"]]
        sections.append((f"Mutant-invasion fitness landscape in {name}", (
            f"<p class='note'>One mutant cell with genome size x direction planted at a random living cell of the host "
            f"at step {ecfg.plant_at}, run {ecfg.window} steps, against its neutral twin (genome 0, same cell, same fire "
            "masks): s = log odds of the final share minus the twin's (+0.5 pseudo-counts). Size 0 is the null "
            "(s = 0 exactly).</p>"
            + table(["mutation size", "s, alpha-up gene", f"s, random directions (x{ecfg.directions})",
                     "harm, alpha-up"], rows)
            + figure(f"landscape_h{hi}.png", landscape_figure(r["sizes"], summ, name)))))


def _policing_section(settings, res: dict, summary: dict, sections: list, figure) -> None:
    """Organisms trained with vs without selfish clones: the cheater assay per arm.
    Appends (title, HTML) to ``sections`` and fills ``summary``; ``figure(name, fig)``
    writes a PNG and returns its <img>."""
    if res["policing"]:
        pol = res["policing"]
        prow = []
        for arm, r in pol.items():
            d = {"loss_wild": _interval(r["loss_wild"]), "loss_trained_genomes": _interval(r["loss_trained_genomes"]),
                 "alive_wild": _interval(r["alive_wild"]), "alive_trained": _interval(r["alive_trained"]),
                 "genomes": r["genomes"], "cheater": {}}
            for gene, c in r["cheater"].items():
                d["cheater"][gene] = {"final_share": _interval(c["share"][:, -1]), "final_harm": _interval(c["harm"][:, -1]),
                                      "share": c["share"], "harm": c["harm"]}
            summary["policing"][arm] = d
        genes = list(next(iter(pol.values()))["cheater"])
        for arm, d in summary["policing"].items():
            prow.append([arm, f"{fmt_interval(d['loss_wild'], 3)}; {fmt_interval(d['alive_wild'])} cells",
                         f"{fmt_interval(d['loss_trained_genomes'], 3)}; {fmt_interval(d['alive_trained'])} cells"]
                        + [f"{fmt_interval(d['cheater'][g]['final_share'])}; harm {fmt_interval(d['cheater'][g]['final_harm'])}"
                           for g in genes])
        pc = settings.policing
        times = np.arange(1, pc.steps // pc.every + 1) * pc.every
        panels = [(f"cheater (alpha gene +{g}) share", {arm: (times, pol[arm]["cheater"][g]["share"]) for arm in pol})
                  for g in genes]
        sections.append(("Policing: organisms trained with vs without selfish clones", (
            f"<p class='note'>Two arms, same rule initialisation, seeding ({settings.game.clones} founder clones), "
            f"budget ({settings.policing_train_steps} rule updates) and seeds. selfish: each clone's genome trained on "
            "its own territory (clone-isolated gradient) while the rule is trained on the shape; control: genomes "
            f"fixed at 0. Bodies grown {pc.grow} steps from the seed, with genomes 0 (wild type) and with the trained "
            "genomes. Assay, in the body as trained: a random living cell whose alpha gene rises above its own "
            f"clone's, {pc.steps} steps; harm = visible MSE minus the twin without the mutation.</p>"
            + table(["arm", "wild type (genomes 0): loss; living cells", "as trained: loss; living cells"]
                    + [f"cheater +{g}: final share; harm" for g in genes], prow)
            + figure("policing_cheater.png", band_figure(panels, "share of living cells")))))


@dataclass(frozen=True)
class SelfishReportSettings:
    """selfish: the experiments (``nca.selfish.pipeline.SelfishSettings``); workdir: the folder
    whose training runs are kept and continued (scripts/selfish.py's --out); command: the
    command line, recorded in the report."""

    selfish: object
    workdir: Path
    command: str = ""


@dataclass(frozen=True)
class SelfishReportResult:
    """report: report.json's dict (numpy inside; ``tojson`` cleans it); figures: (file name,
    PNG bytes); sections: the page's (heading, HTML body)."""

    settings: SelfishReportSettings
    report: dict
    figures: list = field(default_factory=list)
    sections: list = field(default_factory=list)


def run(settings: SelfishReportSettings, progress=None) -> SelfishReportResult:
    """Train or continue (``nca.selfish.pipeline.run_all``, in ``settings.workdir``) and measure
    every selected experiment, then ``build`` the report. progress: show progress bars."""
    from nca.selfish.pipeline import run_all

    res = run_all(settings.selfish, settings.workdir, progress=bool(progress))
    return build(settings, res)


def run_with_progress(settings: SelfishReportSettings, quiet: bool = False) -> SelfishReportResult:
    """``run`` with progress bars and stage lines on stderr (none with quiet)."""
    return run(settings, progress=not quiet)


def build(settings: SelfishReportSettings, res: dict) -> SelfishReportResult:
    """``run_all``'s numpy results -> the report: report.json's dict, the figures as PNG bytes
    and the page's sections, one named stage per experiment."""
    report_settings, settings, command = settings, settings.selfish, settings.command
    summary = {"command": command, "settings": settings_dict(settings), "timings": res["timings"],
               "variants": {}, "axis_components": {}, "invasion": {}, "credit": {}, "spontaneous": {},
               "landscape": {}, "policing": {}, "json_keys": JSON_KEYS}
    sections = []
    figures = []

    def figure(name, fig, alt=""):
        figures.append((name, png(fig)))
        return img(name, alt)

    sections.append(("What was run", (
        f"<p>Command: <code>{html.escape(command)}</code>; preset <b>{settings.preset}</b>, seeds "
        f"{list(settings.seeds)}; experiments {', '.join(settings.experiments)}; hosts {', '.join(settings.hosts)}.</p>"
        + table(["phase", "seconds"], [[k, str(tojson(v))] for k, v in res["timings"].items()]))))

    for stage in (_variants_section, _credit_section, _invasion_section, _spontaneous_sections,
                  _landscape_sections, _policing_section):
        stage(settings, res, summary, sections, figure)

    sections.append(("report.json keys", table(["key", "meaning"], [[k, v] for k, v in JSON_KEYS.items()])))
    return SelfishReportResult(report_settings, summary, figures, sections)


def write(result: SelfishReportResult, out: Path) -> None:
    """The figures (PNG), report.json and index.html into ``out``, each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    out = Path(out)
    for name, data in result.figures:
        atomic_write_bytes(out / name, data)
    atomic_write_bytes(out / "report.json", (json.dumps(tojson(result.report), indent=1) + "\n").encode())
    atomic_write_bytes(out / "index.html",
                       page("Selfish cells: credit, lineages, somatic evolution", result.sections).encode())


def settings_dict(settings) -> dict:
    from dataclasses import asdict

    return tojson(asdict(settings))
