"""Figures and the HTML page of the PCA report (``analysis.reports.pca``), with error bars.

Pure: arrays and the report dict in, matplotlib Figures / an HTML string out.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis import plots
from analysis.plots import ci_yerr
from analysis.reports.html import CONVENTIONS, _esc, _fmt, _img, page_end, page_head, table


def fig_explained_variance_ci(pca: dict, steps: list[int], evr_rep: np.ndarray) -> Figure:
    """Left: the pooled PCA's explained variance ratio per component, with the 95 % interval
    over replicates of each replicate's share (averaged over steps). Right: each component's
    share at each analysed step, mean and 95 % band over replicates. evr_rep: [S, R, k]."""
    from analysis.reports.pca import mean_interval

    k = evr_rep.shape[-1]
    fig = Figure(figsize=(10, 3.4))
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    m, err = ci_yerr(pca["explained_variance_ratio_ci"])
    pos = np.arange(1, k + 1)
    ax.bar(pos, pca["explained_variance_ratio"], color="tab:blue", alpha=0.5, label="pooled fit")
    ax.errorbar(pos, m, yerr=err, fmt="k.", capsize=3, label="replicates: mean, 95% CI")
    ax.plot(pos, np.cumsum(pca["explained_variance_ratio"]), "o:", color="tab:gray", label="cumulative")
    ax.set_xticks(pos, [f"PC{j}" for j in pos])
    ax.set_ylim(0, 1)
    ax.set_title("explained variance ratio", fontsize=9)
    ax.legend(fontsize=7)
    for j in range(k):
        cis = [mean_interval(evr_rep[s, :, j]) for s in range(len(steps))]
        mm, e = ci_yerr(cis)
        col = f"C{j}"
        bx.plot(steps, mm, "o-", color=col, label=f"PC{j + 1}")
        bx.fill_between(steps, mm - e[0], mm + e[1], color=col, alpha=0.2)
    bx.set_xlabel("step")
    bx.set_title("share of each step's variance (band: 95% CI over replicates)", fontsize=9)
    bx.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fig_component_tests(body_steps: list[dict]) -> Figure:
    """Per component and analysed step: directional and |radial| rank association, mean and
    95 % interval over replicates; filled markers where the component's kind (null-tested,
    Holm, agreed over replicates) is axial (left) or radial (right)."""
    k = len(body_steps[0]["components"])
    n_s = len(body_steps)
    fig = Figure(figsize=(10, 3.4))
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    width = 0.8 / n_s
    for s, body in enumerate(body_steps):
        comps = body["components"]
        pos = np.arange(k) + (s - (n_s - 1) / 2) * width
        for ax, key, kinds in ((axes[0], "association_ci", ("along-axis", "across-axis")),
                               (axes[1], "radial_association_ci", ("radial",))):
            cis = [c[key] for c in comps]
            m, err = ci_yerr(cis)
            if key == "radial_association_ci":
                m_abs = np.abs(m)
                err = np.where(m < 0, err[::-1], err)
                m = m_abs
            sig = np.array([c["kind"] in kinds for c in comps])
            col = f"C{s}"
            ax.errorbar(pos, m, yerr=err, fmt="none", ecolor=col, capsize=2)
            ax.plot(pos[sig], m[sig], "o", color=col, label=f"step {body['step']}" if sig.any() else None)
            ax.plot(pos[~sig], m[~sig], "o", mfc="white", color=col,
                    label=None if sig.any() else f"step {body['step']}")
    for ax, title in zip(axes, ("directional rank association \u03c1 (filled: axial)",
                                "|radial rank association| (filled: radial)")):
        ax.set_xticks(np.arange(k), [f"PC{j + 1}" for j in range(k)])
        ax.set_ylim(0, 1)
        ax.set_title(title + "\nmean and 95% CI over replicates", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def body_figure_specs(pca: dict, body_steps: list[dict], replicates: int, steps: list[int], at: np.ndarray,
                      maps: np.ndarray, evr_rep: np.ndarray, thr: float) -> list[tuple]:
    """The figures of the analysed bodies, ready once the spatial null has run, as specs
    ``(name, title, caption, make, args)`` (``analysis.reports.figure_pool``): explained variance,
    component tests, PC maps, profiles. pca, body_steps: the report's "pca" and "steps";
    at: [S, R, H, W, C]; maps: [S, R, H, W, k]; evr_rep: [S, R, k]."""
    return [("explained_variance", "Explained variance",
             "Left: the pooled PCA's explained variance ratio per component (bars); dots with error bars: each "
             "replicate's share (mean over the analysed steps), mean and 95% interval over the "
             f"{replicates} replicates; dotted: cumulative. Right: each component's share at each step.",
             fig_explained_variance_ci, (pca, steps, evr_rep)),
            ("component_tests", "Axial and radial associations with their uncertainty",
             "Each component at each analysed step: its rank association with position along its best direction "
             "(left) and with distance from the centroid (right), mean and 95% interval over replicates. Filled: "
             "the component's kind is axial (left) / radial (right) by the spatial-null test (Holm-corrected, "
             "agreed over replicates); hollow: not. A high association alone is not evidence: smooth random "
             "fields reach 0.5 often (docs/pca.md).",
             fig_component_tests, (body_steps,)),
            ("pc_maps", "PC maps over development",
             "Each row an analysed step (first replicate): the body (dashed: its long axis), then each PC's score "
             "(red +, blue -, grey: dead). Arrows: direction in which an axial component increases; rings: radial.",
             plots.fig_pc_maps, (at[:, 0], maps[:, 0], body_steps, [f"step {t}" for t in steps], thr)),
            ("profiles", f"Profiles at step {steps[-1]}",
             "Each component's score against position along its found direction (radial: against distance "
             "from the centroid), one dot per cell; black: the best monotone fit.",
             plots.fig_profiles, (maps[-1, 0], at[-1, 0, ..., 3], body_steps[-1], thr))]


def later_figure_specs(out: dict, steps: list[int], at: np.ndarray, maps: np.ndarray, growth, regrowth, damage_info,
                       rotation, rot_states, rot_maps, rot_bodies, comparisons, cmp_rows, thr: float,
                       thresholds) -> list[tuple]:
    """The descriptive extras' figures as specs (``body_figure_specs``): emergence and
    regrowth, the rotation test, the comparisons."""
    figs = [("emergence", "Emergence over development" + (" and regrowth" if damage_info else ""),
             "Descriptive (first replicate, no null): the pooled components measured every %d steps%s. Dotted: "
             "the old fixed threshold 0.5, which smooth random fields often pass." % (
                 out["settings"]["every"],
                 f"; vertical line: damage at step {damage_info['step']} "
                 f"({damage_info['fraction_of_body_erased']:.0%} of the body erased), then "
                 f"{damage_info['regrow_steps']} steps of regrowth" if damage_info else ""),
             plots.fig_emergence, (growth, regrowth, thresholds.min_association,
                                   damage_info["step"] if damage_info else None))]
    t_last = steps[-1]
    if rotation:
        axial = [c["index"] for c in out["steps"][-1]["components"] if c["kind"] in ("along-axis", "across-axis")]
        figs.append(("rotation", "Rotation test",
                     f"Grown with the perception rotated by &theta; (step {t_last}), scored with the same PCA. "
                     "A component that belongs to the body rotates with it (dotted identity line).",
                     plots.fig_rotation, (rotation, np.stack(rot_states), np.stack(rot_maps), rot_bodies,
                                          axial[0] if axial else 0, thr)))
    if comparisons:
        figs.append(("comparison", "Comparison across seeds and models",
                     f"Principal angles between the first {len(out['pca']['explained_variance_ratio'])} PCs of the "
                     "reference and of each compared PCA (own fit, same steps), at step %d. 0&deg; = same subspace."
                     % t_last, plots.fig_comparison, (comparisons,)))
        figs.append(("comparison_maps", "PC maps of the compared PCAs",
                     f"Step {t_last}; each row its own PCA.",
                     plots.fig_pc_maps, (np.stack([at[-1, 0]] + [r[1] for r in cmp_rows]),
                                         np.stack([maps[-1, 0]] + [r[2] for r in cmp_rows]),
                                         [out["steps"][-1]] + [r[3] for r in cmp_rows],
                                         [out["model"]] + [r[0] for r in cmp_rows], thr)))
    return figs


def _ci_text(ci: dict | None, nd: int = 2, signed: bool = False) -> str:
    if not ci or ci.get("mean") is None:
        return "-"
    f = f"{{:{'+' if signed else ''}.{nd}f}}"
    if ci["lo"] is None:
        return f.format(ci["mean"]) + " (n=1)"
    return f"{f.format(ci['mean'])} [{f.format(ci['lo'])}, {f.format(ci['hi'])}]"


def components_table(components: list[dict]) -> str:
    """The last step's components: kind with its evidence, direction with its interval."""
    def dci(c):
        d = c.get("direction_ci_deg")
        return "-" if d is None else f"{c['direction_deg']:.1f} [{d[0]:.1f}, {d[1]:.1f}]"

    def p(v):
        return "-" if v is None else f"{v:.3f}"

    cols = [("PC", lambda c: c["index"] + 1),
            ("var. share", lambda c: _ci_text(c.get("explained_variance_ratio_ci"), 3)
             if c.get("explained_variance_ratio_ci") else _fmt(c["explained_variance_ratio"], 3)),
            ("kind", lambda c: c["kind"]), ("agreement", lambda c: f"{c['kind_agreement']:.0%}"),
            ("p axial", lambda c: p(c.get("p_value"))), ("p radial", lambda c: p(c.get("radial_p_value"))),
            ("p along axis", lambda c: p(c.get("along_p_value"))), ("p across axis", lambda c: p(c.get("across_p_value"))),
            ("axis gradient", lambda c: c.get("axis_gradient", "-")),
            ("direction [95% CI]", dci),
            ("\u03c1 directional", lambda c: _ci_text(c.get("association_ci"))),
            ("\u03c1 radial", lambda c: _ci_text(c.get("radial_association_ci"), signed=True)),
            ("angle to body axis", lambda c: _fmt(c["angle_to_body_axis_deg"], 1)),
            ("profile", lambda c: _fmt(c["profile"])), ("old label (\u03c1 \u2265 0.5)", lambda c: c["kind_threshold"]),
            ("why none", lambda c: c.get("kind_reason") or "")]
    return table([n for n, _ in cols], [[f(c) for _, f in cols] for c in components])


def build_html(r: dict, figures: list[tuple[str, str, bytes]], viewer: str | None = None) -> str:
    """r: the report.json dict; figures: (title, caption, png bytes) in page order; viewer:
    the interactive viewer's file name beside the page, linked near the top (None: no link)."""
    last = r["steps"][-1]
    rule = r["kind_rule"]
    parts = [page_head(f"PCA report: {r['model']}"),
             f"<h1>PCA of cell states: {_esc(r['model'])}</h1>",
             f"<p><code>{_esc(r['command'])}</code><br>grid {r['grid']}&times;{r['grid']}, {r['rollout_steps']} steps, "
             f"seed {r['seed']}, {r['replicates']} replicate rollout(s) (independent fire masks) pooled; features: "
             f"<b>{_esc(r['features'])}</b> ({r['n_features']}), {'standardised' if r['standardize'] else 'not standardised'}; "
             f"PCA {_esc(r['pca']['pooling'])} at steps {r['pca']['fit_steps']} ({r['pca']['n_samples']} cells). "
             f"Ran in {r['timing_s']:.0f} s.</p>",
             (f"<p><a href='{_esc(viewer)}'>Open the interactive viewer</a>: this model running in your browser "
              "(erase, PC views, knockouts).</p>" if viewer else ""),
             f"<h2>Components at step {last['step']}</h2>"
             f"<p>{last['n_alive']} alive cells (first replicate); body long axis {last['body_axis_deg']:.1f}&deg;, "
             f"elongation {last['body_elongation']:.2f}. Intervals: 95% over the {r['replicates']} replicates "
             "(direction: bootstrap over cells and replicates).</p>",
             components_table(last["components"]),
             "<h3>How a component gets a kind</h3><dl>"
             "<dt>p axial</dt><dd>the chance that a random field with this map's own variogram (up to half the "
             "body's length), on this body, orders the cells along <i>its own best</i> direction at least as well "
             f"as the map does along its best (at most {r['null']['n_surrogates']} surrogates, a sequential test: "
             f"the smallest possible p is {1 / (r['null']['n_surrogates'] + 1):.4g}; method: "
             f"{_esc(r['null']['method'])}).</dd>"
             "<dt>p radial</dt><dd>the same for the rank association with distance from the centroid.</dd>"
             "<dt>p along / across axis</dt><dd>the same for the association with the position along the body's "
             "long (head-tail) axis, and across it: the biologist's question, with the same surrogates. A random "
             "field's broad component points anywhere and these statistics see only its projection, so they keep "
             "power the search over all directions pays away. <i>axis gradient</i>: along, across, both or none, "
             "Holm over the body's k components per test, agreed over the replicates like the kind.</dd>"
             f"<dt>kind</dt><dd><b>axial</b> (along-axis within {r['thresholds']['along_max_deg']}&deg; of the long "
             f"axis, else across-axis) or <b>radial</b> when its Holm-adjusted p (over the body's k components, per test) is below "
             f"{rule['alpha']}, the larger association winning when both are; and only if at least "
             f"{rule['min_agreement']:.0%} of the replicates give the same kind (<i>agreement</i>). Otherwise "
             "<b>none</b>, with the reason. The old label (association &ge; 0.5, no null) is shown for comparison. "
             "A direction interval is given only for an axial kind (a significant direction)."
             "</dd></dl>",
             "<h3>Conventions</h3><ul>" + "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>"
                                                  for k, v in r.get("conventions", CONVENTIONS).items()) + "</ul>"]
    for title, caption, png in figures:
        parts.append(f"<h2>{_esc(title)}</h2><p class='cap'>{caption}</p>{_img(png, title)}")
    if r.get("rotation"):
        rot = r["rotation"]
        head = "".join(f"<th>&theta;={a:.0f}&deg;</th>" for a in rot["angles_deg"])
        rows = ["<tr><td>body axis (mod 180)</td>" + "".join(f"<td>{b:+.1f}</td>" for b in rot["body_axis_rotation_deg"]) + "</tr>"]
        for c in rot["components"]:
            note = "" if c["kind"] in ("along-axis", "across-axis") else "; direction not a body axis"
            rows.append(f"<tr><td>PC{c['index'] + 1} ({_esc(c['kind'])}{note})</td>"
                        + "".join(f"<td>{m:+.1f}</td>" for m in c["measured_rotation_deg"]) + "</tr>")
        parts.append("<h3>Measured rotations (deg; descriptive, one rollout per angle)</h3>"
                     f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>")
    if r.get("emergence"):
        em = r["emergence"]
        dmg = em.get("damage")
        head = "<th>PC</th><th>old label at end of growth</th><th>emerges at step</th>"
        if dmg:
            head += "<th>right after damage</th><th>after regrowth</th><th>persists</th><th>direction change</th>"
        rows = []
        for c in em["summary"]:
            row = (f"<td>{c['index'] + 1}</td><td>{_esc(c['kind_at_end_of_growth'])}</td>"
                   f"<td>{_fmt(c['emerges_at_step'])}</td>")
            if dmg:
                row += (f"<td>{_esc(c['kind_right_after_damage'])}</td><td>{_esc(c['kind_after_regrowth'])}</td>"
                        f"<td>{'yes' if c['persists'] else 'no'}</td><td>{_fmt(c['direction_change_deg'], 1)}</td>")
            rows.append(f"<tr>{row}</tr>")
        parts.append("<h3>Emergence and persistence (descriptive: first replicate, old fixed-threshold labels, "
                     "no null)</h3><p class='cap'>emerges at step: the first measured step from which the component "
                     f"keeps its end-of-growth label.</p><table><tr>{head}</tr>{''.join(rows)}</table>")
    if r.get("comparison"):
        rows = "".join(f"<tr><td>{_esc(c['label'])}</td><td>{', '.join(f'{a:.0f}' for a in c['map_angles_deg'])}</td>"
                       f"<td>{', '.join(f'{a:.0f}' for a in c['loading_angles_deg'])}"
                       f"{'' if c['loading_angles_meaningful'] else ' (different models)'}</td></tr>"
                       for c in r["comparison"])
        parts.append("<h3>Principal angles to the reference (deg)</h3><table><tr><th>compared with</th>"
                     f"<th>PC maps</th><th>loadings</th></tr>{rows}</table>")
    parts.append(page_end(r, "docs/pca.md", what="All measures, per step, are"))
    return "\n".join(parts)
