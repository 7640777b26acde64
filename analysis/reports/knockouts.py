"""The knockout report as a library: frozen settings -> ``run`` -> result -> ``write``.

``scripts/knockout_report.py`` is argparse -> ``KnockoutReportSettings`` -> ``run`` ->
``write`` -> ``summary_lines``. The measurements are ``analysis.causal.knockouts.run`` (single and
double knockouts of the hidden channels and top PCs in growth, persistence and regeneration;
the MLP's units and their pairs; redundancy as Segre et al.'s scaled epistasis; self-repair
after McGrath et al. 2023 via ``analysis.causal.repair``); this module adds what a report needs:
the conventions, the spread across models, the figures and the page. Every key of
``report.json`` is documented in docs/interventions.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.causal import knockouts as K
from analysis.causal.knockouts import CONDITIONS, KnockoutSettings


@dataclass(frozen=True)
class KnockoutReportSettings:
    """A knockout report: the models (run directories or published names), what is measured
    (``analysis.causal.knockouts.KnockoutSettings``) and the command line shown on the page."""

    models: tuple[str, ...]
    knockouts: KnockoutSettings = field(default_factory=KnockoutSettings)
    command: str = ""


@dataclass(frozen=True)
class KnockoutReportResult:
    """report: every number (report.json, JSON-safe after ``analysis.reports.html.json_safe``);
    figures: (name, title, caption, PNG bytes)."""

    settings: KnockoutReportSettings
    report: dict
    figures: list = field(default_factory=list)


def settings_from_args(a, argv: list[str]) -> KnockoutReportSettings:
    """The flags of scripts/knockout_report.py -> settings; an unknown --pairs condition is
    one ``NCAError`` line, before anything is computed or written."""
    import shlex

    from nca.errors import NCAError

    pairs = () if a.pairs == ["none"] else tuple(a.pairs)
    bad = set(pairs) - set(CONDITIONS)
    if bad:
        raise NCAError(f"--pairs: unknown condition(s) {', '.join(sorted(bad))}; choose from {', '.join(CONDITIONS)}")
    at = tuple(sorted(set(a.repair_at) - {0}))
    ko = KnockoutSettings(grow=a.grow, persist=a.persist, regrow=a.regrow, cut=a.cut, replicates=a.replicates,
                          pcs=a.pcs, mode=a.mode, pairs=pairs, unit_condition=None if a.units == "none" else a.units,
                          max_unit_pairs=a.unit_pairs,
                          random_unit_pairs=a.random_unit_pairs, repair_at=at, repair_attribute=not a.no_attribution,
                          repair_units=not a.no_unit_attribution, seed=a.seed, size=a.size, chunk=a.chunk)
    return KnockoutReportSettings(models=tuple(a.models), knockouts=ko,
                                  command="python scripts/knockout_report.py " + " ".join(shlex.quote(x) for x in argv))


def conventions(s: KnockoutSettings) -> dict:
    """report.json's "conventions": how every number is defined, with the thresholds used."""
    th = K.RedundancySettings()
    return {
        "effect": "(L - L_ref) / (L_empty - L_ref) per replicate (same fire masks as its intact run): L = RGBA MSE "
                  "to the target after the condition's steps, L_empty = mean(target^2); 0 = no effect, 1 = as empty",
        "interval": f"every *_ci: mean and 95% t-interval over the {s.replicates} fire-mask replicates "
                    "(counts: percentile bootstrap over replicates); n is given",
        "knockout": "channel: zeroed (or set to its mean) in the incoming state of every step of the condition; "
                    "PC: its component set to its mean over alive cells (mean ablation); unit: its output weights "
                    "zeroed (= its activation zeroed)",
        "epistasis": "additive: effect(ij) - effect(i) - effect(j); < 0 where effects saturate at 1",
        "scaled_epistasis": "Segre et al. 2005 with fitness W = 1 - effect (clipped to [0, 1]): (W_ij - W_i W_j) / "
                            "|W~ - W_i W_j|, W~ = 0 if aggravating, min(W_i, W_j) if alleviating; -1 = the pair "
                            "kills although each single is harmless (backups), 0 = independent, +1 = same pathway",
        "buffering": "1 - max(effect(i), effect(j), 0) / effect(ij): the fraction of the double knockout's effect "
                     "that each single leaves undone; 1 = a perfect backup whatever the function's share of the body, "
                     "0.5 = two independent parts (additive), 0 = one single does it all",
        "backup pair": f"double effect >= {th.double_floor} with its interval's lower end > 0, buffering >= "
                       f"{th.buffer_min} with its interval's lower end > {th.buffer_lo} (flagged); flagged_strict: also "
                       f"both singles < {th.single_max}; flagged_scaled_epistasis: the old rule (both singles < "
                       f"{th.single_max}, double >= {th.double_min}, scaled epistasis <= -{th.flag}, upper end < 0)",
        "eligible_pairs": "the pairs the tested ones were drawn from (any pair can be flagged by buffering); unit "
                          "pairs: pair_selection says how many were tested and how (most alike outputs + uniform)",
        "diverged": "replicates whose state became non-finite: counted at the maximal loss (every value at its far "
                    "end, mean(max(t, 1 - t)^2)), i.e. the maximal effect; never dropped, n = replicates run",
        "essential": f"mean single effect >= {K.ESSENTIAL}",
        "repair_fraction": "McGrath et al. 2023: (direct - total) / direct, RMS RGBA deviation from the clean run "
                           "after h steps of ablating the channel's perception, under two definitions of direct: "
                           "others_frozen = the other hidden channels and the life masks frozen at the clean run (the "
                           "RGBA keeps its own dynamics; the top-level repair_fraction), update_frozen = each step's "
                           "update computed on the clean state with the ablation, summed (McGrath et al.'s direct "
                           "path: nothing downstream reacts, the RGBA's own leak included); planted: a rule without "
                           "compensation whose channel drives a second output scores -0.07 to -0.41 under both, a "
                           "passive copying channel +0.37 to +1.00 (tests/test_repair.py)",
        "along_direct": "<d - total, d> / <d, d>: the compensation along the direct effect d's own direction; 0 for "
                        "the mediated second output, which the norm-based repair fraction scores negative",
        "attribution share": "(effect with channel k frozen at the clean run - total) / (direct - total): the part of "
                             "the compensation that disappears when k cannot react",
        "unit share": "first order: -<sum over steps of the change (total - direct) of unit j's write fire*h_j*W2[j,:4], "
                      "d> / <d, d>, d = the direct effect (RGBA); > 0 compensates, < 0 amplifies; sum_of_units vs "
                      "measured_along_direct = <d - total, d> / <d, d> shows how much first order accounts for",
    }


def spread_across_models(results: list[dict]) -> dict:
    """Per condition, each numeric summary entry across models (training seeds):
    ``report.spread`` plus its mean and 95 % interval over the models (``ci``)."""
    from analysis.reports.html import spread_ci

    return {name: {k: spread_ci([r["summary"][name][k] for r in results])
                   for k, v in results[0]["summary"][name].items() if isinstance(v, (int, float))}
            for name in CONDITIONS}


def figures(rep: dict, images: list, s: KnockoutSettings) -> list[tuple[str, str, str, object]]:
    """The report's figures: (name, title, caption, matplotlib Figure). rep: the report dict;
    images: per model the atlas's images (``analysis.causal.knockouts.run``)."""
    from analysis import plots

    res = rep["results"]
    first = res[0]
    atl = first["atlas"]
    labels = atl["conditions"]["growth"]["labels"]
    figs = [("effects", f"Single knockouts ({first['model']})",
             f"Effect of knocking out each hidden channel (and PC) per condition; error bars: 95% interval over "
             f"{s.replicates} fire-mask replicates; dotted: as bad as an empty grid.",
             plots.fig_ci_bars([lab if lab.startswith("PC") else f"ch {lab}" for lab in labels],
                               {name: atl["conditions"][name]["effect_ci"] for name in CONDITIONS},
                               "single knockout effect", "effect (1 = as empty)", hline=1.0, horizontal=True)),
            ("gallery", f"Knocked-out bodies ({first['model']})",
             f"Final RGBA of each condition (replicate 0): start state, intact, then each single knockout. "
             f"Regeneration: {s.cut} cut after {s.grow} steps of intact growth, {s.regrow} steps of regrowth.",
             plots.fig_knockout_gallery(images[0], labels))]
    if len(res) > 1:
        figs.append(("effects_models", "Single knockouts across models",
                     "Bars: mean over the models, error bars: sd, dots: each model.",
                     plots.fig_knockout_effects([r["atlas"] for r in res])))
    chans = atl["channels"]
    for name in s.pairs:
        figs.append((f"epistasis_{name}", f"Double knockouts and epistasis: {name} ({first['model']})",
                     "Left: effects (singles on the diagonal); right: additive epistasis. Boxed: pairs flagged by "
                     "the old all-or-none rule. Scaled epistasis with intervals and eligibility: report.json "
                     "(redundancy).", plots.fig_epistasis(atl["conditions"][name], chans)))
    if first["units"] is not None:
        u = first["units"]
        figs.append(("units", f"Hidden units of the update MLP ({first['model']})",
                     f"Left: each unit's single knockout effect ({u['condition']}), sorted, 95% intervals; right: "
                     f"scaled epistasis of the {u['redundancy']['tested_pairs']} tested pairs of the "
                     f"{u['redundancy']['eligible_pairs']} ({u['pair_selection']['how']}); -1 = synthetic lethal. "
                     f"Backups are flagged by buffering (report.json).",
                     plots.fig_unit_atlas(u)))
    if first["repair"] is not None:
        figs.append(("repair", f"Self-repair, McGrath et al. 2023 ({first['model']})",
                     f"From the grown bodies at step {s.grow}, each channel's perception ablated. direct: the other "
                     "hidden channels and the life masks frozen at the clean run (the report's other definition, "
                     "update frozen, is in report.json); total: everything reacts; pulse: "
                     "ablated in one step only. RMS RGBA deviation from the clean run, bands: 95% over replicates. "
                     "Bottom: repair fraction (direct - total) / direct per horizon.",
                     plots.fig_repair_hydra(first["repair"])))
    if len(res) > 1:
        names = [f"{cond[:5]}: essential" for cond in CONDITIONS]
        vals = np.array([[r["summary"][cond]["essential_channels"] for cond in CONDITIONS] for r in res])
        figs.append(("spread_essential", "Across models: essential channels",
                     "Number of channels whose knockout has mean effect >= 0.5, per condition (dots: models).",
                     plots.fig_spread(names, vals, "essential channels", "count")))
    return figs


def rollouts(models, settings: KnockoutReportSettings) -> int:
    """Progress-bar units ``run`` reports for these loaded models."""
    return K.rollouts_per_model(models[0].model_config, settings.knockouts) * len(models)


def run(settings: KnockoutReportSettings, progress=None, models=None) -> KnockoutReportResult:
    """Measure, summarise, draw. progress: callable(n) called as rollouts finish; models:
    the loaded models (None: loaded here from ``settings.models``).

    -> ``KnockoutReportResult``: the JSON-ready report dict and the figures (name, title, caption,
    PNG bytes)."""
    import nca

    from analysis.plots import png_bytes

    t_start = time.time()
    s = settings.knockouts
    if models is None:
        models = [nca.load_model(m) for m in settings.models]  # fail early on a bad name
    measured = K.run(models, s, progress=progress)
    results, images = measured["results"], measured["images"]
    rep = {"models": [r["model"] for r in results], "command": settings.command,
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()},
           "conventions": conventions(s), "results": results}
    if len(results) > 1:
        rep["spread"] = spread_across_models(results)
    pngs = [(n, t, cap, png_bytes(f)) for n, t, cap, f in figures(rep, images, s)]
    rep["timing_s"] = time.time() - t_start
    return KnockoutReportResult(settings, rep, pngs)


def run_with_progress(settings: KnockoutReportSettings, quiet: bool = False) -> KnockoutReportResult:
    """``run`` with a rollout progress bar on stderr (none with quiet); the models load
    first, so a bad name stops before any output."""
    import sys

    from tqdm import tqdm

    import nca

    models = [nca.load_model(m) for m in settings.models]
    bar = tqdm(total=rollouts(models, settings), file=sys.stderr, unit="rollout", desc="knockouts", disable=quiet)
    try:
        return run(settings, progress=bar.update, models=models)
    finally:
        bar.close()


def page_intro(rep: dict, s: KnockoutSettings) -> str:
    """The page's text above the figures: the command, the summary table per model, the
    self-repair tables and the backup pairs."""
    from analysis.reports.html import esc, table
    from analysis.stats import fmt_ci

    rows = []
    for r in rep["results"]:
        sm = r["summary"]
        rows.append([r["model"]] + [fmt_ci(sm[cn]["essential_channels_ci"], 1) for cn in CONDITIONS]
                    + [sm[p]["redundancy_verdict"] for p in s.pairs]
                    + [sm[p].get("pc_redundancy_verdict", "-") for p in s.pairs if s.pcs >= 2]
                    + ([sm["units"]["redundancy_verdict"]] if "units" in sm else []))
    head = (["model"] + [f"essential channels ({cn})" for cn in CONDITIONS]
            + [f"channel pairs ({p})" for p in s.pairs] + [f"PC pairs ({p})" for p in s.pairs if s.pcs >= 2]
            + (["unit pairs"] if s.unit_condition else []))
    html = (f"<p><code>{esc(rep['command'])}</code><br>{s.replicates} fire-mask replicates; intervals are 95% "
            f"over them. Ran in {rep['timing_s']:.0f} s.</p>" + table(head, rows))
    if s.repair_at:
        rr = []
        for r in rep["results"]:
            by = r["summary"]["repair"]["by_horizon"]
            for d in ("others_frozen", "update_frozen"):
                if all(d in x for x in by):
                    rr.append([r["model"], f"repair fraction (norms), direct = {d.replace('_', ' ')}"]
                              + [fmt_ci(x[d]["median_repair_fraction"]) for x in by])
                    rr.append([r["model"], f"compensation along the direct effect, direct = {d.replace('_', ' ')}"]
                              + [fmt_ci(x[d]["median_along_direct"]) for x in by])
        html += ("<h3>Self-repair: medians over channels, by horizon</h3>"
                 + table(["model", "measure"] + [f"h = {h}" for h in s.repair_at], rr))
        first = rep["results"][0]["repair"]
        brows = []
        for p in first["per_channel"]:
            for a in p["at"]:
                if a.get("compensating"):
                    brows.append([p["channel"], a["h"], fmt_ci(a["repair_fraction"]),
                                  ", ".join(map(str, a["compensating"]))])
        if s.repair_units:
            urows = []
            for p in first["per_channel"]:
                a = p["at"][-1]
                if "units" in a:
                    u = a["units"]
                    urows.append([p["channel"], a["h"], fmt_ci(u["measured_along_direct"]), fmt_ci(u["sum_of_units"]),
                                  ", ".join(f"{x['unit']}: {x['share']['mean']:+.2f}" for x in u["top_units"]
                                            if x["share"]["mean"] is not None)])
            html += ("<h3>Which units' changed output makes the difference (first order, largest horizon)</h3>"
                     + table(["channel", "h", "compensation along the direct effect", "sum over units",
                              "largest unit shares"], urows))
        html += ("<h3>Compensating channels (share >= 0.25 of the compensation; a passively following channel "
                 "scores the same, so these are not shown to be backups)</h3>"
                 + (table(["channel", "h", "repair fraction", "compensating channels"], brows) if brows
                    else "<p>none</p>"))
    red = []
    for r in rep["results"]:
        for p in s.pairs:
            cond = r["atlas"]["conditions"][p]
            for what, key in (("channels", "redundancy"), ("PCs", "extra_redundancy")):
                for f in (cond.get(key) or {}).get("flagged", []):
                    red.append([r["model"], f"{what}, {p}", "+".join(f["pair"]), fmt_ci(f["effect_double"]),
                                fmt_ci(f["buffering"]), fmt_ci(f["scaled_epistasis"])])
        if r["units"] is not None:
            for f in r["units"]["redundancy"]["flagged"]:
                red.append([r["model"], f"units, {r['units']['condition']}", "+".join(map(str, f["pair"])),
                            fmt_ci(f["effect_double"]), fmt_ci(f["buffering"]), fmt_ci(f["scaled_epistasis"])])
    html += ("<h3>Backup pairs (redundancy: buffering)</h3>" + (table(
        ["model", "what", "pair", "double effect", "buffering", "scaled epistasis"], red) if red else
        "<p>none flagged; see the eligibility in the first table</p>"))
    drows = [[r["model"], cn, ", ".join(r["summary"][cn]["diverged_labels"])]
             for r in rep["results"] for cn in CONDITIONS if r["summary"][cn].get("diverged_labels")]
    html += ("<h3>Diverged rollouts (counted at the maximal effect, never dropped)</h3>"
             + (table(["model", "condition", "knockout (diverged / replicates)"], drows) if drows else "<p>none</p>"))
    return html


def write(result: KnockoutReportResult, out: Path) -> None:
    """report.json, index.html and the PNGs into ``out`` (the one report writer,
    ``analysis.reports.html.report_files``), each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import report_files

    rep = result.report
    intro = page_intro(rep, result.settings.knockouts)
    files = report_files("Knockout atlas: " + ", ".join(rep["models"]), intro, rep, result.figures)
    for name, data in files.items():
        atomic_write_bytes(Path(out) / name, data)


def summary_lines(result: KnockoutReportResult) -> list[str]:
    """What the script prints: per model the essential channels and the pair verdicts."""
    from analysis.stats import fmt_ci

    s = result.settings.knockouts
    lines = []
    for r in result.report["results"]:
        sm = r["summary"]
        lines.append(f"{r['model']}: essential channels " + ", ".join(
            f"{cn} {fmt_ci(sm[cn]['essential_channels_ci'], 1)}" for cn in CONDITIONS)
            + "".join(f"; channel pairs ({p}): {sm[p]['redundancy_verdict']}" for p in s.pairs)
            + (f"; unit pairs: {sm['units']['redundancy_verdict']}" if "units" in sm else ""))
        lines.append(f"{r['model']}: diverged rollouts (counted at the maximal effect) " + ", ".join(
            f"{cn} {sm[cn]['diverged_replicates']} in {sm[cn]['diverged_knockouts']} knockouts"
            + (f" ({', '.join(sm[cn]['diverged_labels'])})" if sm[cn]["diverged_labels"] else "")
            for cn in CONDITIONS))
        if "repair" in sm:
            for x in sm["repair"]["by_horizon"]:
                if "others_frozen" in x:
                    lines.append(f"{r['model']}: repair at h = {x['h']}: median repair fraction "
                                 f"{fmt_ci(x['others_frozen']['median_repair_fraction'])} (others frozen), "
                                 f"{fmt_ci(x['update_frozen']['median_repair_fraction'])} (update frozen); along "
                                 f"the direct effect {fmt_ci(x['others_frozen']['median_along_direct'])}, "
                                 f"{fmt_ci(x['update_frozen']['median_along_direct'])}")
    return lines
