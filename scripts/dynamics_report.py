"""Training dynamics: loss, PCA/axis measures and knockout effects at every checkpoint kept
along training (``checkpoints/step_*.msgpack``, kept by default by scripts/train.py), for
one run or several (e.g. the seeds of a --seeds run: curves with spread).

    python scripts/dynamics_report.py runs/lizard --out reports/dyn
    python scripts/dynamics_report.py runs/lizard4/seed_* --out reports/dyn4 --pairs

When do axis components emerge, is there a sharp (grokking-like) drop in the loss, and do
essential channels / redundant pairs appear before or after it? Writes DIR/report.json
(keys in docs/dissection2.md), DIR/index.html and the figures as DIR/*.png.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from nca.cli import run_cli


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories with kept checkpoints")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--steps", type=int, default=None, help="growth steps measured (default: the run's rollout_max)")
    ap.add_argument("--long", type=int, default=None, help="persistence horizon (default: 3 x --steps)")
    ap.add_argument("--components", type=int, default=4, help="PCs measured per checkpoint (default 4)")
    ap.add_argument("--pairs", action="store_true", help="also all double knockouts (redundancy, epistasis)")
    ap.add_argument("--max-checkpoints", type=int, default=None, help="use at most N kept checkpoints (log-spread)")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed of the rollouts")
    return ap.parse_args(argv)


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
    if len({c.model.channels for _, c, _ in runs}) > 1:
        raise NCAError("all runs must have the same number of channels")
    for name in ("steps", "long", "max_checkpoints"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise NCAError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if a.components < 1:
        raise NCAError("--components must be >= 1")
    if a.out.exists() and not a.out.is_dir():
        raise NCAError(f"--out {a.out} exists and is not a folder")

    import jax
    import numpy as np
    from tqdm import tqdm

    from analysis import dynamics as Dy
    from analysis import plots, report
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
    per_ckpt = Dy.knockout_rollouts(runs[0][1].model.channels, a.pairs)
    bar = tqdm(total=sum(len(p[2]) for p in plans) * per_ckpt, file=sys.stderr, unit="rollout", desc="dynamics")
    results = []
    for r, cfg, kept, steps, long_steps in plans:
        template = init_params(jax.random.key(0), cfg.model)
        model = LoadedModel(str(r), cfg.model, template, cfg.target, cfg.grid_size, cfg.target_size,
                            cfg.target_padding, cfg)
        target = model.target_image()
        cks = []
        for step, path in kept:
            bar.set_description(f"dynamics {r.name} step {step}")
            params = ckpt.load_kept(path, template)
            cks.append({"step": step, **Dy.measure_checkpoint(model, params, target, key, cfg.grid_size, steps,
                                                              long_steps, a.components, a.pairs, progress=bar.update)})
        results.append({"run": str(r), "target": cfg.target, "experiment": cfg.experiment, "seed": cfg.seed,
                        "train_steps": cfg.train_steps, "grid": cfg.grid_size, "steps": steps, "long_steps": long_steps,
                        "checkpoints": cks, "series": Dy.series(cks)})
    bar.close()

    out = {"runs": [r["run"] for r in results],
           "command": "python scripts/dynamics_report.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
           "settings": {"components": a.components, "pairs": a.pairs, "seed": a.seed},
           "conventions": {
               "loss": "MSE of the RGBA as seen (clipped) to the target after `steps` (loss) and `long_steps` (loss_long) "
                       "steps from the seed",
               "pca": "own PCA of the hidden channels per checkpoint (fitted at steps/2 and steps), measured at `steps`; "
                      "kinds as in docs/pca.md",
               "knockouts": "growth-condition effects (analysis.knockouts); NaN while the intact model has not grown "
                            "(reference loss > half the empty-grid loss)",
               "phase_change": "consecutive kept checkpoints with the largest drop of log10(loss); share = that drop / "
                               "total drop",
               "onset": "first kept step from which the property holds at every later kept checkpoint"},
           "results": results}
    if len(results) > 1:
        out["spread"] = {
            "phase_change_to_step": report.spread([np.nan if r["series"]["phase_change"] is None
                                                   else r["series"]["phase_change"]["to_step"] for r in results]),
            **{f"onset_{k}": report.spread([np.nan if r["series"]["onset"][k] is None else r["series"]["onset"][k]
                                            for r in results]) for k in results[0]["series"]["onset"]},
            "final_loss": report.spread([r["series"]["loss"][-1] for r in results])}

    # curves over the union of kept steps (NaN where a run lacks a step)
    all_steps = sorted({s for r in results for s in r["series"]["steps"]})

    def grid_of(keys):
        arr = np.full((len(results), len(keys), len(all_steps)), np.nan)
        for i, r in enumerate(results):
            pos = [all_steps.index(s) for s in r["series"]["steps"]]
            for j, k in enumerate(keys):
                arr[i, j, pos] = r["series"][k]
        return arr

    pc = results[0]["series"]["phase_change"]
    vline = pc["to_step"] if pc else None
    many = len(results) > 1
    band = " Bands: sd across runs; thin lines: each run." if many else ""
    figs = [("loss", "Loss along training",
             f"Loss of the model kept at each training step, grown {results[0]['steps']} steps (and {results[0]['long_steps']}) "
             f"from the seed. Vertical line: the largest drop between kept checkpoints (first run).{band}",
             plots.fig_curves(all_steps, grid_of(["loss", "loss_long"]), ["growth loss", "long-run loss"],
                              "loss vs training step", "training step", "loss", logx=True, logy=True, vline=vline)),
            ("axes", "Axis components along training",
             f"Own PCA of the hidden channels at each checkpoint: largest directional and |radial| rank association "
             f"among the top {a.components} PCs, and PC1's variance share.{band}",
             plots.fig_curves(all_steps, grid_of(["max_association", "max_abs_radial", "pc1_variance"]),
                              ["max directional \u03c1", "max |radial \u03c1|", "PC1 variance share"],
                              "axis measures vs training step", "training step", "", logx=True, vline=vline)),
            ("knockouts", "Knockout effects along training",
             "Number of hidden channels whose knockout (growth) has effect >= 0.5"
             + (", and redundant pairs" if a.pairs else "") + f"; NaN before a body grows.{band}",
             plots.fig_curves(all_steps, grid_of(["essential_channels"] + (["redundant_pairs"] if a.pairs else [])),
                              ["essential channels"] + (["redundant pairs"] if a.pairs else []),
                              "knockouts vs training step", "training step", "count", logx=True, vline=vline))]
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figs]
    out["timing_s"] = time.time() - t_start
    rows = []
    for r in results:
        s = r["series"]
        pcs = s["phase_change"]
        rows.append([Path(r["run"]).name, len(s["steps"]), s["loss"][-1],
                     f"{pcs['from_step']}->{pcs['to_step']} ({pcs['share_of_total_drop']:.0%})" if pcs and pcs["share_of_total_drop"] is not None else "-"]
                    + [s["onset"][k] for k in s["onset"]])
    head = ["run", "checkpoints", "final loss", "largest loss drop (share)"] + [f"onset: {k}" for k in results[0]["series"]["onset"]]
    intro = (f"<p><code>{report.esc(out['command'])}</code><br>Ran in {out['timing_s']:.0f} s.</p>"
             + report.table(head, rows))
    title = "Training dynamics: " + ", ".join(Path(x).name for x in out["runs"])
    for name, data in report.report_files(title, intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    for row in rows:
        print("  ".join(f"{h}: {v}" for h, v in zip(head, row)), file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
