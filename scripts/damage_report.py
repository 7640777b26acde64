"""Damage assays: a standard panel of wounds (half cut, central square, random discs,
scattered cell loss, and shapes never seen in training: a stripe and a ring) -> recovery
curves, time to recover and success rate, each with n and a 95 % interval over fire-mask
replicates, across models (seeds).

    python scripts/damage_report.py distill:lizard/regenerating --out reports/damage
    python scripts/damage_report.py distill:lizard/growing distill:lizard/persistent distill:lizard/regenerating --out r
    python scripts/damage_report.py runs/lizard4/seed_* --out reports/damage4 --damages square,stripe

Writes DIR/report.json (every number; keys in docs/dissection2.md), DIR/index.html and the
figures as DIR/*.png.
"""

import shlex
import sys
import time

from nca import cli

PANEL = ("cut_left", "square", "circles", "scatter", "stripe", "ring")


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--grow", type=cli.positive_int, default=200, metavar="N", help="CA steps of growth before the damage")
    p.add_argument("--regrow", type=cli.positive_int, default=300, metavar="N", help="CA steps of regrowth after it")
    cli.add_replicates(p, 5)
    cli.add_every(p, 5, help="keep one loss record every N CA steps")
    p.add_argument("--damages", type=cli.str_list, default=",".join(PANEL), metavar="LIST",
                   help=f"comma-separated panel of wounds, from {', '.join(PANEL)}")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from analysis import damage_assays as D

    s = D.DamageSettings(D.Protocol(a.grow, a.regrow, a.replicates, a.every), tuple(a.damages), a.seed, a.size)
    cli.check_writable(a.out, is_dir=True)

    import numpy as np
    from tqdm import tqdm

    import nca
    from analysis import plots, report
    from analysis.stats import fmt_ci, mean_ci, mean_ci_axis
    from nca.checkpoint import atomic_write_bytes

    t_start = time.time()
    models = [nca.load_model(m) for m in a.models]
    bar = tqdm(total=a.regrow * len(models), file=sys.stderr, unit="step", desc="damage", disable=a.quiet)
    measured = D.run(models, s, progress=bar.update)
    bar.close()
    results, snapshots = measured["results"], measured["snapshots"]
    kinds = list(s.panel)
    protocol = s.protocol

    summary = {k: {"success_rate": report.spread([r["damages"][k]["success_rate"] for r in results]),
                   "median_time": report.spread([np.nan if r["damages"][k]["median_time"] is None
                                                 else r["damages"][k]["median_time"] for r in results]),
                   "erased_fraction": report.spread([np.mean(r["damages"][k]["erased_fraction"]) for r in results])}
               for k in kinds}
    for per_kind in summary.values():  # across models (training seeds): n and a 95% interval too
        for v in per_kind.values():
            v["ci"] = mean_ci(v["values"])
    out = {"models": [r["model"] for r in results],
           "command": "python scripts/damage_report.py " + " ".join(shlex.quote(x) for x in
                                                                     (sys.argv[1:] if argv is None else argv)),
           "settings": {"grow": a.grow, "regrow": a.regrow, "replicates": a.replicates, "every": a.every,
                        "damages": kinds, "seed": a.seed, "size": a.size},
           "conventions": {
               "loss": "MSE of the RGBA as seen (clipped to [0, 1]) to the target",
               "recovered": f"gap = loss - loss of the undamaged control (same keys); recovered when gap <= "
                            f"{protocol.rel_tol} * gap right after the damage, or gap <= {protocol.abs_tol} * empty-grid loss",
               "time_to_recover": "steps after the damage from which it stays recovered (null: not recovered at the end)",
               "success": "recovered at the end of regrowth",
               "intervals": f"per model, over its {a.replicates} replicates (fire masks; random wounds differ): "
                            "success_rate: Wilson 95% interval; median_time: percentile bootstrap over the recovered "
                            "replicates (null with a reason if fewer than 2 recovered); erased_fraction, final_gap: "
                            "t interval; n is given",
               "summary": "across models: mean, sd, each model's value and ci (mean and 95% t-interval over models)",
               "unseen": "stripe and ring: shapes never used as training damage (discs)"},
           "summary": summary, "results": results}

    steps = np.array(results[0]["steps"])
    first = results[0]
    bands = {}
    for k in kinds:  # the first model's mean gap with its 95% band over replicates
        gap = np.array(first["damages"][k]["loss"]) - np.array(first["control"]["loss"])  # [T, B]
        ci = mean_ci_axis(gap, axis=1)
        bands[k] = {q: ci[q].tolist() for q in ("mean", "lo", "hi")}
    iv = first["intervals"]
    figs = [("recovery", f"Recovery curves ({first['model']})",
             f"Loss minus the undamaged control's loss after each damage: mean over {a.replicates} replicates, "
             "band: 95% interval.", plots.fig_curves_ci(steps, bands, "gap to the undamaged control",
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
                          for k in kinds] for r in results])
        figs.append(("recovery_models", "Recovery curves across models", "Mean over replicates per model; "
                     "band: sd across models, thin lines: each model.",
                     plots.fig_curves(steps, gaps, kinds, "gap to the undamaged control", "steps after damage",
                                      "loss - control loss")))
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figs]
    out["timing_s"] = time.time() - t_start
    rows = [[r["model"], k + (" (unseen)" if k in D.UNSEEN else ""), fmt_ci(r["intervals"][k]["erased_fraction"]),
             fmt_ci(r["intervals"][k]["success_rate"]), fmt_ci(r["intervals"][k]["median_time"], 0),
             fmt_ci(r["intervals"][k]["final_gap"], 4)] for r in results for k in kinds]
    intro = (f"<p><code>{report.esc(out['command'])}</code><br>{len(models)} model(s) x {a.replicates} replicates; "
             f"damage after {a.grow} steps, {a.regrow} steps of regrowth, loss every {a.every} steps; intervals "
             f"95% over replicates. Ran in {out['timing_s']:.0f} s.</p>"
             + report.table(["model", "damage", "fraction of body erased", "success rate", "median time to recover",
                             "final gap"], rows))
    for name, data in report.report_files("Damage assays: " + ", ".join(out["models"]), intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    for r in results:
        for k in kinds:
            i = r["intervals"][k]
            print(f"{r['model']} {k:9s} erased {fmt_ci(i['erased_fraction'])}, success {fmt_ci(i['success_rate'])}, "
                  f"median time {fmt_ci(i['median_time'], 0)}", file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
