"""Selfish cells: train the cooperative, selfish-credit and competing-lineage variants of
the Growing NCA on the same budget and seeds, invade a published host with mutants, and
write the comparison (report.html + report.json).

    python scripts/selfish.py --out runs/selfish                    # preset cpu, seeds 0 1 2
    python scripts/selfish.py --out runs/selfish --seeds 0 1 2 3 --train-steps 600
    python scripts/selfish.py --out /tmp/s --preset smoke --seeds 0  # seconds-scale check

Re-running with the same --out reuses finished training runs (and continues unfinished
ones); a changed config is refused. Layout of --out: cooperative/seedN/, selfish/seedN/
(core run directories: python scripts/grow.py OUT/selfish/seed0 ... works on them),
lineages/seedN/, adversary/seedN/, anim/*.gif, report.json, report.html.
See docs/selfish.md.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from nca.cli import run_cli

ALL = ("cooperative", "selfish", "lineages", "invasion")


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _tojson(o):
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _tojson(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_tojson(v) for v in o]
    if isinstance(o, np.ndarray):
        return _tojson(o.tolist())
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else round(float(o), 7)
    if isinstance(o, np.integer):
        return int(o)
    return o


def train_core(cfg, run_dir: Path, progress: bool) -> float:
    """Train (or finish) a core run directory; seconds spent now."""
    from nca import checkpoint as ckpt
    from nca.config import load_config
    from nca.errors import NCAError
    from nca.train import train

    t = time.perf_counter()
    if (run_dir / ckpt.CONFIG).exists():
        if load_config(run_dir / ckpt.CONFIG) != cfg:
            raise NCAError(f"{run_dir} holds a run with another config; use a new --out (nothing was changed)")
        rows = (run_dir / ckpt.METRICS).read_text().split() if (run_dir / ckpt.METRICS).exists() else []
        if rows and rows[-1].split(",")[0] == str(cfg.train_steps):
            return None  # finished earlier: reuse
        train(cfg, run_dir, resume=True, progress=progress, log=_log)
    else:
        train(cfg, run_dir, progress=progress, log=_log)
    return time.perf_counter() - t


def train_lineages(ccfg, cfg, run_dir: Path, progress: bool):
    """Train (or finish) a competing-lineages run; returns (state, seconds spent now)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm.auto import tqdm

    from nca import checkpoint as ckpt
    from nca.config import load_config, save_config
    from nca.errors import NCAError
    from nca.selfish.training import compiled_lineage_train_step, init_lineage_state
    from nca.targets import load_target

    path = run_dir / "lineages.msgpack"
    state = init_lineage_state(cfg, ccfg.lineages, ccfg.seed_radius)
    if (run_dir / ckpt.CONFIG).exists():
        if load_config(run_dir / ckpt.CONFIG) != cfg:
            raise NCAError(f"{run_dir} holds a run with another config; use a new --out (nothing was changed)")
        if path.exists():
            state = ckpt.load_checkpoint(path, state)
    else:
        save_config(cfg, run_dir / ckpt.CONFIG)
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    start = int(state.step)
    if start >= cfg.train_steps:
        return state, None  # finished earlier: reuse
    t = time.perf_counter()
    step = compiled_lineage_train_step(cfg, ccfg.seed_radius)
    bar = tqdm(total=cfg.train_steps, initial=start, desc=f"lineages {run_dir.name}", unit="step",
               disable=not progress, dynamic_ncols=True)
    for i in range(start + 1, cfg.train_steps + 1):
        state, m = step(state, target)
        if i % 10 == 0 or i == cfg.train_steps:
            loss = float(m["loss"])
            if not np.isfinite(loss):
                raise NCAError(f"lineage training diverged (loss {loss}) at step {i} in {run_dir}; try a lower lr")
            bar.set_postfix(loss=f"{loss:.4g}", cells="/".join(str(int(c)) for c in m["counts"]))
        bar.update(1)
        if i % cfg.checkpoint_every == 0 or i == cfg.train_steps:
            ckpt.save_checkpoint(path, state)
    bar.close()
    jax.block_until_ready(state.params)
    return state, time.perf_counter() - t


def train_adversary(acfg, host, states, target, path: Path, progress: bool):
    """Train (or load) the adversary mutant against the frozen host; (params, seconds)."""
    import jax
    from functools import partial
    from tqdm.auto import tqdm

    from nca import checkpoint as ckpt
    from nca.selfish.training import adversary_train_step, init_adversary_state

    state = init_adversary_state(acfg, host.params)
    if path.exists():
        return ckpt.load_checkpoint(path, {"params": state.params})["params"], None
    t = time.perf_counter()
    step = jax.jit(partial(adversary_train_step, acfg, host.model_config, host.params, states, target))
    bar = tqdm(total=acfg.steps, desc=f"adversary {path.parent.name}", unit="step", disable=not progress,
               dynamic_ncols=True)
    for i in range(acfg.steps):
        state, loss = step(state)
        bar.update(1)
        if i % 5 == 0 or i == acfg.steps - 1:
            bar.set_postfix(territory=f"{-float(loss):.4g}")
    bar.close()
    ckpt.save_checkpoint(path, {"params": state.params})
    return state.params, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output directory (created; re-use continues it)")
    ap.add_argument("--preset", default="cpu", help="cpu (default: the 2-core comparison) or smoke (tests)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training/evaluation seeds (>= 3 for spread)")
    ap.add_argument("--variants", nargs="+", default=list(ALL), help=f"any of {' '.join(ALL)}")
    ap.add_argument("--train-steps", type=int, help="override the preset's training steps")
    ap.add_argument("--host", help="invasion host: published name or run directory (default: distill:lizard/persistent)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args()

    from nca.errors import NCAError

    if a.out is None:
        raise NCAError("give --out DIR (the comparison's output directory)")
    bad = sorted(set(a.variants) - set(ALL))
    if bad:
        raise NCAError(f"unknown variant(s) {bad}; choose from {', '.join(ALL)}")
    if len(set(a.seeds)) != len(a.seeds) or min(a.seeds) < 0:
        raise NCAError(f"--seeds must be distinct non-negative integers, got {a.seeds}")
    if a.train_steps is not None and a.train_steps < 1:
        raise NCAError("--train-steps must be >= 1")
    if a.out.exists() and not a.out.is_dir():
        raise NCAError(f"--out {a.out} exists and is not a directory")

    import jax
    import jax.numpy as jnp

    import nca
    from nca import checkpoint as ckpt
    from nca.selfish import compare as cmp
    from nca.selfish import report as rep
    from nca.selfish.invasion import perturb_params
    from nca.selfish.lineages import pad_hidden, stack_params
    from nca.selfish.training import selfish_config
    from nca.targets import load_target

    over = {} if a.train_steps is None else {"train_steps": a.train_steps}
    if a.host:
        over["host"] = a.host
    ccfg = cmp.comparison_preset(a.preset, **over)
    want = [v for v in ALL if v in a.variants]
    if "invasion" in want and "selfish" not in want:
        want.insert(1, "selfish")  # the selfish rule is one of the mutants
    host = nca.load_model(ccfg.host) if "invasion" in want else None  # fail early on a bad host
    progress = not a.no_progress
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    timings = {"train_s": {}, "adversary_s": {}}

    # ------------------------------------------------------------------ training
    trained = {}  # (variant, seed) -> params with leaves [K, ...], ModelConfig
    for variant in [v for v in want if v in cmp.VARIANTS]:
        for s in a.seeds:
            cfg = replace(ccfg.train, seed=s)
            run_dir = a.out / variant / f"seed{s}"
            _log(f"[{variant} seed {s}] training {cfg.train_steps} steps on {cfg.grid_size}x{cfg.grid_size} -> {run_dir}")
            if variant == "lineages":
                state, secs = train_lineages(ccfg, cfg, run_dir, progress)
                trained[variant, s] = (state.params, cfg.model)
            else:
                cfg = selfish_config(cfg) if variant == "selfish" else cfg
                secs = train_core(cfg, run_dir, progress)
                m = nca.load_model(run_dir)
                trained[variant, s] = (stack_params([m.params]), m.model_config)
            timings["train_s"].setdefault(variant, {})[s] = None if secs is None else round(secs, 1)

    # ------------------------------------------------------------------ evaluation
    t_eval = time.perf_counter()
    tcfg = ccfg.train
    target = jnp.asarray(load_target(tcfg.target, tcfg.target_size, tcfg.target_padding))
    results = {}
    for (variant, s), (params, mcfg) in trained.items():
        _log(f"[{variant} seed {s}] evaluating ({ccfg.persist_steps} steps, regeneration, fitness maps)")
        x0, ids0 = cmp.start_state(variant, ccfg, mcfg)
        results.setdefault(variant, {})[s] = cmp.evaluate_variant(params, mcfg, x0, ids0, target, ccfg,
                                                                  jax.random.key(1000 + s))
    timings["evaluate_s"] = round(time.perf_counter() - t_eval, 1)

    invasions = {}
    if host is not None:
        t_inv = time.perf_counter()
        htarget = jnp.asarray(host.target_image())
        hcfg = host.model_config
        for s in a.seeds:
            key = jax.random.key(2000 + s)
            grown = cmp.host_states(host.params, hcfg, host.grid_size, ccfg.host_grow, key, n=1)[0]
            mutants = {"host": host.params,
                       "perturbed": perturb_params(host.params, jax.random.key(3000 + s), ccfg.perturb_scale)}
            sp, smcfg = trained["selfish", s]
            if smcfg.channels == hcfg.channels and smcfg.hidden <= hcfg.hidden:
                mutants["selfish"] = pad_hidden(jax.tree.map(lambda l: l[0], sp), hcfg.hidden)
            acfg = replace(ccfg.adversary, seed=s)
            train_states = cmp.host_states(host.params, hcfg, host.grid_size, ccfg.host_grow, key, n=4)
            _log(f"[adversary seed {s}] training {acfg.steps} steps against {host.name}")
            mutants["adversary"], secs = train_adversary(acfg, host, train_states, htarget,
                                                         a.out / "adversary" / f"seed{s}" / "adversary.msgpack", progress)
            timings["adversary_s"][s] = None if secs is None else round(secs, 1)
            for name, mp in mutants.items():
                _log(f"[invasion seed {s}] {name} mutant, {ccfg.invasion_steps} steps")
                invasions.setdefault(name, {})[s] = cmp.run_invasion(host.params, mp, hcfg, grown, htarget, ccfg, key)
        timings["invasion_s"] = round(time.perf_counter() - t_inv, 1)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)

    # ------------------------------------------------------------------ outputs
    summary, html = build_outputs(a, ccfg, results, invasions, timings, host)
    ckpt.atomic_write_bytes(a.out / "report.json", (json.dumps(_tojson(summary), indent=1) + "\n").encode())
    ckpt.atomic_write_bytes(a.out / "report.html", html.encode())
    _log(f"wrote {a.out / 'report.html'} and {a.out / 'report.json'} ({timings['total_s']:.0f} s)")
    for variant, per in summary["variants"].items():
        s_ = per["summary"]
        _log(f"  {variant:12s} final loss {rep.fmt(s_['final_loss'])}, after {ccfg.persist_steps} steps "
             f"{rep.fmt(s_['persist_loss'])}, regeneration {rep.fmt(s_['regen_recovery'], 3)}")
    return 0


def build_outputs(a, ccfg, results, invasions, timings, host):
    """(report.json dict, report.html string)."""
    import numpy as np

    from nca.selfish import compare as cmp
    from nca.selfish import report as rep

    seeds = list(a.seeds)
    anim_dir = a.out / "anim"
    from nca import checkpoint as ckpt

    summary = {"preset": a.preset, "seeds": seeds, "command": " ".join(sys.argv),
               "comparison_config": asdict(ccfg), "timings": timings, "variants": {}, "invasion": {},
               "axis_components": {}}
    sections = []
    metrics = ("final_loss", "persist_loss", "alive_end", "regen_recovery", "regen_gap")
    rows = []
    for variant, per in results.items():
        per_seed = {}
        for s, r in per.items():
            per_seed[s] = {k: r[k] for k in ("final_loss", "persist_loss", "alive_end", "regen_before",
                                             "regen_recovery", "regen_gap", "regen_hits", "regen_control", "final_loss_visible", "times", "loss_curve", "alive_curve",
                                             "fitness_curve", "shares")}
            per_seed[s]["regen_damaged"] = float(np.mean(r["regen_damaged"]))
            per_seed[s]["regen_after"] = float(np.mean(r["regen_after"]))
            final_shares = r["shares"][-1]
            per_seed[s]["final_shares"] = final_shares
            per_seed[s]["winner"] = int(np.argmax(final_shares)) if final_shares.sum() > 0 else None
            per_seed[s]["coexist"] = bool((final_shares >= 0.05).sum() >= 2)
            summary["axis_components"].setdefault(variant, {})[s] = r["axis_components"]
        summ = {m: cmp.spread([per_seed[s][m] for s in per]) for m in metrics + ("regen_damaged", "regen_after")}
        summary["variants"][variant] = {"per_seed": per_seed, "summary": summ}
        rows.append([variant] + [rep.fmt(summ[m]) for m in metrics])

    sections.append(("What was run", (
        f"<p>Command: <code>{rep.html.escape(summary['command'])}</code>; preset <b>{a.preset}</b>, seeds {seeds}; "
        f"training grid {ccfg.train.grid_size}x{ccfg.train.grid_size} ({ccfg.train.target}, "
        f"{ccfg.train.train_steps} steps, {ccfg.train.experiment} pool protocol, hidden {ccfg.train.model.hidden}); "
        f"lineages K={ccfg.lineages}; invasion host {ccfg.host}.</p>"
        + rep.table(["phase", "seconds"], [[k, json.dumps(_tojson(v))] for k, v in timings.items()]))))
    if rows:
        sections.append(("Summary: mean ± std over seeds", rep.table(
            ["variant", f"loss at step {ccfg.eval_at}", f"visible loss at step {ccfg.persist_steps}",
             f"alive fraction at {ccfg.persist_steps}", "regeneration recovery", "regeneration gap"], rows)
            + f"<p class='note'>Loss at step {ccfg.eval_at}: the training loss, RGBA MSE to the target "
              "(= -mean per-cell fitness / 4). Later losses: visible MSE (RGBA clipped to [0, 1]), finite when a "
              f"rule explodes. Regeneration: {ccfg.damage_n} of the article's damage discs at step "
              f"{ccfg.damage_at}, {ccfg.regen_steps} steps to regrow, compared with the undamaged state run as "
              "long; recovery 1 = as good as the undamaged control, 0 = no repair, < 0 = worse (over the discs "
              "that raised the loss by > 5%); gap = loss after regrowth - control. Timings: null = reused from "
              "an earlier run of the same --out.</p>"))
        grid_rows = []
        for variant, per in results.items():
            cells = []
            for s, r in per.items():
                for t in (ccfg.eval_at, ccfg.persist_steps):
                    if t in r["snapshots"]:
                        st, ids, _ = r["snapshots"][t]
                        cells.append((f"seed {s}, t={t}", rep.lineage_frame(st, ids)))
            grid_rows.append((variant, cells))
        sections.append(("Grown bodies (tinted by lineage)", rep.img(rep.figure_uri(rep.image_grid_figure(grid_rows)))
                         + f"<p class='note'>Steps {ccfg.eval_at} (training horizon) and {ccfg.persist_steps} (persistence) "
                           "where they are among the preset's snapshot_times.</p>"))
        panels = [("visible MSE over time", {v: [(r["times"], r["loss_curve"]) for r in per.values()] for v, per in results.items()}),
                  ("alive fraction", {v: [(r["times"], r["alive_curve"]) for r in per.values()] for v, per in results.items()})]
        sections.append(("Persistence", rep.img(rep.figure_uri(rep.curves_figure(panels[:1], "MSE", log=True)))
                         + rep.img(rep.figure_uri(rep.curves_figure(panels[1:], "fraction of grid")))))
        regen_rows = [[v, s, f"{r['regen_before']:.4g}", f"{np.mean(r['regen_damaged']):.4g}",
                       f"{np.mean(r['regen_after']):.4g}", f"{r['regen_control']:.4g}", r["regen_hits"],
                       "n/a" if r["regen_recovery"] is None else f"{r['regen_recovery']:.3f}"]
                      for v, per in results.items() for s, r in per.items()]
        sections.append(("Regeneration", rep.table(["variant", "seed", "loss before", "after damage",
                                                    f"after {ccfg.regen_steps} steps", "undamaged control", "discs that hurt", "recovery"], regen_rows)))
        fit_rows = []
        for variant, per in results.items():
            s0 = min(per)
            fit_rows.append((f"{variant} (seed {s0})", [(f"t={t}", f) for t, (_, _, f) in sorted(per[s0]["snapshots"].items())]))
        sections.append(("Per-cell fitness maps", rep.img(rep.figure_uri(rep.image_grid_figure(
            fit_rows, cmap="magma", vmin=-1.0, vmax=0.0)))
            + "<p class='note'>fitness = -(squared RGBA error of the cell's own pixel); 0 = perfect, colour scale "
              "clipped at -1. Mean fitness over time is in report.json (fitness_curve).</p>"))
    if "lineages" in results:
        per = results["lineages"]
        k = ccfg.lineages
        panel = [("lineage share of alive cells", {f"lineage {i}": [(r["times"], r["shares"][:, i]) for r in per.values()]
                                                   for i in range(k)})]
        lrows = [[s, " / ".join(f"{x:.2f}" for x in summary["variants"]["lineages"]["per_seed"][s]["final_shares"]),
                  summary["variants"]["lineages"]["per_seed"][s]["winner"],
                  summary["variants"]["lineages"]["per_seed"][s]["coexist"]] for s in per]
        sections.append(("Competing lineages", rep.img(rep.figure_uri(rep.curves_figure(panel, "share")))
                         + rep.table(["seed", f"shares at step {ccfg.persist_steps}", "largest", "coexist (>=2 with >=5%)"], lrows)))

    if invasions:
        inv_rows = []
        for mutant, per in invasions.items():
            summary["invasion"][mutant] = {}
            for mode in next(iter(per.values())):
                ps = {s: {**cmp.invasion_summary(r[mode]),
                          **{c: r[mode][c] for c in ("times", "mutant_share", "harm", "overgrowth", "mutant_cells")}}
                      for s, r in per.items()}
                summ = {m: cmp.spread([ps[s][m] for s in ps]) for m in
                        ("final_share", "peak_share", "final_harm", "final_overgrowth", "extinct", "extinct_at")}
                summary["invasion"][mutant][mode] = {"per_seed": ps, "summary": summ}
                inv_rows.append([mutant, mode, rep.fmt(cmp.spread([ps[s]["planted"] for s in ps]), 3),
                                 rep.fmt(summ["final_share"], 3), rep.fmt(summ["peak_share"], 3),
                                 f"{sum(ps[s]['extinct'] for s in ps)}/{len(ps)}",
                                 rep.fmt(summ["final_harm"], 3), rep.fmt(summ["final_overgrowth"], 3)])
        panels = [(f"{m}: mutant share", {mode: [(r[mode]["times"], r[mode]["mutant_share"]) for r in per.values()]
                                          for mode in next(iter(per.values()))}) for m, per in invasions.items()]
        harm = [(f"{m}: harm (MSE - control)", {mode: [(r[mode]["times"], r[mode]["harm"]) for r in per.values()]
                                               for mode in next(iter(per.values()))}) for m, per in invasions.items()]
        sections.append((f"Cheater invasion of {ccfg.host}", (
            f"<p class='note'>Host grown {ccfg.host_grow} steps, then mutants planted (patch: radius "
            f"{ccfg.patch_radius} px at the body's centre; cell: one cell there; fraction: {ccfg.fraction:.0%} of "
            f"alive cells at random) and run {ccfg.invasion_steps} steps. Mutants: host (control, must change "
            f"nothing), perturbed (weights + {ccfg.perturb_scale} x std noise), selfish (this comparison's "
            f"selfish-credit rule, trained at another scale, hidden units zero-padded), adversary (trained "
            f"{ccfg.adversary.steps} steps to maximise its {ccfg.adversary.objective} against the frozen host).</p>")
            + rep.table(["mutant", "mode", "planted cells", "final share", "peak share", "extinct (seeds)",
                         "final harm", "final overgrowth (cells)"], inv_rows)
            + rep.img(rep.figure_uri(rep.curves_figure(panels, "mutant share of alive cells")))
            + rep.img(rep.figure_uri(rep.curves_figure(harm, "MSE difference")))))

    # animations
    gifs = []
    for variant, per in results.items():
        s0 = min(per)
        data = rep.animation_gif(*per[s0]["gif"])
        ckpt.atomic_write_bytes(anim_dir / f"{variant}_seed{s0}.gif", data)
        gifs.append(f"<figure style='display:inline-block'>{rep.img(rep.data_uri(data, 'image/gif'), variant)}"
                    f"<figcaption>{variant}, seed {s0}, {ccfg.persist_steps} steps</figcaption></figure>")
    for mutant, per in invasions.items():
        s0 = min(per)
        data = rep.animation_gif(*per[s0]["patch"]["frames"], scale=3)
        ckpt.atomic_write_bytes(anim_dir / f"invasion_{mutant}_seed{s0}.gif", data)
        gifs.append(f"<figure style='display:inline-block'>{rep.img(rep.data_uri(data, 'image/gif'), mutant)}"
                    f"<figcaption>{mutant} patch in the host (red = mutant), seed {s0}</figcaption></figure>")
    if gifs:
        sections.append(("Animations (blue: lineage 0 / host, red: lineage 1 / mutant, green: lineage 2)", "".join(gifs)))
    def pcs(d):
        if d.get("status") != "ok":
            return [d.get("reason", "")] + [""] * 2
        return [f"{c['kind']} ({c['explained_variance_ratio']:.0%}, &rho;={c['association']:.2f}, "
                f"&rho;r={c['radial_association']:+.2f})" for c in d["components"]]

    ax_rows = [[v, s, d.get("step", ""), *pcs(d)] for v, per in summary["axis_components"].items()
               for s, d in per.items()]
    if ax_rows:
        sections.append(("Body-axis components (PCA analysis: scripts/pca_report.py's default, at the "
                         "evaluation step; kind, variance, directional and radial rank association)",
                         rep.table(["variant", "seed", "step", "PC1", "PC2", "PC3"], ax_rows)))
    return summary, rep.page("Selfish cells vs the cooperative organism", sections)


if __name__ == "__main__":
    run_cli(main)
