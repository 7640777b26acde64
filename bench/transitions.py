"""Calibration of ``analysis.development.dynamics.detect_transitions`` (issue 23): false detections on
smooth loss curves, power and interval coverage on planted sharp steps, at the noise of a
real quick-preset run; and the detector on real runs, at each threshold.

    python bench/transitions.py --n 100                           # planted curves only
    python bench/transitions.py --n 100 --runs /work/runs/q_growing/seed_* /work/runs/q_regenerating/seed_*
    python bench/transitions.py --n 0 --runs RUN ...              # real runs only (noise + detections)

Planted curves (``analysis.development.loss_curves``): 1500 training steps, each of the smooth families
(exponential, exponential to a floor, power law, power law to a floor, a gradual logistic
decline whose 10-90 % span is 300 steps) ``--n`` times under two noise models: ``quick``
(``QUICK_NOISE``: what the quick-preset runs show, heavy-tailed, nearly white) and
``ar06`` (Gaussian AR(1), lag-1 0.6, sd 0.0625: correlated noise, the harder case); and
``--n`` x 2 planted sharp drops (0.15-0.7 decades, 10-90 % span 0.5-5 % of their step,
at steps 100-1300) under ``quick``. A false detection: a curve of a smooth family with at
least one *sharp* transition; its rate has an exact (Clopper-Pearson) 95 % interval. Power:
a planted drop found within 0.05 decades (12 %) of its step; coverage: the planted step
inside the reported 95 % interval, among those found. Draw i of family f uses
``numpy.random.default_rng([23, f, i])``: reproducible.

Real runs: per run, the noise of its training loss (``noise_profile``) and the transitions
found with the default settings and with each alternative threshold (``sharp_span`` 0.05 /
0.2; ``min_bic`` 20; ``median_window`` 1), beside the learning-rate changes.

Progress on stderr; one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOISES = {"quick": None, "ar06": dict(sd=0.0625, ar=0.6, df=None, early=0.0)}
ALTERNATIVES = {"default": {}, "sharp_span_0.05": {"sharp_span": 0.05}, "sharp_span_0.2": {"sharp_span": 0.2},
                "min_bic_20": {"min_bic": 20.0}, "no_median_filter": {"median_window": 1}}


def exact_ci(k: int, n: int) -> list[float]:
    """Clopper-Pearson 95 % interval of k successes in n (scipy's exact binomial interval)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def smooth_families(n: int, steps: int, noise_name: str) -> dict:
    from analysis.development import dynamics as Dy
    from analysis.development import loss_curves as LC

    t = np.arange(1, steps + 1.0)
    model = LC.QUICK_NOISE if NOISES[noise_name] is None else LC.NoiseModel(**NOISES[noise_name])
    out = {}
    for f, fam in enumerate(LC.SMOOTH):
        hits, gradual, examples = 0, 0, []
        for i in range(n):
            r = Dy.detect_transitions(t, LC.draw(fam, t, np.random.default_rng([23, f, i]), model))
            hits += bool(r["transitions"])
            gradual += bool(r["gradual"])
            if r["transitions"] and len(examples) < 5:
                examples.append({"draw": i, "transitions": [{k: tr[k] for k in ("step", "drop_log10", "width_decades",
                                                                               "width_upper_decades")}
                                                            for tr in r["transitions"]]})
        out[fam] = {"n": n, "false_detections": hits, "rate": hits / n if n else None,
                    "rate_ci95": exact_ci(hits, n) if n else None, "with_gradual_change": gradual,
                    "examples": examples}
        print(f"{noise_name} {fam}: {hits}/{n} false sharp detections, {gradual} with a gradual change",
              file=sys.stderr, flush=True)
    return out


def planted_steps(n: int, steps: int) -> dict:
    from analysis.development import dynamics as Dy
    from analysis.development import loss_curves as LC

    t = np.arange(1, steps + 1.0)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([23, 99, i])
        c, p = LC.sharp_step(t, rng)
        r = Dy.detect_transitions(t, c * 10 ** LC.noise(t, LC.QUICK_NOISE, rng))
        near = [tr for tr in r["transitions"] if abs(np.log10(tr["step"] / p["step"])) < 0.05]
        tr = near[0] if near else None
        rows.append({**p, "found": tr is not None,
                     "covered": bool(tr and tr["interval"][0] <= p["step"] <= tr["interval"][1]),
                     "found_step": tr["step"] if tr else None, "interval": tr["interval"] if tr else None,
                     "found_drop": tr["drop_log10"] if tr else None,
                     "as_gradual": any(abs(np.log10(g["step"] / p["step"])) < 0.05 for g in r["gradual"]),
                     "elsewhere": len(r["transitions"]) - len(near)})
    found = [r for r in rows if r["found"]]
    cov = sum(r["covered"] for r in found)
    out = {"n": n, "found": len(found), "power": len(found) / n, "power_ci95": exact_ci(len(found), n),
           "covered": cov, "coverage": cov / max(1, len(found)), "coverage_ci95": exact_ci(cov, max(1, len(found))),
           "reported_as_gradual": sum(r["as_gradual"] for r in rows),
           "extra_transitions_elsewhere": sum(r["elsewhere"] for r in rows), "by_size": {}, "by_step": {}}
    for lo, hi in ((0.15, 0.25), (0.25, 0.4), (0.4, 0.7)):
        sel = [r for r in rows if lo <= r["drop_log10"] < hi]
        k = sum(r["found"] for r in sel)
        out["by_size"][f"{lo}-{hi}"] = {"n": len(sel), "found": k, "ci95": exact_ci(k, len(sel)) if sel else None}
    for lo, hi in ((100, 300), (300, 700), (700, 1300)):
        sel = [r for r in rows if lo <= r["step"] < hi]
        k = sum(r["found"] for r in sel)
        out["by_step"][f"{lo}-{hi}"] = {"n": len(sel), "found": k, "ci95": exact_ci(k, len(sel)) if sel else None}
    err = [abs(r["found_step"] - r["step"]) for r in found]
    out["median_abs_location_error_steps"] = float(np.median(err)) if err else None
    out["rows"] = rows
    print(f"planted: found {len(found)}/{n}, covered {cov}/{len(found)}", file=sys.stderr, flush=True)
    return out


def real_runs(runs: list[str]) -> dict:
    from analysis.development import dynamics as Dy
    from analysis.development import loss_curves as LC
    from analysis.reports.dynamics import lr_changes, read_metrics

    out = {}
    for run in runs:
        m = read_metrics(Path(run))
        entry = {"n": len(m["step"]), "last_step": m["step"][-1] if m["step"] else None,
                 "lr_changes": lr_changes(m), "noise": LC.noise_profile(m["step"], m["loss"]) if m["step"] else None}
        for name, kw in ALTERNATIVES.items():
            r = Dy.detect_transitions(m["step"], m["loss"], replace(Dy.TransitionSettings(), **kw))
            entry[name] = {"transitions": r["transitions"], "gradual": r["gradual"], "reason": r["reason"],
                           "n_effective": r["n_effective"]}
        out[run] = entry
        d = entry["default"]
        print(f"{run}: {entry['n']} steps, sharp at {[round(t['step']) for t in d['transitions']]}, gradual at "
              f"{[round(t['step']) for t in d['gradual']]}", file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="curves per smooth family and noise (planted steps: 2n)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps of a planted curve")
    ap.add_argument("--runs", nargs="*", default=[], help="run directories with a metrics.csv")
    ap.add_argument("--noises", default="quick,ar06", help="noise models of the smooth families (quick, ar06)")
    ap.add_argument("--planted", type=int, default=None, help="planted sharp steps (default 2n)")
    a = ap.parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    out = {"n": a.n, "steps": a.steps}
    if a.n:
        out["smooth"] = {k: smooth_families(a.n, a.steps, k) for k in a.noises.split(",")}
        out["planted"] = planted_steps(2 * a.n if a.planted is None else a.planted, a.steps)
    if a.runs:
        out["runs"] = real_runs(a.runs)
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, load_average=os.getloadavg()[0])
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
