"""The cost and the calibration of the PCA report's spatial null, measured side by side.

    python bench/dissection.py --out /tmp/bench_dissection                 # timing, 2 rounds
    python bench/dissection.py --out /tmp/bench_dissection --validate      # + the null's calibration
    python bench/dissection.py --out /tmp/b --only validate --draws 200
    python bench/dissection.py --out /tmp/b --only dissect --rounds 3         # the first command's time

timing: ``scripts/pca_report.py distill:lizard/persistent`` as it was at ``--baseline`` (the
commit before the null; extracted with ``git archive`` into a temporary folder and run from
there, its own ``analysis`` package included) and as it is now, each with its defaults,
alternating old/new for ``--rounds`` rounds; wall-clock and CPU seconds (user + system of the
child process) of each run, and the ratio new/old of the medians. The brief: new <= 2x old.

dissect: ``scripts/dissect.py`` (the README's first command, defaults) at ``--dissect-baseline``
(the commit before issue 14's compile cuts) and now, alternating old/new for ``--rounds``
rounds, each in a fresh process (a cold start: every program compiled); wall-clock and CPU
seconds and the ratio new/old of the medians. The brief: under 20 s on an idle 2-core machine.

validate: on the published persistent lizard's own body (step 200, first rollout):
- false positives: ``--draws`` smooth Gaussian random fields (no axis, no radial pattern) at
  each smoothness scale in ``--scales``; the rate of axial p < 0.05, radial p < 0.05, and of
  either (one body, one component: no Holm), each with its 95 % Clopper-Pearson interval;
  and, for comparison, the rate at which the old fixed rule (association >= 0.5) fires;
- power: ``--draws``/4 planted ramps, sharp splits (random offset) and core-periphery maps at
  random angles with noise 0.3 x the map's sd over the body: the rate of p < 0.05, the rate of
  directions within 2 deg, and the rate at which the direction interval (3 replicates: fresh
  noise, same pattern) contains the planted angle.
Writes OUT/dissection.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "e166389a5409f2594d693e66dc3ea71cbbf15d42"  # the last commit before the spatial null (issue 13)
DISSECT_BASELINE = "ae4835e"  # the last commit before dissect.py's compile cuts (issue 14)


def _child_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one command."""
    c0, t0 = _child_seconds(), time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _child_seconds() - c0
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {p.stderr.strip().splitlines()[-1:]}")
    return wall, cpu


def _side_by_side(baseline: str, rounds: int, command: list[str], new_extra: list[str]) -> dict:
    """Run ``command`` (a script and its arguments; "OUT" is replaced by a fresh folder) from
    the tree at ``baseline`` and from this one, alternating, ``rounds`` times each."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        arch = subprocess.run(["git", "archive", baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=arch, check=True)
        runs = {"old": [], "new": []}
        for r in range(rounds):
            for name, tree, extra in (("old", old, []), ("new", ROOT, new_extra)):
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = str(tmp / f"{name}{r}")
                wall, cpu = _run([sys.executable] + [out if c == "OUT" else c for c in command] + extra, tree, env)
                runs[name].append({"wall_s": wall, "cpu_s": cpu})
                print(f"round {r} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("wall_s", "cpu_s")} for k, v in runs.items()}
    return {"baseline": baseline, "rounds": rounds, "runs": runs, "median": med,
            "ratio_new_over_old": {m: med["new"][m] / med["old"][m] for m in ("wall_s", "cpu_s")},
            "load_average_1min_at_end": os.getloadavg()[0]}


def dissect_timing(baseline: str, rounds: int) -> dict:
    res = _side_by_side(baseline, rounds, ["scripts/dissect.py", "--out", "OUT", "--quiet"], [])
    res["command"] = "python scripts/dissect.py --out DIR --quiet (old: git archive BASELINE)"
    return res


def timing(baseline: str, rounds: int, model: str) -> dict:
    res = _side_by_side(baseline, rounds, ["scripts/pca_report.py", model, "--out", "OUT"], ["--quiet"])
    return {"model": model, **res,
            "commands": {"old": f"git archive {baseline}; python scripts/pca_report.py {model} --out DIR",
                         "new": f"python scripts/pca_report.py {model} --out DIR --quiet"}}


def validate(draws: int, scales: list[float], seed: int) -> dict:
    import jax
    import numpy as np

    import nca
    from analysis.axes import best_direction, body_frame, direction_vector, view_coords, wrap180
    from analysis.axis_null import BodyNull, NullSettings, direction_ci
    from analysis.pca_report import binomial_interval
    from analysis.rollouts import grow_states

    states = grow_states(nca.load_model("distill:lizard/persistent"), 200, jax.random.key(0))
    alpha = states[200, 0, ..., 3]
    mask = alpha > 0.1
    frame = body_frame(alpha)
    centre = view_coords([frame.centroid_rc[0]], [frame.centroid_rc[1]])[0]
    gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))

    def rate(hits):
        k, n = int(np.sum(hits)), int(np.size(hits))
        return {"rate": k / n, "ci95": binomial_interval(k, n), "k": k, "n": n}

    fp = {}
    for i, sigma in enumerate(scales):
        bn = BodyNull(mask, centre, NullSettings(), seed=seed, key=(i,))
        fields = bn.smooth_fields(sigma, draws, gen)
        res = bn.test(fields)
        fp[str(sigma)] = {"axial": rate(res["p_value"] < 0.05), "radial": rate(res["radial_p_value"] < 0.05),
                          "either": rate((res["p_value"] < 0.05) | (res["radial_p_value"] < 0.05)),
                          "old_rule_association_ge_0.5": rate(np.maximum(res["association_stat"],
                                                                         res["radial_stat"]) >= 0.5)}
        print(f"sigma {sigma}: {fp[str(sigma)]}", file=sys.stderr)
    rows, cols = np.nonzero(mask)
    uv_abs = view_coords(rows, cols)
    uv = uv_abs - centre
    n_pow = max(10, draws // 4)
    hits = {"ramp": [], "split": [], "radial": []}
    within2, covered = {"ramp": [], "split": []}, {"ramp": [], "split": []}
    for t in range(n_pow):
        bn = BodyNull(mask, centre, NullSettings(), seed=seed, key=(100 + t,))
        theta = gen.uniform(0, 360, 2)
        offset = gen.uniform(-3, 3)
        reps = []
        for _ in range(3):
            pr, ps = uv @ direction_vector(theta[0]), uv @ direction_vector(theta[1])
            split = (ps > offset).astype(float)
            d = np.hypot(*uv.T)
            reps.append(np.stack([pr + gen.normal(0, 0.3 * pr.std(), len(uv)),
                                  split + gen.normal(0, 0.3 * split.std(), len(uv)),
                                  -d + gen.normal(0, 0.3 * d.std(), len(uv))], 1))
        res = bn.test(reps[0])
        hits["ramp"].append(res["p_value"][0] < 0.05)
        hits["split"].append(res["p_value"][1] < 0.05)
        hits["radial"].append(res["radial_p_value"][2] < 0.05)
        for j, name in ((0, "ramp"), (1, "split")):
            est = best_direction(reps[0][:, j:j + 1], uv_abs)[0][0]
            within2[name].append(abs(float(wrap180(est - theta[j]))) < 2.0)
            lo, hi = direction_ci([r[:, j] for r in reps], [uv_abs] * 3, est, n_boot=100, seed=seed, key=(t, j))
            covered[name].append(float(np.mod(theta[j] - lo, 360.0)) <= hi - lo)
    power = {k: rate(v) for k, v in hits.items()}
    return {"body": "distill:lizard/persistent, step 200, key(0)", "n_alive": int(mask.sum()),
            "false_positives": fp, "power_p_lt_0.05": power,
            "direction_within_2deg": {k: rate(v) for k, v in within2.items()},
            "direction_ci_covers_truth": {k: rate(v) for k, v in covered.items()},
            "noise": "0.3 x the clean map's sd over the body", "settings": "NullSettings() defaults"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    req = ap.add_argument_group("required arguments")
    req.add_argument("--out", type=Path, required=True, help="folder for dissection.json")
    ap.add_argument("--only", default="timing", help="comma-separated: timing, dissect, validate (default: %(default)s)")
    ap.add_argument("--validate", action="store_true", help="also run the null's calibration (same as --only timing,validate)")
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds, old and new alternating (default: %(default)s)")
    ap.add_argument("--baseline", default=BASELINE, help="commit of 'today' (default: %(default)s)")
    ap.add_argument("--dissect-baseline", default=DISSECT_BASELINE,
                    help="commit of the dissect timing's 'before' (default: %(default)s)")
    ap.add_argument("--model", default="distill:lizard/persistent", help="model of the timing runs (default: %(default)s)")
    ap.add_argument("--draws", type=int, default=200, help="null fields per scale (default: %(default)s)")
    ap.add_argument("--scales", default="1.5,3,6,10", help="comma-separated smoothness scales, cells (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="the PRNG seed (default: %(default)s)")
    a = ap.parse_args()
    only = set(a.only.split(",")) | ({"validate"} if a.validate else set())
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"command": "python bench/dissection.py " + " ".join(sys.argv[1:])}
    if "timing" in only:
        res["timing"] = timing(a.baseline, a.rounds, a.model)
    if "dissect" in only:
        res["dissect"] = dissect_timing(a.dissect_baseline, a.rounds)
    if "validate" in only:
        res["validate"] = validate(a.draws, [float(x) for x in a.scales.split(",")], a.seed)
    text = json.dumps(res, indent=1)
    sys.path.insert(0, str(ROOT))
    from nca.checkpoint import atomic_write_bytes

    atomic_write_bytes(a.out / "dissection.json", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
