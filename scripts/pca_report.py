"""PCA of a Growing NCA's cell states: axis components, emergence, rotation, comparison.

    python scripts/pca_report.py distill:lizard/persistent --out reports/lizard
    python scripts/pca_report.py runs/lizard --out r --steps 60 120 200 --seeds 4
    python scripts/pca_report.py distill:lizard/regenerating --out r --features mlp --standardize

Writes DIR/report.json (every number; keys in docs/pca.md), DIR/index.html (one
self-contained page) and the figures as DIR/*.png. Step t is the state after t steps.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from nca.cli import run_cli


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="run directory or published name (distill:lizard/persistent)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--rollout", type=int, default=None,
                    help="steps to grow (default: the largest of --steps, or 200)")
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="steps to analyse (default: 1/4, 1/2, 3/4 and all of the rollout)")
    ap.add_argument("--seeds", type=int, default=1, help="rollouts (different fire masks) pooled in the PCA")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed of the first rollout")
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid)")
    ap.add_argument("--features", default="hidden", choices=["hidden", "state", "perception", "mlp"],
                    help="hidden: 12 hidden channels; state: all 16; perception: 48 perception "
                         "features; mlp: 128 hidden-layer activations")
    ap.add_argument("--components", type=int, default=6, help="PCs to keep")
    ap.add_argument("--standardize", action="store_true", help="scale each feature to unit variance first")
    ap.add_argument("--per-step", action="store_true", help="fit one PCA per analysed step instead of pooling")
    ap.add_argument("--every", type=int, default=5, help="emergence plot: measure every N steps")
    ap.add_argument("--regrow", type=int, default=100,
                    help="after the rollout, damage the body (a disc) and regrow this many steps; 0: no damage")
    ap.add_argument("--rotations", type=float, nargs="*", default=[45.0, 90.0, 180.0],
                    help="perception rotations (deg) for the rotation test; none: skip")
    ap.add_argument("--compare", nargs="*", default=None,
                    help="models to compare with (default: the other experiments of a published emoji); "
                         "a second seed of MODEL is always compared")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from nca.errors import NCAError

    if a.seeds < 1:
        raise NCAError("--seeds must be >= 1")
    if a.every < 1:
        raise NCAError("--every must be >= 1")
    if a.components < 1:
        raise NCAError("--components must be >= 1")
    if a.regrow < 0:
        raise NCAError("--regrow must be >= 0")
    if a.steps and min(a.steps) < 1:
        raise NCAError(f"--steps must be >= 1 (step t is the state after t steps), got {min(a.steps)}")
    rollout = a.rollout if a.rollout is not None else (max(a.steps) if a.steps else 200)
    if rollout < 1:
        raise NCAError(f"--rollout must be >= 1, got {rollout}")
    steps = sorted(set(a.steps)) if a.steps else sorted({max(1, rollout * i // 4) for i in (1, 2, 3, 4)})
    bad = [t for t in steps if not 1 <= t <= rollout]
    if bad:
        raise NCAError(f"--steps {bad} outside the rollout: analysed steps must be in 1..{rollout} "
                       f"(raise --rollout or choose smaller steps)")
    if a.out.exists() and not a.out.is_dir():
        raise NCAError(f"--out {a.out} exists and is not a folder")

    import json

    import jax
    import numpy as np
    from tqdm import tqdm

    import nca
    from analysis import dissect, plots, report
    from analysis.axes import AxisThresholds
    from analysis.compare import null_loading_angles_deg
    from analysis.pca import FEATURES, fit_cell_pca, pc_maps, state_features, variance_captured
    from analysis.rollouts import activations, disc_damage, grow_states
    from nca.checkpoint import atomic_write_bytes

    t_start = time.time()
    model = nca.load_model(a.model)
    thr = model.model_config.alive_threshold
    thresholds = AxisThresholds()
    key = jax.random.key(a.seed)

    def feats(m, states):
        """[..., H, W, C] states -> [..., H, W, F] features of model m."""
        if a.features in ("hidden", "state"):
            return state_features(states, a.features)
        return activations(m, states, a.features)

    compare = a.compare
    if compare is None:
        compare = []
        if model.name.startswith("distill:"):
            emoji = model.name.split(":")[1].split("/")[0]
            compare = [n for n in nca.published_names() if n.startswith(f"distill:{emoji}/") and n != model.name]
    others = [nca.load_model(c) for c in compare]  # fail early on a bad name
    damage = a.regrow > 0
    n_stages = 5 + bool(damage) + len(a.rotations) + len(others)
    bar = tqdm(total=n_stages, file=sys.stderr, unit="stage", desc="grow")

    def stage(desc):
        bar.update(1)
        bar.set_description(desc)

    # 1. rollouts and the PCA of the analysed steps
    states = grow_states(model, rollout, key, seeds=a.seeds, size=a.size)  # [T+1, N, H, W, C]
    grid = states.shape[-2]
    stage("pca")
    at = states[steps]  # [S, N, H, W, C]
    pooled, maps, res = dissect.analyse_steps(steps, feats(model, at), at[..., 3], a.components,
                                              a.standardize, a.per_step, a.features, thr, thresholds)
    stage("emergence")

    # 2. emergence over development (seed 0), then damage and regrowth
    ts = sorted(set(range(a.every, rollout + 1, a.every)) | {rollout})
    growth = dissect.track(pooled, ts, feats(model, states[ts, 0]), states[ts, 0, ..., 3], thr, thresholds)
    regrowth, damage_info = None, None
    if damage:
        stage("damage + regrowth")
        alive_end = states[rollout, 0, ..., 3] > thr
        for i in range(100):  # the first training-distribution disc that erases >= 20% of the body
            mask = disc_damage(jax.random.fold_in(key, 1_000_003 + i), (grid, grid))
            frac = float((alive_end & (mask > 0)).sum() / max(alive_end.sum(), 1))
            if frac >= 0.2:
                break
        x_dam = states[rollout] * (1.0 - mask)[None, :, :, None]
        re = grow_states(model, a.regrow, key, seeds=a.seeds, x0=x_dam, t0=rollout)  # [R+1, N, ...]
        rts = sorted(set(range(0, a.regrow + 1, a.every)) | {a.regrow})
        regrowth = dissect.track(pooled, [rollout + t for t in rts], feats(model, re[rts, 0]),
                                 re[rts, 0, ..., 3], thr, thresholds)
        damage_info = {"step": rollout, "regrow_steps": a.regrow, "fraction_of_body_erased": frac,
                       "disc": "nca.train.circle_masks (the article's training damage)"}
    emergence = {"growth": growth, "regrowth": regrowth, "damage": damage_info,
                 "summary": dissect.summarise_emergence(growth, regrowth)}

    # 3. rotation test: grow with rotated perception, score with the same PCA
    t_last = steps[-1]
    ref_body = res["steps"][-1]
    rot_bodies, rot_states, rot_maps = [ref_body], [states[t_last, 0]], [maps[-1, 0]]
    for theta in a.rotations:
        stage(f"rotation {theta:g}")
        m_rot = model.rotated(theta)
        x = grow_states(m_rot, t_last, key, size=a.size)[t_last, 0]
        alive = x[..., 3] > thr
        if alive.sum() < 10:
            raise NCAError(f"the body grown with perception rotated by {theta:g} deg has no alive cells at step {t_last}")
        f = feats(m_rot, x)
        mp = pc_maps(pooled, f, alive)
        evr = variance_captured(pooled, f[None], alive[None])[0]
        rot_bodies.append(dissect.describe_body(mp, x[..., 3], evr, thr, thresholds))
        rot_states.append(x)
        rot_maps.append(mp)
    rotation = dissect.rotation_summary(a.rotations, ref_body, rot_bodies[1:]) if a.rotations else None

    # 4. comparison with a second seed and with other models (own PCA each, same steps)
    comparisons, cmp_rows = [], []
    null = null_loading_angles_deg(jax.random.fold_in(key, 7), int(pooled.mean.shape[0]), a.components)
    pairs = [(f"{model.name} seed {a.seed + 1}", model, jax.random.key(a.seed + 1), True)]
    pairs += [(m.name, m, key, False) for m in others]
    for label, m, k, same in pairs:
        stage(f"compare {label}")
        st = grow_states(m, t_last, k, size=grid)[steps, 0]  # [S, H, W, C]
        alive = st[..., 3] > thr
        if (alive.sum((1, 2)) < 10).any():
            raise NCAError(f"{label} has fewer than 10 alive cells at one of steps {steps}: cannot compare")
        f = feats(m, st)
        p = fit_cell_pca(f, alive, a.components, a.standardize, a.features)
        mp = pc_maps(p, f[-1], alive[-1])
        c = dissect.compare_pcas(pooled, maps[-1, 0], p, mp, same)
        body = dissect.describe_body(mp, st[-1, ..., 3], p.explained_variance_ratio, thr, thresholds)
        c.update({"loading_angles_null_median_deg": null.tolist(), "label": label, "model": m.name, "components_b": body["components"],
                  "body_axis_deg_b": body["body_axis_deg"]})
        comparisons.append(c)
        cmp_rows.append((label, st[-1], mp, body))

    # 5. figures, report.json, index.html
    stage("figures")
    out = {
        "model": model.name,
        "command": "python scripts/pca_report.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
        "grid": grid, "rollout_steps": rollout, "seed": a.seed, "seeds": a.seeds,
        "features": a.features, "features_description": FEATURES[a.features], "n_features": int(pooled.mean.shape[0]),
        "standardize": a.standardize, "alive_threshold": thr,
        "conventions": report.CONVENTIONS, "thresholds": dissect.thresholds_dict(thresholds),
        **res, "emergence": emergence, "rotation": rotation, "comparison": comparisons,
    }
    evr_steps = np.array([[c["explained_variance_ratio"] for c in s["components"]] for s in res["steps"]])
    figs = [("explained_variance", "Explained variance",
             "Left: the pooled PCA's explained variance ratio per component (dots: cumulative). Right: each "
             "component's share of the variance at each analysed step.",
             plots.fig_explained_variance(pooled.explained_variance_ratio, steps, evr_steps)),
            ("pc_maps", "PC maps over development",
             "Each row an analysed step (first seed): the body (dashed: its long axis), then each PC's score "
             "(red +, blue -, grey: dead). Arrows: direction in which an axial component increases; rings: radial.",
             plots.fig_pc_maps(at[:, 0], maps[:, 0], res["steps"], [f"step {t}" for t in steps], thr)),
            ("profiles", f"Profiles at step {steps[-1]}",
             "Each component's score against position along its found direction (radial: against distance "
             "from the centroid), one dot per cell; black: the best monotone fit. A ramp rises steadily, a "
             "split jumps once, a component of kind none scatters.",
             plots.fig_profiles(maps[-1, 0], at[-1, 0, ..., 3], res["steps"][-1], thr)),
            ("emergence", "Emergence over development" + (" and regrowth" if damage else ""),
             "The pooled PCA's components measured every %d steps%s. Dotted: the classification threshold."
             % (a.every, f"; vertical line: damage at step {rollout} ({damage_info['fraction_of_body_erased']:.0%} "
                         f"of the body erased), then {a.regrow} steps of regrowth" if damage else ""),
             plots.fig_emergence(growth, regrowth, thresholds.min_association, rollout if damage else None))]
    if rotation:
        axial = [c["index"] for c in ref_body["components"] if c["kind"] in ("along-axis", "across-axis")]
        figs.append(("rotation", "Rotation test",
                     f"Grown with the perception rotated by &theta; (step {t_last}), scored with the same PCA. "
                     "A component that belongs to the body rotates with it (dotted identity line).",
                     plots.fig_rotation(rotation, np.stack(rot_states), np.stack(rot_maps), rot_bodies,
                                        axial[0] if axial else 0, thr)))
    if comparisons:
        figs.append(("comparison", "Comparison across seeds and models",
                     f"Principal angles between the first {a.components} PCs of the reference and of each compared "
                     "PCA (own fit, same steps), at step %d. 0&deg; = same subspace." % t_last,
                     plots.fig_comparison(comparisons)))
        figs.append(("comparison_maps", "PC maps of the compared PCAs",
                     f"Step {t_last}; each row its own PCA.",
                     plots.fig_pc_maps(np.stack([states[t_last, 0]] + [r[1] for r in cmp_rows]),
                                       np.stack([maps[-1, 0]] + [r[2] for r in cmp_rows]),
                                       [ref_body] + [r[3] for r in cmp_rows],
                                       [model.name] + [r[0] for r in cmp_rows], thr)))
    pngs = []
    for name, title, caption, fig in figs:
        png = plots.png_bytes(fig)
        pngs.append((name, title, caption, png))
    out["timing_s"] = time.time() - t_start
    out["figures"] = [f"{name}.png" for name, *_ in pngs]
    for name, _, _, png in pngs:
        atomic_write_bytes(a.out / f"{name}.png", png)
    atomic_write_bytes(a.out / "report.json", json.dumps(report.json_safe(out), indent=1, allow_nan=False).encode())
    page = report.build_html(out, [(t, c, p) for _, t, c, p in pngs])
    atomic_write_bytes(a.out / "index.html", page.encode())
    stage("done")
    bar.close()
    last = res["steps"][-1]
    print(f"{model.name}: step {last['step']}, body axis {last['body_axis_deg']:.1f} deg", file=sys.stderr)
    for c in last["components"]:
        print(f"  PC{c['index'] + 1} {c['explained_variance_ratio']:6.1%}  {plots.component_label(c)}", file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
