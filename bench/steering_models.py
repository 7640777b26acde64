"""Steering over independently trained models (issue 23, item 2): is a direction's effect
outside the norm-matched random band in every model, or only in one?

    python bench/steering_models.py /work/runs/q_regenerating/seed_* --out /tmp/steer_models.json

Runs ``analysis.causal.steering.run_steering`` on each run directory (same settings and seed for
each), then ``analysis.causal.steering.across_models`` per read-out: the z of each direction
against its own model's random band and the fraction of models where it is outside, with
95 % intervals over the models (n = models). Writes the JSON to --out, progress and CPU time
to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--replicates", type=int, default=4)
    p.add_argument("--n-random", type=int, default=16)
    p.add_argument("--doses", default="-10,-5,-2.5,0,2.5,5,10")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    import jax

    import nca
    from analysis.causal import steering as S
    from nca.checkpoint import atomic_write_bytes

    st = S.SteeringSettings(steps=a.steps, replicates=a.replicates, n_random=a.n_random,
                            doses=tuple(float(x) for x in a.doses.split(",")))
    reps, per_model = [], []
    w0, c0 = time.time(), time.process_time()
    for r in a.runs:
        metrics = Path(r) / "metrics.csv"
        last = metrics.read_text().strip().splitlines()[-1].split(",")[0] if metrics.exists() else None
        model = nca.load_model(r)
        rep = S.run_steering(model, st, jax.random.key(a.seed))
        rep.pop("images")
        reps.append(rep)
        per_model.append({"run": r, "train_step_at_load": last, "directions": {n: {"sigma": rep["directions"][n]["sigma"],
                                                       "specificity": rep["directions"][n].get("specificity"),
                                                       "effect": rep["directions"][n]["effect"]}
                                                   for n in rep["direction_names"] if not n.startswith("random")},
                          "random_band": rep["random_band"], "random_false_positives": rep["random_false_positives"]})
        print(f"{r}: {time.time() - w0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", file=sys.stderr)
    out = {"command": "python bench/steering_models.py " + " ".join(argv or sys.argv[1:]), "settings": st.as_dict(),
           "per_model": per_model, "across_models": {m: S.across_models(reps, m) for m in S.MEASURES},
           "wall_s": time.time() - w0, "cpu_s": time.process_time() - c0}
    atomic_write_bytes(Path(a.out), json.dumps(out, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
