"""The damage report (scripts/damage_report.py): a standard panel of wounds -> recovery
curves, time to recover and success rate with n and 95 % intervals over fire-mask
replicates, per model and across models (seeds).

``DamageReportSettings`` -> ``run(settings)`` -> ``DamageReportResult`` -> ``write(result,
out)`` (report.json, index.html, PNGs) and ``summary_lines(result)``. The measures are
``analysis.development.damage_assays``'s (keys in docs/interventions.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.development import damage_assays as D


@dataclass(frozen=True)
class DamageReportSettings:
    """models: run directories or published names; damage: the protocol, the panel of
    wounds, the seed and the grid size; command: the command line, recorded in the report."""

    models: tuple[str, ...]
    damage: D.DamageSettings = D.DamageSettings()
    command: str = ""


@dataclass(frozen=True)
class DamageReportResult:
    """report: every number (report.json, JSON-safe after ``analysis.reports.html.json_safe``);
    figures: (name, title, caption, PNG bytes); rows: the page's summary table, one row per
    model and wound."""

    settings: DamageReportSettings
    report: dict
    figures: list = field(default_factory=list)
    rows: list = field(default_factory=list)


def conventions(s: D.DamageSettings) -> dict:
    p = s.protocol
    return {
        "loss": "MSE of the RGBA as seen (clipped to [0, 1]) to the target",
        "recovered": f"gap = loss - loss of the undamaged control (same keys); recovered when gap <= "
                     f"{p.rel_tol} * gap right after the damage, or gap <= {p.abs_tol} * empty-grid loss",
        "time_to_recover": "steps after the damage from which it stays recovered (null: not recovered at the end)",
        "success": "recovered at the end of regrowth",
        "intervals": f"per model, over its {p.replicates} replicates (fire masks; random wounds differ): "
                     "success_rate: Wilson 95% interval; median_time: percentile bootstrap over the recovered "
                     "replicates (null with a reason if fewer than 2 recovered); erased_fraction, final_gap: "
                     "t interval; n is given",
        "summary": "across models: mean, sd, each model's value and ci (mean and 95% t-interval over models)",
        "unseen": "stripe and ring: shapes never used as training damage (discs)"}


def across_models(results: list[dict], kinds: list[str]) -> dict:
    """Per wound: success rate, median time and erased fraction across models (training
    seeds): mean, sd, each model's value and a 95 % t-interval over models."""
    from analysis.reports.html import spread_ci

    def median_time(r, k):
        t = r["damages"][k]["median_time"]
        return np.nan if t is None else t

    return {k: {"success_rate": spread_ci([r["damages"][k]["success_rate"] for r in results]),
                "median_time": spread_ci([median_time(r, k) for r in results]),
                "erased_fraction": spread_ci([np.mean(r["damages"][k]["erased_fraction"]) for r in results])}
            for k in kinds}


def figures(results: list[dict], snapshots: list, s: D.DamageSettings) -> list[tuple]:
    """(name, title, caption, matplotlib figure): the first model's recovery curves with
    their 95 % band, success rate, time to recover and the wound gallery; with several
    models, every model's mean recovery curve."""
    from analysis import plots
    from analysis.stats import mean_ci_axis

    kinds = list(s.panel)
    steps = np.array(results[0]["steps"])
    first = results[0]
    bands = {}
    for k in kinds:  # the first model's mean gap with its 95% band over replicates
        gap = np.array(first["damages"][k]["loss"]) - np.array(first["control"]["loss"])  # [T, B]
        ci = mean_ci_axis(gap, axis=1)
        bands[k] = {q: ci[q].tolist() for q in ("mean", "lo", "hi")}
    iv = first["intervals"]
    figs = [("recovery", f"Recovery curves ({first['model']})",
             f"Loss minus the undamaged control's loss after each damage: mean over {s.protocol.replicates} "
             "replicates, band: 95% interval.", plots.fig_curves_ci(steps, bands, "gap to the undamaged control",
                                                                     "steps after damage", "loss - control loss")),
            ("success", f"Success rate ({first['model']})", "Fraction of replicates recovered at the end of "
             "regrowth; error bars: Wilson 95% interval.",
             plots.fig_ci_bars(kinds, {"success rate": [iv[k]["success_rate"] for k in kinds]}, "success rate",
                               "fraction recovered", hline=1.0)),
            ("time", f"Time to recover ({first['model']})", "Median over the recovered replicates; error bars: "
             "bootstrap 95% interval (none: fewer than 2 recovered).",
             plots.fig_ci_bars(kinds, {"median time": [iv[k]["median_time"] for k in kinds]},
                               "median time to recover", "steps after damage")),
            ("gallery", f"Wounds and regrowth ({first['model']}, replicate 0)",
             "Right after the damage, half-way and at the end of regrowth; last row the undamaged control.",
             plots.fig_damage_gallery(snapshots[0], kinds, [0, int(steps[len(steps) // 2]), int(steps[-1])]))]
    if len(results) > 1:
        gaps = np.array([[np.mean(np.array(r["damages"][k]["loss"]) - np.array(r["control"]["loss"]), 1)
                          for k in kinds] for r in results])  # [models, kinds, T]
        figs.append(("recovery_models", "Recovery curves across models", "Mean over replicates per model; "
                     "band: sd across models, thin lines: each model.",
                     plots.fig_curves(steps, gaps, kinds, "gap to the undamaged control", "steps after damage",
                                      "loss - control loss")))
    return figs


def run(settings: DamageReportSettings, progress=None, models=None, t_start: float | None = None) -> DamageReportResult:
    """Measure every model's panel (``damage_assays.run``), summarise across models, draw
    the figures. models: the loaded models (default: load ``settings.models``); progress:
    called with the number of regrowth steps done."""
    import nca

    from analysis.plots import png_bytes
    from analysis.rollouts import euclidean, geometry_caveat
    from analysis.stats import fmt_ci

    t_start = time.time() if t_start is None else t_start
    s = settings.damage
    models = [nca.load_model(m) for m in settings.models] if models is None else models
    measured = D.run(models, s, progress=progress)
    results, snapshots = measured["results"], measured["snapshots"]
    # the gallery in the body's frame: a hex grid's axial array would be drawn sheared
    snapshots = [{k: euclidean(v, m.model_config) for k, v in snap.items()} for snap, m in zip(snapshots, models)]
    kinds = list(s.panel)
    p = s.protocol
    report = {"models": [r["model"] for r in results], "command": settings.command,
              "settings": {"grow": p.grow_steps, "regrow": p.regrow_steps, "replicates": p.replicates,
                           "every": p.every, "damages": kinds, "seed": s.seed, "size": s.size},
              "conventions": {**conventions(s), **geometry_caveat(models, D.HEX_WOUND_GEOMETRY)},
              "summary": across_models(results, kinds), "results": results}
    pngs = [(n, t, cap, png_bytes(f)) for n, t, cap, f in figures(results, snapshots, s)]
    report["timing_s"] = time.time() - t_start
    rows = [[r["model"], k + (" (unseen)" if k in D.UNSEEN else ""), fmt_ci(r["intervals"][k]["erased_fraction"]),
             fmt_ci(r["intervals"][k]["success_rate"]), fmt_ci(r["intervals"][k]["median_time"], 0),
             fmt_ci(r["intervals"][k]["final_gap"], 4)] for r in results for k in kinds]
    return DamageReportResult(settings, report, pngs, rows)


def preflight(settings: DamageReportSettings) -> list:
    """Load the models (a bad name: one NCAError, before anything is written) -> the models."""
    import nca

    return [nca.load_model(m) for m in settings.models]


def run_with_progress(settings: DamageReportSettings, quiet: bool = False, models=None) -> DamageReportResult:
    """``run`` with a progress bar on stderr (none with quiet). models: ``preflight``'s
    (default: loaded here, first, so a bad name stops before any output)."""
    import sys

    from tqdm import tqdm

    t_start = time.time()
    models = preflight(settings) if models is None else models
    bar = tqdm(total=settings.damage.protocol.regrow_steps * len(models), file=sys.stderr, unit="step",
               desc="damage", disable=quiet)
    try:
        return run(settings, progress=bar.update, models=models, t_start=t_start)
    finally:
        bar.close()


def write(result: DamageReportResult, out: Path) -> None:
    """report.json, index.html and the PNGs into ``out`` (``analysis.reports.html.report_files``),
    each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import esc, report_files, table

    rep, p = result.report, result.settings.damage.protocol
    intro = (f"<p><code>{esc(rep['command'])}</code><br>{len(rep['models'])} model(s) x {p.replicates} replicates; "
             f"damage after {p.grow_steps} steps, {p.regrow_steps} steps of regrowth, loss every {p.every} steps; "
             f"intervals 95% over replicates. Ran in {rep['timing_s']:.0f} s.</p>"
             + table(["model", "damage", "fraction of body erased", "success rate", "median time to recover",
                      "final gap"], result.rows))
    for name, data in report_files("Damage assays: " + ", ".join(rep["models"]), intro, dict(rep),
                                   result.figures).items():
        atomic_write_bytes(Path(out) / name, data)


def summary_lines(result: DamageReportResult) -> list[str]:
    """One line per model and wound: erased fraction, success rate, median time to recover."""
    from analysis.stats import fmt_ci

    return [f"{r['model']} {k:9s} erased {fmt_ci(i['erased_fraction'])}, success {fmt_ci(i['success_rate'])}, "
            f"median time {fmt_ci(i['median_time'], 0)}"
            for r in result.report["results"] for k, i in ((k, r["intervals"][k]) for k in result.settings.damage.panel)]
