"""Knockout atlas of a Growing NCA: single and double knockouts of the hidden channels (and
top PCs) in growth, persistence and regeneration; epistasis, redundant (backup) pairs and
self-repair curves. Several models (e.g. the seeds of a --seeds run) are compared.

    python scripts/knockout_report.py distill:lizard/regenerating --out reports/ko
    python scripts/knockout_report.py runs/lizard4/seed_* --out reports/ko4 --pairs growth regeneration

Writes DIR/report.json (every number; keys in docs/dissection2.md), DIR/index.html and the
figures as DIR/*.png.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from nca.cli import run_cli

CONDITIONS = ("growth", "persistence", "regeneration")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--grow", type=int, default=160, help="growth steps (knockout from the seed), default 160")
    ap.add_argument("--persist", type=int, default=160, help="steps of knockout after intact growth (default 160)")
    ap.add_argument("--regrow", type=int, default=100, help="regrowth steps after the cut (default 100)")
    ap.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                    help="the regeneration cut (nca.animate.Cut), default left half")
    ap.add_argument("--replicates", type=int, default=1, help="rollouts (fire masks) averaged per knockout")
    ap.add_argument("--pcs", type=int, default=3, help="top hidden-state PCs knocked out too (mean ablation)")
    ap.add_argument("--mode", default="zero", choices=["zero", "mean"],
                    help="channel knockout: zero, or the channel's mean over alive cells of the intact run")
    ap.add_argument("--pairs", nargs="*", default=["growth"], choices=CONDITIONS,
                    help="conditions in which all pairs are knocked out (default growth; none: no pairs)")
    ap.add_argument("--repair-horizon", type=int, default=60, help="steps of the self-repair curves (0: skip)")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed of the rollouts")
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid)")
    ap.add_argument("--chunk", type=int, default=16, help="knockouts per compiled batch")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from nca.errors import NCAError

    for name in ("grow", "persist", "regrow", "replicates", "chunk"):
        if getattr(a, name) < 1:
            raise NCAError(f"--{name} must be >= 1, got {getattr(a, name)}")
    if a.pcs < 0 or a.repair_horizon < 0:
        raise NCAError("--pcs and --repair-horizon must be >= 0")
    if a.out.exists() and not a.out.is_dir():
        raise NCAError(f"--out {a.out} exists and is not a folder")

    import jax
    import numpy as np
    from tqdm import tqdm

    import nca
    from analysis import knockouts as K
    from analysis import plots, report
    from analysis.interventions import embed_directions
    from analysis.pca import fit_cell_pca
    from analysis.repair import repair_curves
    from analysis.rollouts import grow_states
    from nca.checkpoint import atomic_write_bytes

    t_start = time.time()
    models = [nca.load_model(m) for m in a.models]  # fail early on a bad name
    for m in models:
        if m.model_config.channels != models[0].model_config.channels:
            raise NCAError("all models must have the same number of channels to be compared")
    targets = [m.target_image() for m in models]
    key = jax.random.key(a.seed)
    assay = K.Assay(a.grow, a.persist, a.regrow, a.cut, a.replicates)
    c = models[0].model_config.channels
    channels = list(range(4, c))
    n_pairs = len(channels) * (len(channels) - 1) // 2
    per_model = 3 * (1 + len(channels) + a.pcs) + n_pairs * len(a.pairs) + bool(a.repair_horizon)
    bar = tqdm(total=per_model * len(models), file=sys.stderr, unit="rollout", desc="knockouts")

    results, atlases, repairs = [], [], []
    for m, target in zip(models, targets):
        bar.set_description(f"knockouts {m.name}")
        grid = a.size or m.grid_size
        target = K.target_on_grid(target, grid)
        cfg = m.model_config
        states = grow_states(m, a.grow, key, size=grid)[:, 0]  # [T+1, H, W, C]
        fit_steps = sorted({a.grow // 2, a.grow})
        alive = states[fit_steps, ..., 3] > cfg.alive_threshold
        if alive[-1].sum() < 10:
            raise NCAError(f"{m.name} has {int(alive[-1].sum())} alive cells after {a.grow} steps: nothing to knock out")
        extra, pca_info = None, None
        if a.pcs:
            pca = fit_cell_pca(states[fit_steps, ..., 4:], alive, a.pcs)
            dirs = embed_directions(pca.components, 4, c)
            extra = K.direction_ablations([d[None] for d in dirs], [f"PC{j + 1}" for j in range(a.pcs)], c,
                                          means=[[float(pca.mean @ comp)] for comp in pca.components])
            pca_info = {"fit_steps": fit_steps, "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
                        "components": pca.components.tolist(), "ablation": "mean"}
        means = None
        if a.mode == "mean":
            means = np.zeros(c, np.float32)
            means[4:] = states[fit_steps][alive][:, 4:].mean(0)
        atl = K.atlas(m.params, cfg, target, key, grid, channels, assay, tuple(a.pairs), extra, means,
                      a.chunk, progress=bar.update)
        rep = None
        if a.repair_horizon:
            rep = repair_curves(m.params, cfg, states[a.grow][None], key, a.grow, a.repair_horizon, channels)
            bar.update(1)
        images = atl.pop("images")
        atlases.append(atl)
        repairs.append(rep)
        results.append({"model": m.name, "target": m.target, "grid": grid, "pca": pca_info,
                        "channel_means": None if means is None else means.tolist(),
                        "atlas": atl, "repair": rep, "summary": K.summarise(atl, rep)})
        if len(results) == 1:
            first_images = images
    bar.close()

    out = {
        "models": [r["model"] for r in results],
        "command": "python scripts/knockout_report.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
        "settings": {"grow": a.grow, "persist": a.persist, "regrow": a.regrow, "cut": a.cut,
                     "replicates": a.replicates, "pcs": a.pcs, "mode": a.mode, "pairs": a.pairs,
                     "repair_horizon": a.repair_horizon, "seed": a.seed},
        "conventions": {
            "effect": "(L - L_ref) / (L_empty - L_ref): L = mean RGBA MSE to the target after the condition's "
                      "steps, L_ref the intact run (same keys), L_empty = mean(target^2); 0 = no effect, 1 = as empty",
            "knockout": "channel: zeroed (or set to its mean) in the incoming state of every step of the condition; "
                        "PC: its component set to its mean over alive cells (mean ablation)",
            "epistasis": "effect(ij) - effect(i) - effect(j); < 0 where effects saturate at 1",
            "redundant": f"both single effects < {K.RedundancyThresholds().single_max} and the double >= "
                         f"{K.RedundancyThresholds().double_min}",
            "essential": f"single effect >= {K.ESSENTIAL}",
            "repair": "1 - total/direct RGBA deviation after the horizon (analysis.repair)",
        },
        "results": results,
    }
    if len(results) > 1:
        sp = {}
        for name in CONDITIONS:
            keys = results[0]["summary"][name].keys()
            sp[name] = {k: report.spread([r["summary"][name][k] for r in results]) for k in keys
                        if not k.endswith("_label")}
        if a.repair_horizon:
            sp["repair"] = {k: report.spread([r["summary"]["repair"][k] for r in results])
                            for k in results[0]["summary"]["repair"]}
        out["spread"] = sp

    # figures
    labels = atlases[0]["conditions"]["growth"]["labels"]
    figs = [("effects", "Single knockouts",
             "Effect of knocking out each hidden channel (and PC) in each condition: 0 = as the intact model, "
             "1 = as an empty grid (dotted). " + ("Bars: mean over the models, error bars: sd, dots: each model."
                                                  if len(models) > 1 else ""),
             plots.fig_knockout_effects(atlases)),
            ("gallery", f"Knocked-out bodies ({models[0].name})",
             f"Final RGBA of each condition: start state, intact, then each single knockout. Regeneration: "
             f"{a.cut} cut after {a.grow} steps of intact growth, {a.regrow} steps of regrowth with the knockout.",
             plots.fig_knockout_gallery(first_images, labels))]
    for name in a.pairs:
        figs.append((f"epistasis_{name}", f"Double knockouts and epistasis: {name} ({models[0].name})",
                     "Boxed: redundant (backup) pairs. Epistasis < 0 is expected where both singles already "
                     "hurt (effects saturate at 1).",
                     plots.fig_epistasis(atlases[0]["conditions"][name], channels)))
    if a.repair_horizon:
        figs.append(("repair", f"Self-repair accounting ({models[0].name})",
                     f"From the intact body at step {a.grow}, the channel's perception features ablated: throughout "
                     "(total), in one step only (pulse), or the sum of its one-step effects along the intact run "
                     "(direct: what it would do if nothing reacted). RMS RGBA deviation from the intact run.",
                     plots.fig_repair(repairs[0])))
    if len(results) > 1:
        names = [f"{cond[:5]}: essential" for cond in CONDITIONS]
        vals = np.array([[r["summary"][cond]["essential_channels"] for cond in CONDITIONS] for r in results])
        figs.append(("spread_essential", "Across models: essential channels",
                     "Number of channels whose knockout has effect >= 0.5, per condition (dots: models).",
                     plots.fig_spread(names, vals, "essential channels", "count")))
        if a.pairs:
            vals = np.array([[r["summary"][p]["redundant_pairs"] for p in a.pairs] for r in results])
            figs.append(("spread_redundant", "Across models: redundant pairs", "Per pair condition (dots: models).",
                         plots.fig_spread(list(a.pairs), vals, "redundant pairs", "count")))
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figs]
    out["timing_s"] = time.time() - t_start

    # the page
    rows = []
    for r in results:
        s = r["summary"]
        rows.append([r["model"]] + [s[cn]["essential_channels"] for cn in CONDITIONS]
                    + [s[p]["redundant_pairs"] for p in a.pairs]
                    + ([s["repair"]["median_repair"]] if a.repair_horizon else []))
    head = (["model"] + [f"essential ({cn})" for cn in CONDITIONS] + [f"redundant pairs ({p})" for p in a.pairs]
            + (["median repair"] if a.repair_horizon else []))
    intro = (f"<p><code>{report.esc(out['command'])}</code><br>knockouts of hidden channels {channels[0]}-{channels[-1]} "
             f"({a.mode}) and {a.pcs} PCs; growth {a.grow} steps, persistence {a.persist}, regeneration {a.regrow} "
             f"after a {a.cut} cut; {a.replicates} replicate(s). Ran in {out['timing_s']:.0f} s.</p>"
             + report.table(head, rows))
    red = []
    for r in results:
        for p in a.pairs:
            for f in r["atlas"]["conditions"][p]["redundant"]:
                red.append([r["model"], p, f"{f['pair'][0]}+{f['pair'][1]}", f["effect_single"][0],
                            f["effect_single"][1], f["effect_double"], f["epistasis"]])
    intro += ("<h3>Redundant (backup) pairs</h3>" + (report.table(
        ["model", "condition", "pair", "effect i", "effect j", "effect ij", "epistasis"], red) if red else
        "<p>none flagged</p>"))
    for name, data in report.report_files("Knockout atlas: " + ", ".join(out["models"]), intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    for r in results:
        s = r["summary"]
        print(f"{r['model']}: essential channels " + ", ".join(f"{cn} {s[cn]['essential_channels']}" for cn in CONDITIONS)
              + "".join(f"; redundant pairs ({p}) {s[p]['redundant_pairs']}" for p in a.pairs), file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
