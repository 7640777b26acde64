"""Time the full degradation report on a published lizard (issue 28: under 3 minutes on 2
CPU cores), cold (compilation included), and print its summary lines.

    python bench/degradation.py                              # distill:lizard/regenerating, defaults
    python bench/degradation.py distill:lizard/persistent --json
    python bench/degradation.py -- --draws 4 --no-greedy     # flags after -- go to the script
    python bench/degradation.py --planted                    # the gap's false-positive rate and power

What is timed: ``scripts/degradation_report.py MODEL --out TMP`` in this process (import,
model load, every curve: units and channels, zero and mean, growth, persistence and
regeneration, error/attack/greedy, the figures and the writes). Timings on a shared machine
are noisy: the load average is printed beside them, and the process's CPU time (``cpu_s``,
both cores together): on an otherwise idle 2-core machine the wall time is at least cpu_s / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def planted(n_seeds: int = 200, replicates: int = 5, draws: int = 8, parts: int = 32, sd: float = 0.02) -> dict:
    """False-positive rate and power of the attack - error gap on planted rules, the same
    code as the CA (``analysis.causal.degradation.degradation_curves``): "additive" (each part an
    equal share, effect = k / n: no true gap) and "brittle" (one part carries it: a true
    gap), effects plus N(0, sd) noise per rollout and replicate. A hit = the gap's 95 % t
    interval (n = replicates) excludes 0. -> {rule: {hits, n, rate (Wilson interval)}}."""
    import numpy as np

    from analysis.causal import degradation as D
    from analysis.stats import proportion_ci

    ks = (0, 1, 2, 4, 8, 16, 24, 28, 29, 30, 31, 32)
    rules = {"additive": lambda r: r.sum(1) / parts, "brittle": lambda r: r[:, 17].astype(float)}
    out = {}
    for name, f in rules.items():
        hits = []
        for seed in range(n_seeds):
            rng = np.random.default_rng([seed, 1])

            def ev(removed, f=f, rng=rng):
                r = np.asarray(removed, bool)
                return f(r)[:, None] + rng.normal(0, sd, (len(r), replicates)) * r.any(1)[:, None]

            cv = D.degradation_curves(ev, parts, ks, draws, np.random.default_rng([seed, 2]), greedy=False)
            g = D.summarise_curves(cv, parts)["gap_attack"]
            hits.append(not (g["lo"] <= 0 <= g["hi"]))
        out[name] = {"hits": int(sum(hits)), "n": n_seeds, "rate": proportion_ci(hits)}
    return out


def degradation_summary(rep: dict) -> dict:
    """{model part/mode/condition: {order: [k50 mean, auc mean], gap_attack: mean}}: the
    numbers that must not change when the code gets faster (compare two runs' JSON)."""
    out = {}
    for r in rep["results"]:
        for part, modes in r["curves"].items():
            for mode, conds in modes.items():
                for cond, c in conds.items():
                    row = {o: [c[o]["k50"]["mean"], c[o]["auc"]["mean"]] for o in ("error", "attack", "greedy") if o in c}
                    row.update({g: c[g]["mean"] for g in ("gap_attack", "gap_greedy") if g in c})
                    out[f"{r['model']} {part}/{mode}/{cond}"] = row
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="distill:lizard/regenerating", help="published name or run folder")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--planted", action="store_true",
                    help="instead: false-positive rate and power of the gap on planted rules (200 seeds)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if a.planted:
        print(json.dumps(planted()))
        return 0
    w0, c0 = time.time(), time.process_time()
    load0 = os.getloadavg()[0]
    from scripts import degradation_report

    with tempfile.TemporaryDirectory() as out:
        rc = degradation_report.main([a.model, "--out", out, "--quiet"] + extra)
        rep = json.loads((Path(out) / "report.json").read_text())
        summary = degradation_summary(rep)
    res = {"model": a.model, "flags": extra, "wall_s": time.time() - w0, "cpu_s": time.process_time() - c0,
           "load_start": load0, "load_end": os.getloadavg()[0], "cores": os.cpu_count(), "rc": rc,
           "rows_asked": sum(c["evaluations"] for r in rep["results"] for p in r["curves"].values()
                             for m in p.values() for c in m.values()),
           "pooled_rollouts": {r["model"]: r.get("rollouts") for r in rep["results"]}, "summary": summary}
    print(json.dumps(res) if a.json else
          f"{a.model}: {res['wall_s']:.0f} s wall, {res['cpu_s']:.0f} s CPU, {res['rows_asked']} rows asked "
          f"(load {load0:.1f} -> {res['load_end']:.1f}, {res['cores']} cores)", file=sys.stderr if not a.json else sys.stdout)
    return rc


if __name__ == "__main__":
    sys.exit(main())
