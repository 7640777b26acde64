"""Timings of the issue-15 analyses (not tests: numbers for docs/development.md).

    python bench/development.py                      # both measurements
    python bench/development.py --only positional    # probes + information on a published model
    python bench/development.py --only dynamics --runs runs/q5/seed_0 runs/q5/seed_1
    python bench/development.py --only controls --draws 20
    python bench/development.py --only placement --models distill:lizard/growing distill:lizard/persistent \
        distill:lizard/regenerating --out placement.json

- positional: ``analysis.development.positional.run_positional`` on ``distill:lizard/regenerating``,
  200 development steps from the seed, every 10th analysed (20 steps), 5 replicates,
  hidden channels: ridge + kNN probes with shuffled controls at every step and the
  per-channel / per-PC information at the last. Wall clock, compilation included (a user
  runs it once). Target (issue 15): under 60 s on 2 cores.
- placement: ``analysis.development.positional.positional_by_placement`` (issue 23: probes on held-out
  placements with the fixed-random-field nulls, sigma_x) on each model, with the CPU time,
  and per measure the mean and 95 % t-interval over the models (independently trained:
  the claim is about models); ``--out`` writes every model's full result too.
- controls: the false-positive rate and power of the held-out-placement probes on planted
  data (tests/test_positional_placement.py's bodies, ``--draws`` independent draws): a
  fixed random field (the null; also under the old leave-one-replicate-out split) and a
  body-frame code; "decodes position" = the lower 95 % bound of the kNN (or ridge) R^2
  over held-out placements > 0.1. Rates with Wilson intervals.
- dynamics: ``scripts/dynamics_report.py`` over the given runs' kept checkpoints (30 in
  all for the issue's target: under 5 minutes), wall clock of the whole command, with and
  without the channel knockouts.

The transition detector's calibration (false detections on smooth curves, power and
interval coverage on planted steps, the real runs under each threshold) is in
``bench/transitions.py`` (issue 23; numbers in docs/validation/transitions.md).

Timings on a shared machine are noisy: the load average is printed beside them, and the
CPU seconds the work used (on an idle 2-core machine the wall clock is at most about that,
less where both cores are busy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_positional() -> dict:
    import jax

    import nca
    from analysis.development import positional as P

    model = nca.load_model("distill:lizard/regenerating")
    settings = P.PositionalSettings(steps=200, every=10, replicates=5)
    t, c = time.perf_counter(), time.process_time()
    r = P.run_positional(model, settings, jax.random.key(0))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    last = r["per_step"][-1]
    return {"what": "probes + information, distill:lizard/regenerating, 200 steps, 20 analysed, 5 replicates",
            "wall_s": wall, "cpu_s": cpu, "target_s": 60, "knn_r2_along_last": last["knn"]["along"]["r2"]["mean"],
            "load_average": os.getloadavg()[0]}


def bench_placement(models: list[str], steps: int = 200, diagonal: bool = False) -> dict:
    import jax

    import nca
    from analysis.development import positional as P
    from analysis.stats import mean_ci

    settings = P.PlacementSettings(steps=steps, **({"placements": P.DIAGONAL_PLACEMENTS} if diagonal else {}))
    per_model = {}
    for name in models:
        model = nca.load_model(name)
        t, c = time.perf_counter(), time.process_time()
        r = P.positional_by_placement(model, settings, jax.random.key(0))
        r["wall_s"], r["cpu_s"] = time.perf_counter() - t, time.process_time() - c
        per_model[name] = r
        print(f"{name}: {r['cpu_s']:.0f} s CPU, {r['wall_s']:.0f} s wall", file=sys.stderr)
    no_body = {n: r["null_reason"] for n, r in per_model.items() if "null_reason" in r}
    per_ok = {n: r for n, r in per_model.items() if n not in no_body}
    codes = ["model"] + [k for k in next(iter(per_ok.values()), {}) if k.startswith("fixed_field")]
    across = {}
    for code in codes:
        for probe in ("knn", "ridge"):
            for metric in ("r2", "bits"):
                for coord in P.COORDS:
                    across[f"{code}/{probe}/{metric}/{coord}"] = mean_ci(
                        [r[code]["probes"][probe][coord][metric]["mean"] for r in per_ok.values()])
        for coord in P.COORDS:
            across[f"{code}/sigma_x_median/{coord}"] = mean_ci(
                [r[code]["sigma_x"][coord]["median"] for r in per_ok.values()])
    return {"what": f"held-out placements, {len(settings.placements)} placements x {settings.replicates} rollouts, "
                    f"{steps} steps, hidden channels", "settings": settings.as_dict(), "models": models,
            "across_models": across, "no_body": no_body, "per_model": per_model,
            "load_average": os.getloadavg()[0]}


def bench_controls(draws: int = 20) -> dict:
    import jax
    import numpy as np

    from analysis.development import positional as P
    from analysis.stats import proportion_ci

    sys.path.insert(0, str(ROOT / "tests"))
    import test_positional_placement as T

    settings = T.SETTINGS
    hits = {k: [] for k in ("field_new_knn", "field_new_ridge", "field_old_knn", "field_old_ridge",
                            "code_new_knn", "code_new_ridge")}
    t, c = time.perf_counter(), time.process_time()
    for d in range(draws):
        rng = np.random.default_rng(100 + d)
        field = P.fixed_field((T.H, T.W), 4, 3.0, jax.random.key(1000 + d))
        code, fld, ys = [], [], []
        for r0, c0, ax in T.PLANTED:
            alive, g = T._body(T._frame(r0, c0, ax))
            code.append(np.concatenate([T._code(g, rng)[alive] for _ in range(T.R)]))
            fld.append(np.concatenate([field[alive]] * T.R))
            ys.append(np.concatenate([g[alive]] * T.R))
        alive0, g0 = T._body(T._frame(*T.PLANTED[0]))
        old = P.probe_scores([field[alive0]] * 5, [g0[alive0]] * 5, jax.random.key(d))
        new_f = P.held_out_placement_scores(fld, ys, jax.random.key(d), settings)
        new_c = P.held_out_placement_scores(code, ys, jax.random.key(d), settings)
        for name, sc in (("field_new", new_f), ("field_old", old), ("code_new", new_c)):
            for probe in ("knn", "ridge"):
                # decodes position: the lower 95 % bound of the along-axis R^2 over held-out groups > 0.1
                hits[f"{name}_{probe}"].append(P.interval(sc[probe]["r2"][:, 0])["lo"] > 0.1)
    return {"what": f"planted controls, {draws} draws; decodes = lower 95% bound of along-axis R^2 > 0.1",
            "rates": {k: proportion_ci(v) for k, v in hits.items()},
            "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}


def bench_dynamics(runs: list[str], knockouts: bool) -> dict:
    from nca import checkpoint as ckpt

    n = sum(len(ckpt.list_kept(Path(r))) for r in runs)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "scripts" / "dynamics_report.py"), *runs, "--out", tmp, "--quiet"]
        if not knockouts:
            cmd.append("--no-knockouts")
        t = time.perf_counter()
        r0 = os.times()
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        wall = time.perf_counter() - t
        r1 = os.times()
        cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return {"what": f"scripts/dynamics_report.py over {n} kept checkpoints", "knockouts": knockouts,
            "checkpoints": n, "wall_s": wall, "cpu_s": cpu, "target_s": 300, "load_average": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["positional", "dynamics", "placement", "controls"], default=None,
                    help="one measurement")
    ap.add_argument("--models", nargs="+", default=["distill:lizard/regenerating"],
                    help="models for the placement measurement")
    ap.add_argument("--diagonal", action="store_true",
                    help="placement: the non-lattice rotations (analysis.development.positional.DIAGONAL_PLACEMENTS)")
    ap.add_argument("--draws", type=int, default=20, help="planted draws of the controls measurement")
    ap.add_argument("--out", default=None, help="write the placement measurement's JSON here")
    ap.add_argument("--runs", nargs="+", default=[], help="run directories for the dynamics timing")
    a = ap.parse_args(argv)
    out = {}
    if a.only in (None, "positional"):
        out["positional"] = bench_positional()
        print(json.dumps(out["positional"]), file=sys.stderr)
    if a.only == "controls":
        out["controls"] = bench_controls(a.draws)
    if a.only == "placement":
        out["placement"] = bench_placement(a.models, diagonal=a.diagonal)
        if a.out:
            Path(a.out).write_text(json.dumps(out["placement"], indent=1, default=float))
        out["placement"].pop("per_model")
    if a.only in (None, "dynamics"):
        if not a.runs:
            print("dynamics: give --runs RUN_DIR ... (runs with kept checkpoints)", file=sys.stderr)
        else:
            for ko in (False, True):
                out[f"dynamics_knockouts_{ko}"] = bench_dynamics(a.runs, ko)
                print(json.dumps(out[f"dynamics_knockouts_{ko}"]), file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
