"""Damage assays: a standard panel of wounds (half cut, central square, random discs,
scattered cell loss, and shapes never seen in training: a stripe and a ring) -> recovery
curves, time to recover and success rate, across replicates and models (seeds).

    python scripts/damage_report.py distill:lizard/regenerating --out reports/damage
    python scripts/damage_report.py distill:lizard/growing distill:lizard/persistent distill:lizard/regenerating --out r
    python scripts/damage_report.py runs/lizard4/seed_* --out reports/damage4

Writes DIR/report.json (every number; keys in docs/dissection2.md), DIR/index.html and the
figures as DIR/*.png.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from nca.cli import run_cli

PANEL = ("cut_left", "square", "circles", "scatter", "stripe", "ring")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="run directories or published names")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--grow", type=int, default=200, help="steps of growth before the damage (default 200)")
    ap.add_argument("--regrow", type=int, default=300, help="steps of regrowth after it (default 300)")
    ap.add_argument("--replicates", type=int, default=4, help="bodies per model (fire masks; random wounds differ)")
    ap.add_argument("--every", type=int, default=5, help="measure the loss every N steps (default 5)")
    ap.add_argument("--damages", nargs="+", default=list(PANEL), choices=PANEL, help="the panel (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from nca.errors import NCAError

    for name in ("grow", "regrow", "replicates", "every"):
        if getattr(a, name) < 1:
            raise NCAError(f"--{name} must be >= 1, got {getattr(a, name)}")
    if a.out.exists() and not a.out.is_dir():
        raise NCAError(f"--out {a.out} exists and is not a folder")

    import jax
    import numpy as np
    from tqdm import tqdm

    import nca
    from analysis import damage_assays as D
    from analysis import plots, report
    from analysis.knockouts import target_on_grid
    from nca.checkpoint import atomic_write_bytes

    t_start = time.time()
    models = [nca.load_model(m) for m in a.models]
    targets = [m.target_image() for m in models]
    protocol = D.Protocol(a.grow, a.regrow, a.replicates, a.every)
    bar = tqdm(total=a.regrow * len(models), file=sys.stderr, unit="step", desc="damage")
    results = []
    for m, target in zip(models, targets):
        bar.set_description(f"damage {m.name}")
        grid = a.size or m.grid_size
        target = target_on_grid(target, grid)
        r = D.run_panel(m.params, m.model_config, target, jax.random.key(a.seed), grid, protocol, a.damages,
                        progress=bar.update)
        ctrl = np.array(r["control"]["loss"])[0]
        if np.all(ctrl > 0.5 * r["empty_loss"]):
            raise NCAError(f"{m.name} has not grown its target after {a.grow} steps (loss {ctrl.mean():.4f}, an "
                           f"empty grid: {r['empty_loss']:.4f}); raise --grow")
        results.append({"model": m.name, **r})
    bar.close()
    snapshots = [r.pop("snapshots") for r in results]

    summary = {k: {"success_rate": report.spread([r["damages"][k]["success_rate"] for r in results]),
                   "median_time": report.spread([np.nan if r["damages"][k]["median_time"] is None
                                                 else r["damages"][k]["median_time"] for r in results]),
                   "erased_fraction": report.spread([np.mean(r["damages"][k]["erased_fraction"]) for r in results])}
               for k in a.damages}
    out = {"models": [r["model"] for r in results],
           "command": "python scripts/damage_report.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
           "settings": {"grow": a.grow, "regrow": a.regrow, "replicates": a.replicates, "every": a.every,
                        "damages": a.damages, "seed": a.seed},
           "conventions": {
               "loss": "MSE of the RGBA as seen (clipped to [0, 1]) to the target",
               "recovered": f"gap = loss - loss of the undamaged control (same keys); recovered when gap <= "
                            f"{protocol.rel_tol} * gap right after the damage, or gap <= {protocol.abs_tol} * empty-grid loss",
               "time_to_recover": "steps after the damage from which it stays recovered (null: not recovered at the end)",
               "success": "recovered at the end of regrowth",
               "unseen": "stripe and ring: shapes never used as training damage (discs)"},
           "summary": summary, "results": results}

    steps = np.array(results[0]["steps"])
    kinds = list(a.damages)
    # curves: [models, kinds, T] of the mean over replicates of the gap to the control
    gaps = np.array([[np.mean(np.array(r["damages"][k]["loss"]) - np.array(r["control"]["loss"]), 1) for k in kinds]
                     for r in results])
    sr = np.array([[r["damages"][k]["success_rate"] for k in kinds] for r in results])
    mt = np.array([[np.nan if r["damages"][k]["median_time"] is None else r["damages"][k]["median_time"]
                    for k in kinds] for r in results])
    figs = [("recovery", "Recovery curves",
             "Loss minus the undamaged control's loss, after each damage (mean over replicates"
             + ("; bands: sd across models, thin lines: each model" if len(models) > 1 else "") + ").",
             plots.fig_curves(steps, gaps, kinds, "gap to the undamaged control", "steps after damage",
                              "loss - control loss")),
            ("success", "Success rate", "Fraction of replicates recovered at the end of regrowth"
             + (" (bars: mean over models, dots: each model)." if len(models) > 1 else "."),
             plots.fig_spread(kinds, sr, "success rate", "fraction recovered")),
            ("time", "Time to recover", "Median over the recovered replicates (missing: none recovered).",
             plots.fig_spread(kinds, mt, "median time to recover", "steps after damage")),
            ("gallery", f"Wounds and regrowth ({models[0].name}, replicate 0)",
             "Right after the damage, half-way and at the end of regrowth; last row the undamaged control.",
             plots.fig_damage_gallery(snapshots[0], kinds, [0, int(steps[len(steps) // 2]), int(steps[-1])]))]
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figs]
    out["timing_s"] = time.time() - t_start
    rows = [[k + (" (unseen)" if k in D.UNSEEN else ""), report.fmt_spread(summary[k]["erased_fraction"]),
             report.fmt_spread(summary[k]["success_rate"]), report.fmt_spread(summary[k]["median_time"], 0)]
            for k in kinds]
    intro = (f"<p><code>{report.esc(out['command'])}</code><br>{len(models)} model(s) x {a.replicates} replicates; "
             f"damage after {a.grow} steps, {a.regrow} steps of regrowth, loss every {a.every} steps. "
             f"Ran in {out['timing_s']:.0f} s.</p>"
             + report.table(["damage", "fraction of body erased", "success rate", "median time to recover"], rows))
    for name, data in report.report_files("Damage assays: " + ", ".join(out["models"]), intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    for k in kinds:
        print(f"{k:9s} erased {report.fmt_spread(summary[k]['erased_fraction'])}, success "
              f"{report.fmt_spread(summary[k]['success_rate'])}, median time {report.fmt_spread(summary[k]['median_time'], 0)}",
              file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
