"""Timings of the issue-15 analyses (not tests: numbers for docs/development.md).

    python bench/development.py                      # both measurements
    python bench/development.py --only positional    # probes + information on a published model
    python bench/development.py --only dynamics --runs runs/q5/seed_0 runs/q5/seed_1

- positional: ``analysis.positional.run_positional`` on ``distill:lizard/regenerating``,
  200 development steps from the seed, every 10th analysed (20 steps), 5 replicates,
  hidden channels: ridge + kNN probes with shuffled controls at every step and the
  per-channel / per-PC information at the last. Wall clock, compilation included (a user
  runs it once). Target (issue 15): under 60 s on 2 cores.
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
    from analysis import positional as P

    model = nca.load_model("distill:lizard/regenerating")
    settings = P.PositionalSettings(steps=200, every=10, replicates=5)
    t, c = time.perf_counter(), time.process_time()
    r = P.run_positional(model, settings, jax.random.key(0))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    last = r["per_step"][-1]
    return {"what": "probes + information, distill:lizard/regenerating, 200 steps, 20 analysed, 5 replicates",
            "wall_s": wall, "cpu_s": cpu, "target_s": 60, "knn_r2_along_last": last["knn"]["along"]["r2"]["mean"],
            "load_average": os.getloadavg()[0]}


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
    ap.add_argument("--only", choices=["positional", "dynamics"], default=None, help="one measurement")
    ap.add_argument("--runs", nargs="+", default=[], help="run directories for the dynamics timing")
    a = ap.parse_args(argv)
    out = {}
    if a.only in (None, "positional"):
        out["positional"] = bench_positional()
        print(json.dumps(out["positional"]), file=sys.stderr)
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
