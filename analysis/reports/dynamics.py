"""The training-dynamics report as a library: frozen settings -> ``run`` -> result -> ``write``.

``scripts/dynamics_report.py`` is argparse -> ``DynamicsReportSettings`` -> ``preflight``
-> ``run`` -> ``write`` -> ``summary_lines``. Over the checkpoints kept along training
(``checkpoints/step_*.msgpack``) of one run or several (the seeds of a --seeds run), with
the measures of ``analysis.development.dynamics``: per run the sharp transitions of the dense
training-loss curve (metrics.csv) and the learning-rate changes beside them; per kept
checkpoint growth, persistence and regeneration losses, weights, positional probes, the
final components tracked in a common basis, the own-PCA axis measures and the channel
knockouts; across runs the means with 95 % intervals. Keys of ``report.json`` are in
docs/development.md and docs/interventions.md.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.development import dynamics as Dy


@dataclass(frozen=True)
class DynamicsReportSettings:
    """A dynamics report. runs: run directories with kept checkpoints; steps: growth steps
    measured (None: each run's rollout_max); long: persistence horizon (None: 3 x steps);
    regrow: regrowth steps after cutting the left half (None: steps); components: PCs
    measured and tracked; replicates: fire-mask replicates; pairs: also all double
    knockouts; knockouts: the channel knockouts at all; null: spatial-null surrogates per
    tracked map (0: no test); max_checkpoints: at most this many kept checkpoints per run
    (log-spread; None: all); seed: the one PRNG seed; command: shown on the page."""

    runs: tuple[Path, ...]
    steps: int | None = None
    long: int | None = None
    regrow: int | None = None
    components: int = 4
    replicates: int = 3
    pairs: bool = False
    knockouts: bool = True
    null: int = 0
    max_checkpoints: int | None = None
    seed: int = 0
    command: str = ""


@dataclass(frozen=True)
class DynamicsReportResult:
    """report: every number (report.json, JSON-safe after ``analysis.reports.html.json_safe``);
    figures: (name, title, caption, PNG bytes)."""

    settings: DynamicsReportSettings
    report: dict
    figures: list = field(default_factory=list)


def read_metrics(run: Path) -> dict:
    """metrics.csv -> {"step": [...], "loss": [...], "lr": [...]} (empty lists if absent)."""
    out = {"step": [], "loss": [], "lr": []}
    path = Path(run) / "metrics.csv"
    if not path.is_file():
        return out
    with path.open() as f:
        for row in csv.DictReader(f):
            try:
                out["step"].append(int(row["step"]))
                out["loss"].append(float(row["loss"]))
                out["lr"].append(float(row.get("lr") or "nan"))
            except (KeyError, ValueError):
                continue
    return out


def lr_changes(metrics: dict) -> list[int]:
    """Steps at which the learning rate changes (the schedule's decays)."""
    lr, st = metrics["lr"], metrics["step"]
    return [st[i] for i in range(1, len(lr)) if lr[i] != lr[i - 1]]


def preflight(settings: DynamicsReportSettings) -> list[tuple]:
    """Check the runs before anything is computed or written: each a run directory with at
    least 2 kept checkpoints, all of one architecture. -> [(run, config, kept)]."""
    from nca import checkpoint as ckpt
    from nca.config import load_config
    from nca.errors import NCAError

    runs = []
    for r in map(Path, settings.runs):
        if not r.is_dir():
            raise NCAError(f"{r} is not a run directory")
        cfg = load_config(r / ckpt.CONFIG)
        kept = ckpt.list_kept(r)
        if len(kept) < 2:
            raise NCAError(f"{r} has {len(kept)} kept checkpoint(s) in {r / ckpt.KEPT_DIR}; train with "
                           "--keep-checkpoints log (the default) to keep params along training")
        runs.append((r, cfg, kept))
    archs = {c.model for _, c, _ in runs}
    if len(archs) > 1:
        raise NCAError("the runs have different architectures (" + "; ".join(
            f"{r.name}: {c.model.channels} channels, {c.model.hidden} hidden" for r, c, _ in runs)
            + "): one dynamics report compares runs of one architecture")
    return runs


def plan(settings: DynamicsReportSettings, runs: list[tuple]) -> list[tuple]:
    """[(run, config, kept)] -> [(run, config, kept checkpoints used, steps, long steps)]."""
    plans = []
    for r, cfg, kept in runs:
        if settings.max_checkpoints and len(kept) > settings.max_checkpoints:
            idx = np.unique(np.round(np.linspace(0, len(kept) - 1, settings.max_checkpoints)).astype(int))
            kept = [kept[i] for i in idx]
        steps = settings.steps or cfg.rollout_max
        plans.append((r, cfg, kept, steps, settings.long or 3 * steps))
    return plans


def rollouts(settings: DynamicsReportSettings, plans: list[tuple]) -> int:
    """Progress-bar units ``run`` reports (knockout rollouts, or one per checkpoint)."""
    per_ckpt = Dy.knockout_rollouts(plans[0][1].model.channels, settings.pairs) if settings.knockouts else 1
    return sum(len(p[2]) for p in plans) * per_ckpt


def measure_run(a: DynamicsReportSettings, r: Path, cfg, kept, steps: int, long_steps: int, key,
                progress=None, describe=None) -> tuple[dict, dict]:
    """One run's kept checkpoints -> (its report entry, its metrics.csv for the figures)."""
    import jax

    from nca import checkpoint as ckpt
    from nca.api import LoadedModel
    from nca.model import init_params

    update = progress or (lambda n: None)
    template = init_params(jax.random.key(0), cfg.model)
    model = LoadedModel(str(r), cfg.model, template, cfg.target, cfg.grid_size, cfg.target_size,
                        cfg.target_padding, cfg)
    target = model.target_image()
    dev = Dy.DevelopmentAlongTraining(steps=steps, regrow=a.regrow or steps, replicates=max(2, a.replicates),
                                      n_components=a.components)
    init = ckpt.load_kept(kept[0][1], template)
    # the final checkpoint first: its PCA is the common basis every checkpoint is tracked in
    final_params = ckpt.load_kept(kept[-1][1], template)
    final = Dy.measure_development(model, final_params, init, target, key, cfg.grid_size, dev, None)
    ref = Dy.final_reference(final["states"], cfg.model.alive_threshold, a.components)
    null = None
    if a.null:
        from analysis.representation.axis_null import NullSettings
        null = NullSettings(n_surrogates=a.null)
    cks = []
    for step, path in kept:
        if describe:
            describe(f"dynamics {r.name} step {step}")
        params = ckpt.load_kept(path, template)
        c = {"step": step}
        c.update(Dy.measure_checkpoint(model, params, target, key, cfg.grid_size, steps, long_steps,
                                       a.components, a.pairs, progress=update, knockouts=a.knockouts))
        if not a.knockouts:
            update(1)
        d = Dy.measure_development(model, params, init, target, key, cfg.grid_size, dev, ref, null)
        d.pop("states")
        c["development"] = d
        cks.append(c)
    metrics = read_metrics(r)
    empty = float(np.mean(np.square(np.asarray(target, np.float64))))
    ser = Dy.series(cks)
    grown = [lv <= 0.5 * empty for lv in ser["loss"]]
    dser = Dy.development_series(cks, a.components, grown)
    ser["onset"].update(dser.pop("onset"))
    ser.update(dser)
    ser["onset"]["persists"] = Dy.onset_interval(
        ser["steps"], [g and ll <= 2 * lv for g, ll, lv in zip(grown, ser["loss_long"], ser["loss"])])
    ser["onset"]["regenerates"] = Dy.onset_interval(
        ser["steps"], [g and lr <= 2 * lg for g, lr, lg in zip(grown, ser["loss_regen"], ser["loss_grown"])])
    trans = Dy.detect_transitions(metrics["step"], metrics["loss"])
    entry = {"run": str(r), "target": cfg.target, "experiment": cfg.experiment, "seed": cfg.seed,
             "train_steps": cfg.train_steps, "grid": cfg.grid_size, "steps": steps, "long_steps": long_steps,
             "regrow_steps": dev.regrow, "empty_loss": empty, "checkpoints": cks, "series": ser,
             "dense_loss": {"n": len(metrics["step"]), "lr_changes": lr_changes(metrics), "transitions": trans}}
    return entry, metrics


def conventions() -> dict:
    """report.json's "conventions": how every number is defined."""
    return {
        "loss": "MSE of the RGBA as seen (clipped) to the target after `steps` (loss) and `long_steps` (loss_long) "
                "steps from the seed; loss_regen: after cutting the grown body's left half at `steps` and "
                "regrowing `regrow_steps` (mean over replicates)",
        "transitions": "sharp steps of the dense training loss (metrics.csv) against a smooth spline background "
                       "in log-log (BIC > 10 with the effective n of autocorrelated losses; 95% profile-likelihood "
                       "interval of the location); sharp: 10-90% span <= 10% of its step, the width's 95% upper "
                       "bound included; supported by >= 25 points and 10% of the step on each side; [] = none "
                       "found. gradual: accepted steps that are not sharp (docs/validation/transitions.md)",
        "pca": "own PCA of the hidden channels per checkpoint (fitted at steps/2 and steps), measured at `steps`",
        "tracking": "each final PC's map (at `steps`) vs the checkpoint's best-matching own PC map (map_corr, |r|) "
                    "and vs the final loading applied to the checkpoint's states (common_basis_map_corr); "
                    f"appears: map_corr >= {Dy.APPEAR_CORR} from then on; with --null, significant: the final "
                    "loading's map on this checkpoint's body beats the spatial null (Holm-adjusted p < 0.05, axial "
                    "or radial; analysis.representation.axis_null)",
        "probe": "leave-one-replicate-out kNN / ridge probes of the body-frame position (analysis.development.positional) "
                 "from the hidden channels at `steps`; decodes_position: grown and kNN along-axis R^2 > 0.5 "
                 "from then on",
        "onset": "{step, after}: the first kept step from which the property holds at every later kept "
                 "checkpoint, and the kept step before it (the onset lies between); null: never for good",
        "persists / regenerates": "grown (loss <= half the empty loss) and loss_long <= 2 loss / loss_regen <= 2 "
                                  "loss_grown",
        "knockouts": "growth-condition effects (analysis.causal.knockouts); NaN while the intact model has not grown",
        "intervals": "over runs (training seeds): mean and 95% t-interval, n = runs"}


def _onset_step(r: dict, k: str) -> float:
    v = r["series"]["onset"][k]
    return np.nan if v is None else (v["step"] if isinstance(v, dict) else v)


def across_runs(results: list[dict]) -> dict:
    """Means over runs (training seeds) with 95 % t-intervals: final losses, transitions, onsets."""
    from analysis.stats import mean_ci

    onset_keys = list(results[0]["series"]["onset"])
    first_tr = [r["dense_loss"]["transitions"]["transitions"] for r in results]
    return {
        "n_runs": len(results),
        "final_loss": mean_ci([r["series"]["loss"][-1] for r in results]),
        "final_loss_long": mean_ci([r["series"]["loss_long"][-1] for r in results]),
        "final_loss_regen": mean_ci([r["series"]["loss_regen"][-1] for r in results]),
        "n_transitions": mean_ci([len(t) for t in first_tr]),
        "runs_with_transition": int(sum(bool(t) for t in first_tr)),
        "first_transition_step": mean_ci([t[0]["step"] if t else np.nan for t in first_tr]),
        **{f"onset_{k}": mean_ci([_onset_step(r, k) for r in results]) for k in onset_keys},
        "final_probe_knn_r2_along": mean_ci([r["series"]["probe_knn_r2_along"][-1] for r in results]),
        "final_distance_from_init": mean_ci([r["series"]["distance_from_init"][-1] for r in results])}


def figures(rep: dict, metrics: list[dict], a: DynamicsReportSettings) -> list[tuple[str, str, str, object]]:
    """The report's figures: (name, title, caption, matplotlib Figure); curves over the union
    of kept steps (NaN where a run lacks a step). metrics: each run's metrics.csv."""
    from analysis.plots.development import fig_series

    results = rep["results"]
    all_steps = sorted({s for r in results for s in r["series"]["steps"]})

    def grid_of(keys):
        arr = np.full((len(results), len(keys), len(all_steps)), np.nan)
        for i, r in enumerate(results):
            pos = [all_steps.index(s) for s in r["series"]["steps"]]
            for j, k in enumerate(keys):
                arr[i, j, pos] = r["series"][k]
        return arr

    band = " Bands: 95% t-interval over runs; thin lines: each run." if len(results) > 1 else ""
    lrs = sorted({s for r in results for s in r["dense_loss"]["lr_changes"]})
    vl = [(s, "lr") for s in lrs]
    # dense loss: a common step axis (runs may differ in length: NaN beyond a run's end)
    dmax = max((max(m["step"]) if m["step"] else 0) for m in metrics)
    figs = []
    if dmax:
        dense = np.full((len(results), 1, dmax), np.nan)
        for i, m in enumerate(metrics):
            st = np.asarray(m["step"], int)
            dense[i, 0, st - 1] = m["loss"]
        tr_v = [(t["step"], "transition") for r in results for t in r["dense_loss"]["transitions"]["transitions"]]
        figs.append(("dense_loss", "Training loss, every step",
                     "metrics.csv of each run (log-log; log-loss averaged over 15-step windows for the figure only: "
                     "transitions are detected on the raw curve). Dashed lines: learning-rate changes and detected "
                     f"transitions (every run). Geometric mean over runs.{band}",
                     fig_series(np.arange(1, dmax + 1), dense, ["training loss"], "training loss vs step",
                                "loss", logy=True, vlines=vl + tr_v, smooth=15)))
    first = results[0]
    figs += [
        ("abilities", "Growth, persistence and regeneration along training (the grokking analogue)",
         f"Loss of the model kept at each step: grown {first['steps']} steps, {first['long_steps']} steps, and "
         f"regrown {first['regrow_steps']} steps after a cut.{band}",
         fig_series(all_steps, grid_of(["loss", "loss_long", "loss_regen"]), ["growth", "persistence (long)",
                    "regeneration"], "abilities vs training step", "loss", logy=True, vlines=vl)),
        ("weights", "Weights along training", f"Weight norm and distance from the initialisation.{band}",
         fig_series(all_steps, grid_of(["weight_norm", "distance_from_init"]), ["||theta||", "||theta - theta_0||"],
                    "weights vs training step", "L2 norm", vlines=vl)),
        ("probes", "When do the cells know where they are?",
         f"Held-out R\u00b2 of kNN probes of the along / across / radial position, and the shuffled control.{band}",
         fig_series(all_steps, grid_of(["probe_knn_r2_along", "probe_knn_r2_across", "probe_knn_r2_radius",
                                        "probe_shuffled_r2_along"]),
                    ["kNN along", "kNN across", "kNN radius", "shuffled (along)"], "position probes vs training step",
                    "held-out R\u00b2", vlines=vl, hline=0)),
        ("tracking", "Final components in a common basis",
         f"|r| between each final PC map and the best-matching PC map of the checkpoint (same cells).{band}",
         fig_series(all_steps, grid_of([f"pc{j + 1}_map_corr" for j in range(a.components)]),
                    [f"final PC{j + 1}" for j in range(a.components)], "component tracking vs training step",
                    "map |r|", vlines=vl)),
        ("axes", "Axis components along training (own PCA)",
         f"Largest directional and |radial| rank association among the top {a.components} own PCs.{band}",
         fig_series(all_steps, grid_of(["max_association", "max_abs_radial", "pc1_variance"]),
                    ["max directional \u03c1", "max |radial \u03c1|", "PC1 variance share"], "axis measures", "",
                    vlines=vl))]
    if a.knockouts:
        figs.append(("knockouts", "Knockout effects along training",
                     "Hidden channels whose knockout (growth) has effect >= 0.5" + (", and redundant pairs" if a.pairs else "")
                     + f"; NaN before a body grows.{band}",
                     fig_series(all_steps, grid_of(["essential_channels"] + (["redundant_pairs"] if a.pairs else [])),
                                ["essential channels"] + (["redundant pairs"] if a.pairs else []),
                                "knockouts vs training step", "count", vlines=vl)))
    return figs


def run(settings: DynamicsReportSettings, progress=None, describe=None) -> DynamicsReportResult:
    """Measure every run's kept checkpoints, summarise across runs, draw. progress:
    callable(n) as rollouts finish; describe: callable(text) naming the checkpoint at work.

    -> ``DynamicsReportResult``: the JSON-ready report dict and the figures (name, title, caption,
    PNG bytes)."""
    import jax

    from analysis.plots import png_bytes

    a = settings
    t_start = time.time()
    key = jax.random.key(a.seed)
    results, metrics = [], []
    for r, cfg, kept, steps, long_steps in plan(a, preflight(a)):
        entry, m = measure_run(a, r, cfg, kept, steps, long_steps, key, progress, describe)
        results.append(entry)
        metrics.append(m)
    rep = {"runs": [r["run"] for r in results], "command": a.command,
           "settings": {"components": a.components, "pairs": a.pairs, "knockouts": a.knockouts, "null": a.null,
                        "replicates": a.replicates, "seed": a.seed},
           "conventions": conventions(), "results": results, "across_runs": across_runs(results)}
    pngs = [(n, t, cap, png_bytes(f)) for n, t, cap, f in figures(rep, metrics, a)]
    rep["timing_s"] = time.time() - t_start
    return DynamicsReportResult(settings, rep, pngs)


def run_with_progress(settings: DynamicsReportSettings, quiet: bool = False) -> DynamicsReportResult:
    """``run`` with a rollout progress bar on stderr (none with quiet)."""
    import sys

    from tqdm import tqdm

    total = rollouts(settings, plan(settings, preflight(settings)))
    bar = tqdm(total=total, file=sys.stderr, unit="rollout", desc="dynamics", disable=quiet)
    try:
        return run(settings, progress=bar.update, describe=bar.set_description)
    finally:
        bar.close()


def _onset_text(v) -> str:
    return "-" if v is None else (f"{v['after']}..{v['step']}" if isinstance(v, dict) else str(v))


def run_table(rep: dict) -> tuple[list[str], list[list]]:
    """(head, rows): per run the checkpoints, final loss, dense-loss transitions, learning-rate
    changes and onsets."""
    onset_keys = list(rep["results"][0]["series"]["onset"])
    rows = []
    for r in rep["results"]:
        s = r["series"]
        ts = r["dense_loss"]["transitions"]
        tr_txt = "; ".join(f"{t['step']:.0f} [{t['interval'][0]:.0f}, {t['interval'][1]:.0f}] "
                           f"(-{t['drop_log10']:.2f} dec)" for t in ts["transitions"]) or (ts["reason"] or "none")
        rows.append([Path(r["run"]).name, len(s["steps"]), f"{s['loss'][-1]:.4f}", tr_txt,
                     ",".join(map(str, r["dense_loss"]["lr_changes"])) or "-"]
                    + [_onset_text(s["onset"][k]) for k in onset_keys])
    head = ["run", "checkpoints", "final loss", "transitions (dense loss)", "lr changes"] + [f"onset: {k}" for k in onset_keys]
    return head, rows


def across_table(rep: dict) -> list[list[str]]:
    """[[measure, "mean [95% CI] (n)"]] of ``across_runs``."""
    from analysis.stats import fmt_ci

    onset_keys = list(rep["results"][0]["series"]["onset"])
    ar = rep["across_runs"]
    return [["final growth loss", fmt_ci(ar["final_loss"], 4)], ["final persistence loss", fmt_ci(ar["final_loss_long"], 4)],
            ["final regeneration loss", fmt_ci(ar["final_loss_regen"], 4)],
            ["runs with a sharp transition", f"{ar['runs_with_transition']} of {ar['n_runs']}"],
            ["first transition step", fmt_ci(ar["first_transition_step"], 0)],
            ["final kNN along-axis R\u00b2", fmt_ci(ar["final_probe_knn_r2_along"])]] + \
        [[f"onset step: {k}", fmt_ci(ar[f"onset_{k}"], 0)] for k in onset_keys]


def write(result: DynamicsReportResult, out: Path) -> None:
    """report.json, index.html and the PNGs into ``out`` (the one report writer,
    ``analysis.reports.html.report_files``), each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import esc, report_files, table

    rep = result.report
    head, rows = run_table(rep)
    intro = (f"<p><code>{esc(rep['command'])}</code><br>Ran in {rep['timing_s']:.0f} s.</p>"
             + table(head, rows) + "<h2>Across runs</h2>" + table(["measure", "mean [95% CI] (n)"], across_table(rep)))
    title = "Training dynamics: " + ", ".join(Path(x).name for x in rep["runs"])
    for name, data in report_files(title, intro, rep, result.figures).items():
        atomic_write_bytes(Path(out) / name, data)


def summary_lines(result: DynamicsReportResult) -> list[str]:
    """What the script prints: the per-run table's rows, then the across-runs measures."""
    head, rows = run_table(result.report)
    return (["  ".join(f"{h}: {v}" for h, v in zip(head, row)) for row in rows]
            + [f"  {m}: {v}" for m, v in across_table(result.report)])
