"""Does training for regeneration spread the rule out more than training for growth?
(issue 28) Across independently trained models, not across random orders of one model.

    python bench/degradation_training.py --out /tmp/degtrain --grow 56  # 4 + 4 seeds, 1500 steps (~25 min)
    python bench/degradation_training.py --out /tmp/degtrain --seeds 0,1 --steps 200 --json

1. Trains the quick preset (``nca.config.preset("quick")``) with ``train_steps`` = --steps,
   once per seed and experiment ("growing" and "regenerating"), through ``nca.multiseed.train_runs``
   into OUT/<experiment>/seed_<s>/ (the seeds of one experiment train as one vmapped program
   over the CPU cores). A folder whose OUT/summary.csv exists is not trained again: its
   runs are analysed (so a crashed analysis can be rerun). --no-train analyses the runs
   that exist (e.g. one experiment's, while the other still trains).
2. Runs the degradation curves (``analysis.causal.degradation.run_model``, one setting for every
   model: units and living cells, zeroing, growth/persistence/regeneration, error and attack
   orders, --draws random orders, 2 replicates) on each model.
3. Prints, per curve and summary (error AUC, error k50, gap attack - error), each group's
   mean with a 95 % t interval over its models (``analysis.stats.mean_ci``, n = models) and
   the difference regenerating - growing with a Welch t interval. A model that does not grow,
   or whose intact body after --grow steps is no nearer the target than --min-fit
   (1 - L / L_empty; the effect's denominator would be ~0), is excluded and named. Each model's curves are kept in
   OUT.degradation/<experiment>_seed_<s>_step<N>.json and reused when the settings match.
   --at-step N analyses the kept checkpoint of step N of every run (``nca.load_model``'s
   ``RUN@step=N``) instead of the final params.

Spread out = a larger error k50 (more parts lost at random before the body fails), a smaller
error AUC, a smaller gap. Progress and CPU time go to stderr; --json prints one object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

EXPERIMENTS = ("growing", "regenerating")
MEASURES = (("error", "auc"), ("error", "k50"), ("attack", "auc"), ("gap_attack", None))


def welch_diff(a, b, level: float = 0.95) -> dict:
    """mean(b) - mean(a) with the Welch t interval (Welch-Satterthwaite df) -> {mean, lo, hi, n}."""
    import numpy as np

    from nca.stats import t_quantile

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return {"mean": d, "lo": None, "hi": None, "n": [len(a), len(b)], "reason": "fewer than 2 models in a group"}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"mean": d, "lo": d, "hi": d, "n": [len(a), len(b)], "df": None}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return {"mean": d, "lo": d - half, "hi": d + half, "n": [len(a), len(b)], "df": df}


def value(summ: dict, order: str, q: str | None) -> float:
    """A curve summary's mean for (order, quantity): gap_attack has no quantity."""
    return summ[order]["mean"] if q is None else summ[order][q]["mean"]


def compare(per_model: dict) -> dict:
    """per_model {experiment: [run_model curves]} -> {curve: {measure: {growing, regenerating, diff}}}."""
    from analysis.stats import mean_ci

    out = {}
    first = next(c for cs in per_model.values() for c in cs)
    for part, modes in first.items():
        for mode, conds in modes.items():
            for cond, summ in conds.items():
                row = {}
                for order, q in MEASURES:
                    if order not in summ:
                        continue
                    vals = {e: [value(c[part][mode][cond], order, q) for c in per_model[e]] for e in EXPERIMENTS}
                    row[order + (f"_{q}" if q else "")] = {
                        **{e: {**mean_ci(v), "per_model": v} for e, v in vals.items()},
                        "diff_regenerating_minus_growing": welch_diff(vals["growing"], vals["regenerating"])}
                out[f"{part}/{mode}/{cond}"] = row
    return out


def last_step(run: Path) -> int | None:
    """The last step in the run's metrics.csv (None: no run)."""
    m = run / "metrics.csv"
    lines = m.read_text().strip().splitlines() if m.exists() else []
    return int(lines[-1].split(",")[0]) if len(lines) > 1 else None


def intact_fit(model, s) -> float:
    """1 - L / L_empty of the intact model grown ``s.grow`` steps from the seed (fire masks of
    ``s.seed``): 1 = the target exactly, 0 = no better than an empty grid."""
    import jax
    import numpy as np

    from analysis.causal.knockouts import empty_loss, target_on_grid
    from analysis.rollouts import grow_states
    from nca.model import to_rgba
    from nca.train import per_sample_loss

    target = target_on_grid(model.target_image(), model.grid_size)
    x = grow_states(model, s.grow, jax.random.key(s.seed), size=model.grid_size)[-1]  # [1, H, W, C]
    return float(1 - np.asarray(per_sample_loss(to_rgba(x), target))[0] / empty_loss(target))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder of the trained runs (kept; reused when already trained)")
    ap.add_argument("--seeds", default="0,1,2,3", help="training seeds per experiment")
    ap.add_argument("--steps", type=int, default=1500, help="training steps (the quick preset's 1500)")
    ap.add_argument("--draws", type=int, default=4, help="random orders per curve")
    ap.add_argument("--conditions", default="growth,persistence,regeneration", help="the curves' conditions")
    ap.add_argument("--grow", type=int, default=96, help="CA steps of the growth condition (and before the others)")
    ap.add_argument("--min-fit", type=float, default=0.5,
                    help="exclude a model whose intact body is further from the target (1 - L / L_empty below this)")
    ap.add_argument("--no-attack", action="store_true", help="error order only (no single removals: ~4x cheaper)")
    ap.add_argument("--experiments", default=",".join(EXPERIMENTS), help="analyse only these (with --no-train)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--no-train", action="store_true", help="analyse the runs that exist; train nothing")
    ap.add_argument("--at-step", type=int, default=None, metavar="N",
                    help="analyse every run's kept checkpoint of step N (default: the final params, step --steps)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nca.parallel import use_cpu_cores

    use_cpu_cores()  # before JAX starts: the seeds of one experiment split over the cores
    import nca
    from analysis.causal import degradation as D
    from analysis.stats import fmt_ci
    from nca.checkpoint import atomic_write_bytes
    from nca.config import preset
    from nca.errors import NCAError
    from nca.multiseed import SUMMARY, train_runs

    w0, c0, load0 = time.time(), time.process_time(), os.getloadavg()[0]
    seeds = [int(s) for s in a.seeds.split(",")]
    out = Path(a.out)
    names = [f"{e}/seed_{s}" for e in EXPERIMENTS for s in seeds]
    trained_here = not (out / SUMMARY).exists() and not a.no_train
    if trained_here:
        cfgs = [preset("quick", experiment=e, seed=s, train_steps=a.steps) for e in EXPERIMENTS for s in seeds]
        train_runs(cfgs, out, names, progress=True, log=lambda m: print(m, file=sys.stderr, flush=True))
    t_train = (time.time() - w0, time.process_time() - c0)
    print(f"trained: {t_train[0]:.0f} s wall, {t_train[1]:.0f} s CPU", file=sys.stderr, flush=True)
    s = D.DegradationSettings(parts=("units", "cells"), modes=("zero",), draws=a.draws, greedy=False,
                              attack=not a.no_attack, conditions=tuple(a.conditions.split(",")), grow=a.grow)
    per_model, excluded, fit = {e: [] for e in EXPERIMENTS}, [], {}
    cache_dir = Path(str(out) + ".degradation")
    cache_dir.mkdir(exist_ok=True)
    settings = json.loads(json.dumps(s.__dict__))
    for name in [n for n in names if n.split("/")[0] in a.experiments.split(",")]:
        at = a.at_step or a.steps
        ready = (out / name / "checkpoints" / f"step_{at:06d}.msgpack").exists() if a.at_step else \
            last_step(out / name) == a.steps
        if not ready:  # absent, or still training: never analyse a model half-way
            excluded.append(f"{name}: no params of step {at} (trained to {last_step(out / name)})")
            continue
        cache = cache_dir / (name.replace("/", "_") + f"_step{at}.json")
        got = json.loads(cache.read_text()) if cache.exists() else None
        if got is None or got["settings"] != settings:
            model = nca.load_model(f"{out / name}@step={at}" if a.at_step else out / name)
            got = {"settings": settings, "fit": intact_fit(model, s)}
            try:
                got["curves"] = D.run_model(model, s)["curves"]
            except NCAError as err:
                got["error"] = str(err)
            atomic_write_bytes(cache, json.dumps(got).encode())
        fit[name] = got["fit"]
        if got["fit"] < a.min_fit:
            excluded.append(f"{name}: intact fit {got['fit']:.2f} < {a.min_fit} after {s.grow} steps (no body to degrade)")
        elif "curves" in got:
            per_model[name.split("/")[0]].append(got["curves"])
        else:
            excluded.append(f"{name}: {got['error']}")
        print(f"{name}: {time.time() - w0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", file=sys.stderr,
              flush=True)
    res = {"command": "python bench/degradation_training.py " + " ".join(argv), "seeds": seeds,
           "train_steps": a.steps, "analysed_step": a.at_step or a.steps, "trained_here": trained_here,
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()},
           "n_models": {e: len(v) for e, v in per_model.items()}, "excluded": excluded,
           "intact_fit": fit,
           "comparison": compare(per_model) if all(len(v) for v in per_model.values()) else None,
           "train_wall_s": t_train[0], "train_cpu_s": t_train[1], "wall_s": time.time() - w0,
           "cpu_s": time.process_time() - c0, "load_start": load0, "load_end": os.getloadavg()[0]}
    if a.json:
        print(json.dumps(res))
        return 0
    for line in excluded:
        print("excluded", line)
    for name, f in fit.items():
        print(f"{name}: intact fit {f:.3f} (1 - L / L_empty after {s.grow} steps)")
    for curve, row in (res["comparison"] or {}).items():
        for m, r in row.items():
            print(f"{curve} {m}: growing {fmt_ci(r['growing'])}; regenerating {fmt_ci(r['regenerating'])}; "
                  f"regenerating - growing {fmt_ci(r['diff_regenerating_minus_growing'])}")
    print(f"{res['wall_s']:.0f} s wall, {res['cpu_s']:.0f} s CPU (training {t_train[0]:.0f} s wall), "
          f"load {load0:.1f} -> {res['load_end']:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
