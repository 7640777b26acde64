"""The error and attack tolerance report (issue 28): ``scripts/degradation_report.py`` is
argparse -> ``DegradationReportSettings`` -> ``run`` -> ``write`` -> ``summary_lines``. The
curves themselves are measured by ``analysis.causal.degradation`` (``run_model``); every key
of report.json is documented in docs/degradation.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nca.errors import NCAError

from analysis.causal.degradation import EFFECT_FAIL, UNIT_KS, DegradationSettings, _grid_check, run_model, unit_grid

@dataclass(frozen=True)
class DegradationReportSettings:
    """A degradation report: the models (run directories or published names), what is
    measured, and the command line shown on the page."""

    models: tuple[str, ...]
    degradation: DegradationSettings = DegradationSettings()
    command: str = ""


@dataclass(frozen=True)
class DegradationResult:
    """report: the JSON-ready report dict; figures: (name, title, caption, PNG bytes)."""

    report: dict
    figures: list


ORDERS = ("error", "attack", "greedy")


def conventions(s: DegradationSettings) -> dict:
    """report.json's "conventions": how every number is defined."""
    return {
        "effect": "(L - L_ref) / (L_empty - L_ref) per fire-mask replicate (same fire masks as the intact run): "
                  "L = RGBA MSE to the target after the condition's steps; 0 = intact, 1 = as bad as an empty grid",
        "orders": "error: random order, a fresh permutation per draw (Albert, Jeong & Barabasi 2000); attack: "
                  "worst first by the single-removal effect; greedy: at each step of the k grid, the remaining "
                  f"parts (the {s.greedy_pool or 'all'} with the largest single effects) re-ranked by their "
                  "marginal effect given what is removed, the top (k_next - k) removed",
        "removal": "unit zero: its output row of w2 zeroed; unit mean: its activation held at its mean over alive "
                   "cells of the intact run (w2 row zeroed, mean_j w2[j] added to b2); channel zero/mean: the hidden "
                   "channel zeroed / set to its alive-cell mean in the incoming state of every step",
        "default_mode": "zero: it is the knockout atlas's definition (comparable to single-unit numbers there); "
                        "mean is reported beside it because removing a unit that is always on by zeroing also "
                        "removes its constant contribution (a bias), which mean ablation keeps",
        "cells": "living cells killed once at the start of persistence (whole state zeroed); x: percent of the "
                 "alive cells; error: a random order of the cells per draw, nested over the fractions; attack "
                 f"(cell_attack = {s.cell_attack}; 0: none): the grid cut into {s.cell_attack} x {s.cell_attack} "
                 "patches, each patch's alive cells killed alone (single effect), then cells killed patch by "
                 "patch, worst patch first; attack_order and single_effect are patch ids (row-major) and their "
                 "single effects",
        "k_grid": (f"units: k in {list(s.unit_ks)}" if s.unit_ks else
                   f"units: k in {list(UNIT_KS)} scaled to the model's hidden width (unit_grid)") + "; channels: every k",
        "k50": f"first k of the grid (as a fraction of the parts) at which the effect exceeds {EFFECT_FAIL}, per "
               "(draw, replicate); never: censored at 1 + 1/n_parts and counted",
        "auc": "trapezoid area under the effect clipped to [0, 1] against k / n_parts: 0 = nothing matters, "
               "1 = any removal is fatal",
        "gap": "attack (or greedy) AUC minus the error AUC of the same replicate (mean over draws); mean and t "
               "interval over replicates",
        "interval": f"mean and 95% t interval over draws x replicates (error: n = {s.draws} x {s.replicates}) or "
                    f"replicates (attack, greedy: n = {s.replicates})",
    }


def report_settings(args: dict, command: str = "") -> DegradationReportSettings:
    """The settings of a report from the script's parsed flags (``vars(argparse.Namespace)``):
    ``models``, every ``DegradationSettings`` field by its name (lists become tuples) and
    ``no_greedy``. Unknown keys (out, quiet) are ignored."""
    from dataclasses import fields

    d = {f.name: (tuple(args[f.name]) if isinstance(args[f.name], list) else args[f.name])
         for f in fields(DegradationSettings) if f.name in args}
    if "no_greedy" in args:
        d["greedy"] = not args["no_greedy"]
    return DegradationReportSettings(models=tuple(args["models"]), degradation=DegradationSettings(**d),
                                     command=command)


def preflight(settings: DegradationReportSettings) -> list:
    """Load every model and check the unit grid against its width (a bad name or a k beyond
    the units: one line, before a report folder is claimed)."""
    import nca

    if not settings.models:
        raise NCAError("no model given")
    models = [nca.load_model(m) for m in settings.models]
    for m in models:
        _grid_check(settings.degradation.unit_ks or unit_grid(m.model_config.hidden), m.model_config.hidden,
                    f"{m.name}: unit_ks")
    return models


def run(settings: DegradationReportSettings, progress=None, models=None) -> DegradationResult:
    """Measure every model (``models``: loaded already, else ``preflight``). progress(str)
    gets a line per curve."""
    import time

    t0 = time.time()
    s = settings.degradation
    models = models or preflight(settings)
    res = [run_model(m, s, progress) for m in models]
    rep = {"models": [r["model"] for r in res], "command": settings.command,
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()},
           "conventions": conventions(s),
           "results": [{k: v for k, v in r.items() if k != "raw"} for r in res]}
    if len(res) > 1:
        rep["across_models"] = across_models(rep["results"])
    from analysis.plots import png_bytes

    figs = [(n, t, cap, png_bytes(f)) for n, t, cap, f in figures(rep, s)]
    rep["timing_s"] = time.time() - t0
    return DegradationResult(rep, figs)


def run_with_progress(settings: DegradationReportSettings, quiet: bool = False, models=None) -> DegradationResult:
    """``run`` with a progress line per curve on stderr (none with quiet): the report contract's
    entry point for scripts (analysis.reports.html.run_report)."""
    import sys

    return run(settings, None if quiet else (lambda line: print(line, file=sys.stderr, flush=True)), models)


def across_models(results: list[dict]) -> dict:
    """Per part/mode/condition/order: each model's AUC and k50 side by side, and their mean
    with a t interval over the models (n = models)."""
    from analysis.stats import mean_ci

    out = {}
    first = results[0]["curves"]
    for part, modes in first.items():
        for mode, conds in modes.items():
            for cond, summ in conds.items():
                row = {}
                for o in ORDERS:
                    if o not in summ:
                        continue
                    for q in ("auc", "k50"):
                        vals = [r["curves"][part][mode][cond][o][q]["mean"] for r in results]
                        row[f"{o}_{q}"] = {"per_model": vals, "across": mean_ci(vals)}
                out[f"{part}/{mode}/{cond}"] = row
    return out


def figures(rep: dict, s: DegradationSettings) -> list:
    """One figure per part: rows = removal modes, columns = conditions; per model the error
    curve (mean and 95 % band) and the attack and greedy curves. -> (name, title, caption, Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    res = rep["results"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for part, by_mode in res[0]["curves"].items():
        modes = list(by_mode)
        conds = list(by_mode[modes[0]])
        fig, axes = plt.subplots(len(modes), len(conds), figsize=(4 * len(conds), 3.2 * len(modes)),
                                 squeeze=False)
        for i, mode in enumerate(modes):
            for j, cond in enumerate(conds):
                ax = axes[i, j]
                for mi, r in enumerate(res):
                    c = r["curves"][part][mode][cond]
                    x = np.asarray(c["ks"]) / c["n_parts"]
                    col = colours[mi % len(colours)]
                    e = c["error"]
                    ax.plot(x, e["mean"], color=col, label=f"{r['model']} error")
                    lo = np.nan_to_num(np.asarray(e["lo"], float), nan=np.asarray(e["mean"]))
                    hi = np.nan_to_num(np.asarray(e["hi"], float), nan=np.asarray(e["mean"]))
                    ax.fill_between(x, lo, hi, color=col, alpha=0.2)
                    if "attack" in c:
                        ax.plot(x, c["attack"]["mean"], color=col, ls="--", label="attack")
                    if "greedy" in c:
                        ax.plot(x, c["greedy"]["mean"], color=col, ls=":", label="greedy")
                ax.axhline(EFFECT_FAIL, color="grey", lw=0.5)
                ax.set_title(f"{part}, {mode}: {cond}", fontsize=9)
                ax.set_xlabel(f"fraction of {part} removed")
                ax.set_ylabel("effect (1 = as empty)")
                ax.set_ylim(-0.1, 1.3)
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        out.append((f"curves_{part}", f"Degradation of {part}",
                    f"Effect against the fraction of {part} removed. Solid: random order (error), band: 95% over "
                    f"{s.draws} draws x {s.replicates} replicates; dashed: worst first by single effect (attack); "
                    f"dotted: greedy re-ranking. Grey line: effect {EFFECT_FAIL}. Effects above 1 mean the body "
                    "overgrew (worse than empty); the axis stops at 1.3 (report.json has every value).", fig))
    return out


def summary_lines(result: DegradationResult) -> list[str]:
    """One line per model, part, mode and condition: k50 and AUC per order, the gap."""
    from analysis.stats import fmt_ci

    lines = []
    for r in result.report["results"]:
        for part, modes in r["curves"].items():
            for mode, conds in modes.items():
                for cond, c in conds.items():
                    parts = [f"{o} k50 {fmt_ci(c[o]['k50'])} auc {fmt_ci(c[o]['auc'])}" for o in ORDERS if o in c]
                    gap = f"; gap(attack-error) {fmt_ci(c['gap_attack'])}" if "gap_attack" in c else ""
                    lines.append(f"{r['model']} {part}/{mode}/{cond}: " + "; ".join(parts) + gap)
    return lines


def write(result: DegradationResult, out) -> None:
    """report.json, index.html (``analysis.reports.html.report_files``) and the PNGs, each atomically."""
    from pathlib import Path

    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import esc, report_files

    rep = dict(result.report)
    intro = (f"<p>Command: <code>{esc(rep.get('command', ''))}</code></p><pre>"
             + esc("\n".join(summary_lines(result))) + "</pre>")
    files = report_files("Error and attack tolerance: " + ", ".join(rep["models"]), intro, rep,
                         list(result.figures))
    # report_files names the dissection docs as where keys are documented; ours are in docs/degradation.md
    files["index.html"] = files["index.html"].replace(b"docs/interventions.md", b"docs/degradation.md")
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(Path(out) / name, data)
