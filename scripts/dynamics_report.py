"""Training dynamics: how the rule comes to be, across the checkpoints kept along training
(``checkpoints/step_*.msgpack``, kept by default by scripts/train.py), for one run or
several (the seeds of a --seeds run: curves with 95 % bands over seeds).

    python scripts/dynamics_report.py runs/lizard --out reports/dyn
    python scripts/dynamics_report.py runs/q5/seed_* --out reports/dyn5 --no-knockouts

Per run: sharp transitions of the dense training-loss curve (metrics.csv; a smooth spline
background against a sharp step, BIC, profile-likelihood interval: analysis.dynamics),
the learning-rate changes beside them. Per kept checkpoint: growth, persistence and
regeneration losses (the grokking analogue: do the abilities appear suddenly, after the
loss has flattened?), weight norm and distance from the initialisation, positional probes
(when do the cells first know where they are?), each final principal component tracked in
a common basis (the final model's PCA: when does it first appear?), the own-PCA axis
measures and the channel knockouts. Writes DIR/report.json (keys in docs/development.md
and docs/dissection2.md), DIR/index.html and the figures as DIR/*.png.
"""

import csv
import shlex
import sys
import time
from pathlib import Path

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run directories with kept checkpoints")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--steps", type=cli.positive_int, default=None, metavar="N",
                   help="growth steps measured (default: the run's rollout_max)")
    p.add_argument("--long", type=cli.positive_int, default=None, metavar="N",
                   help="persistence horizon in CA steps (default: 3 x --steps)")
    p.add_argument("--regrow", type=cli.positive_int, default=None, metavar="N",
                   help="CA steps of regrowth after cutting the grown body's left half (default: --steps)")
    p.add_argument("--components", type=cli.positive_int, default=4, metavar="N",
                   help="PCs measured and tracked per checkpoint")
    cli.add_replicates(p, 3)
    p.add_argument("--pairs", action="store_true", help="also all double knockouts (redundancy, epistasis)")
    p.add_argument("--no-knockouts", action="store_true", help="skip the channel knockouts (the slowest part)")
    p.add_argument("--null", type=cli.nonneg_int, default=0, metavar="N",
                   help="test each final component's map at every checkpoint against the spatial null of issue 13 "
                        "with N surrogates (analysis.axis_null; 0: no test, 99 or 199 for a test)")
    p.add_argument("--max-checkpoints", type=cli.positive_int, default=None, metavar="N",
                   help="use at most N kept checkpoints per run (log-spread)")
    cli.add_seed(p)
    cli.add_quiet(p)
    return p.parse_args(argv)


def read_metrics(run: Path) -> dict:
    """metrics.csv -> {"step": [...], "loss": [...], "lr": [...]} (empty lists if absent)."""
    out = {"step": [], "loss": [], "lr": []}
    path = run / "metrics.csv"
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


def main(argv=None) -> int:
    a = parse_args(argv)
    from nca import checkpoint as ckpt
    from nca.config import load_config
    from nca.errors import NCAError

    runs = []
    for r in a.runs:
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
    cli.check_writable(a.out, is_dir=True)

    import jax
    import numpy as np
    from tqdm import tqdm

    from analysis import development_plots as DP
    from analysis import dynamics as Dy
    from analysis import plots, report
    from analysis.stats import fmt_ci, mean_ci
    from nca.api import LoadedModel
    from nca.checkpoint import atomic_write_bytes
    from nca.model import init_params

    t_start = time.time()
    key = jax.random.key(a.seed)
    plans = []
    for r, cfg, kept in runs:
        if a.max_checkpoints and len(kept) > a.max_checkpoints:
            idx = np.unique(np.round(np.linspace(0, len(kept) - 1, a.max_checkpoints)).astype(int))
            kept = [kept[i] for i in idx]
        steps = a.steps or cfg.rollout_max
        plans.append((r, cfg, kept, steps, a.long or 3 * steps))
    per_ckpt = 1 if a.no_knockouts else Dy.knockout_rollouts(runs[0][1].model.channels, a.pairs)
    bar = tqdm(total=sum(len(p[2]) for p in plans) * per_ckpt, file=sys.stderr, unit="rollout", desc="dynamics",
               disable=a.quiet)
    results = []
    for r, cfg, kept, steps, long_steps in plans:
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
            from analysis.axis_null import NullSettings
            null = NullSettings(n_surrogates=a.null)
        cks = []
        for step, path in kept:
            bar.set_description(f"dynamics {r.name} step {step}")
            params = ckpt.load_kept(path, template)
            c = {"step": step}
            c.update(Dy.measure_checkpoint(model, params, target, key, cfg.grid_size, steps, long_steps,
                                           a.components, a.pairs, progress=bar.update, knockouts=not a.no_knockouts))
            if a.no_knockouts:
                bar.update(1)
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
        results.append({"run": str(r), "target": cfg.target, "experiment": cfg.experiment, "seed": cfg.seed,
                        "train_steps": cfg.train_steps, "grid": cfg.grid_size, "steps": steps, "long_steps": long_steps,
                        "regrow_steps": dev.regrow, "empty_loss": empty, "checkpoints": cks, "series": ser,
                        "dense_loss": {"n": len(metrics["step"]), "lr_changes": lr_changes(metrics),
                                       "transitions": trans},
                        "_metrics": metrics})
    bar.close()

    out = {"runs": [r["run"] for r in results],
           "command": "python scripts/dynamics_report.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
           "settings": {"components": a.components, "pairs": a.pairs, "knockouts": not a.no_knockouts, "null": a.null,
                        "replicates": a.replicates, "seed": a.seed},
           "conventions": {
               "loss": "MSE of the RGBA as seen (clipped) to the target after `steps` (loss) and `long_steps` (loss_long) "
                       "steps from the seed; loss_regen: after cutting the grown body's left half at `steps` and "
                       "regrowing `regrow_steps` (mean over replicates)",
               "transitions": "sharp steps of the dense training loss (metrics.csv) against a smooth spline background "
                              "in log-log (BIC > 10 with the effective n of autocorrelated losses; 95% profile-likelihood "
                              "interval of the location); [] = none found",
               "pca": "own PCA of the hidden channels per checkpoint (fitted at steps/2 and steps), measured at `steps`",
               "tracking": "each final PC's map (at `steps`) vs the checkpoint's best-matching own PC map (map_corr, |r|) "
                           "and vs the final loading applied to the checkpoint's states (common_basis_map_corr); "
                           f"appears: map_corr >= {Dy.APPEAR_CORR} from then on; with --null, significant: the final "
                           "loading's map on this checkpoint's body beats the spatial null (Holm-adjusted p < 0.05, axial "
                           "or radial; analysis.axis_null)",
               "probe": "leave-one-replicate-out kNN / ridge probes of the body-frame position (analysis.positional) "
                        "from the hidden channels at `steps`; decodes_position: grown and kNN along-axis R^2 > 0.5 "
                        "from then on",
               "onset": "{step, after}: the first kept step from which the property holds at every later kept "
                        "checkpoint, and the kept step before it (the onset lies between); null: never for good",
               "persists / regenerates": "grown (loss <= half the empty loss) and loss_long <= 2 loss / loss_regen <= 2 "
                                         "loss_grown",
               "knockouts": "growth-condition effects (analysis.knockouts); NaN while the intact model has not grown",
               "intervals": "over runs (training seeds): mean and 95% t-interval, n = runs"},
           "results": results}
    # across runs (training seeds)
    onset_keys = list(results[0]["series"]["onset"])

    def onset_step(r, k):
        v = r["series"]["onset"][k]
        return np.nan if v is None else (v["step"] if isinstance(v, dict) else v)

    first_tr = [r["dense_loss"]["transitions"]["transitions"] for r in results]
    out["across_runs"] = {
        "n_runs": len(results),
        "final_loss": mean_ci([r["series"]["loss"][-1] for r in results]),
        "final_loss_long": mean_ci([r["series"]["loss_long"][-1] for r in results]),
        "final_loss_regen": mean_ci([r["series"]["loss_regen"][-1] for r in results]),
        "n_transitions": mean_ci([len(t) for t in first_tr]),
        "runs_with_transition": int(sum(bool(t) for t in first_tr)),
        "first_transition_step": mean_ci([t[0]["step"] if t else np.nan for t in first_tr]),
        **{f"onset_{k}": mean_ci([onset_step(r, k) for r in results]) for k in onset_keys},
        "final_probe_knn_r2_along": mean_ci([r["series"]["probe_knn_r2_along"][-1] for r in results]),
        "final_distance_from_init": mean_ci([r["series"]["distance_from_init"][-1] for r in results])}

    # figures: curves over the union of kept steps (NaN where a run lacks a step)
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
    dmax = max((max(r["_metrics"]["step"]) if r["_metrics"]["step"] else 0) for r in results)
    figs = []
    if dmax:
        dense = np.full((len(results), 1, dmax), np.nan)
        for i, r in enumerate(results):
            st = np.asarray(r["_metrics"]["step"], int)
            dense[i, 0, st - 1] = r["_metrics"]["loss"]
        tr_v = [(t["step"], "transition") for ts in first_tr for t in ts]
        figs.append(("dense_loss", "Training loss, every step",
                     "metrics.csv of each run (log-log; log-loss averaged over 15-step windows for the figure only: "
                     "transitions are detected on the raw curve). Dashed lines: learning-rate changes and detected "
                     f"transitions (every run). Geometric mean over runs.{band}",
                     DP.fig_series(np.arange(1, dmax + 1), dense, ["training loss"], "training loss vs step",
                                   "loss", logy=True, vlines=vl + tr_v, smooth=15)))
    figs += [
        ("abilities", "Growth, persistence and regeneration along training (the grokking analogue)",
         f"Loss of the model kept at each step: grown {results[0]['steps']} steps, {results[0]['long_steps']} steps, and "
         f"regrown {results[0]['regrow_steps']} steps after a cut.{band}",
         DP.fig_series(all_steps, grid_of(["loss", "loss_long", "loss_regen"]), ["growth", "persistence (long)",
                       "regeneration"], "abilities vs training step", "loss", logy=True, vlines=vl)),
        ("weights", "Weights along training", f"Weight norm and distance from the initialisation.{band}",
         DP.fig_series(all_steps, grid_of(["weight_norm", "distance_from_init"]), ["||theta||", "||theta - theta_0||"],
                       "weights vs training step", "L2 norm", vlines=vl)),
        ("probes", "When do the cells know where they are?",
         f"Held-out R\u00b2 of kNN probes of the along / across / radial position, and the shuffled control.{band}",
         DP.fig_series(all_steps, grid_of(["probe_knn_r2_along", "probe_knn_r2_across", "probe_knn_r2_radius",
                                           "probe_shuffled_r2_along"]),
                       ["kNN along", "kNN across", "kNN radius", "shuffled (along)"], "position probes vs training step",
                       "held-out R\u00b2", vlines=vl, hline=0)),
        ("tracking", "Final components in a common basis",
         f"|r| between each final PC map and the best-matching PC map of the checkpoint (same cells).{band}",
         DP.fig_series(all_steps, grid_of([f"pc{j + 1}_map_corr" for j in range(a.components)]),
                       [f"final PC{j + 1}" for j in range(a.components)], "component tracking vs training step",
                       "map |r|", vlines=vl)),
        ("axes", "Axis components along training (own PCA)",
         f"Largest directional and |radial| rank association among the top {a.components} own PCs.{band}",
         DP.fig_series(all_steps, grid_of(["max_association", "max_abs_radial", "pc1_variance"]),
                       ["max directional \u03c1", "max |radial \u03c1|", "PC1 variance share"], "axis measures", "",
                       vlines=vl))]
    if not a.no_knockouts:
        figs.append(("knockouts", "Knockout effects along training",
                     "Hidden channels whose knockout (growth) has effect >= 0.5" + (", and redundant pairs" if a.pairs else "")
                     + f"; NaN before a body grows.{band}",
                     DP.fig_series(all_steps, grid_of(["essential_channels"] + (["redundant_pairs"] if a.pairs else [])),
                                   ["essential channels"] + (["redundant pairs"] if a.pairs else []),
                                   "knockouts vs training step", "count", vlines=vl)))
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figs]
    for r in results:
        del r["_metrics"]
    out["timing_s"] = time.time() - t_start

    def on(v):
        return "-" if v is None else (f"{v['after']}..{v['step']}" if isinstance(v, dict) else str(v))

    rows = []
    for r in results:
        s = r["series"]
        ts = r["dense_loss"]["transitions"]
        tr_txt = "; ".join(f"{t['step']:.0f} [{t['interval'][0]:.0f}, {t['interval'][1]:.0f}] "
                           f"(-{t['drop_log10']:.2f} dec)" for t in ts["transitions"]) or (ts["reason"] or "none")
        rows.append([Path(r["run"]).name, len(s["steps"]), f"{s['loss'][-1]:.4f}", tr_txt,
                     ",".join(map(str, r["dense_loss"]["lr_changes"])) or "-"]
                    + [on(s["onset"][k]) for k in onset_keys])
    head = ["run", "checkpoints", "final loss", "transitions (dense loss)", "lr changes"] + [f"onset: {k}" for k in onset_keys]
    ar = out["across_runs"]
    summary = [["final growth loss", fmt_ci(ar["final_loss"], 4)], ["final persistence loss", fmt_ci(ar["final_loss_long"], 4)],
               ["final regeneration loss", fmt_ci(ar["final_loss_regen"], 4)],
               ["runs with a sharp transition", f"{ar['runs_with_transition']} of {ar['n_runs']}"],
               ["first transition step", fmt_ci(ar["first_transition_step"], 0)],
               ["final kNN along-axis R\u00b2", fmt_ci(ar["final_probe_knn_r2_along"])]] + \
              [[f"onset step: {k}", fmt_ci(ar[f"onset_{k}"], 0)] for k in onset_keys]
    intro = (f"<p><code>{report.esc(out['command'])}</code><br>Ran in {out['timing_s']:.0f} s.</p>"
             + report.table(head, rows) + "<h2>Across runs</h2>" + report.table(["measure", "mean [95% CI] (n)"], summary))
    title = "Training dynamics: " + ", ".join(Path(x).name for x in out["runs"])
    for name, data in report.report_files(title, intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    for row in rows:
        print("  ".join(f"{h}: {v}" for h, v in zip(head, row)), file=sys.stderr)
    for row in summary:
        print(f"  {row[0]}: {row[1]}", file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
