"""Time the sparse-features report on a published lizard, cold (compilation included), and
measure the reconstruction gain's false-positive rate and power on planted cells.

    python bench/sparse_features.py                              # distill:lizard/regenerating, defaults
    python bench/sparse_features.py --json -- --features 16      # flags after -- go to the script
    python bench/sparse_features.py --planted 20                 # the gain on planted cells (20 draws each)

What is timed: ``scripts/features_report.py MODEL --out TMP`` in this process (import, model
load, the rollouts, 3 SAE fits on the cells and 3 on the shuffled cells, the same for the
untrained rule, the feature maps, the causal test: (2F + 1) x replicates rollouts, the figures
and the writes). Timings on a shared machine are noisy: the load average is printed beside them,
and the process's CPU time (``cpu_s``, all cores together).

``--planted N``: N draws of each kind of cells, 8 channels, 4000 cells (3000 train, 1000 held
out), a dictionary of 8 features, top-2: "sparse" (4 random unit directions, each on with
probability 0.2, magnitude U(0.5, 2), noise 0.02: a true sparse structure) and "gaussian"
(isotropic normal cells: none). A hit = gain (FVE - FVE of the shuffled cells, one SAE seed
each) above 0.02. -> per kind {hits, n, rate (Wilson interval), gains (min, median, max)}, and
for "sparse" the planted directions recovered (|cosine| > 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

THRESHOLD = 0.02


def planted(n: int) -> dict:
    import numpy as np

    from analysis.representation import sparse_features as S
    from analysis.stats import proportion_ci

    cfg = S.SAEConfig(n_features=8, k=2, steps=600, batch=256, lr=1e-2)
    out = {}
    for kind in ("sparse", "gaussian"):
        gains, recovered = [], []
        for draw in range(n):
            rng = np.random.default_rng([draw, 0 if kind == "sparse" else 1])
            if kind == "sparse":
                d = rng.normal(size=(4, 8))
                d /= np.linalg.norm(d, axis=1, keepdims=True)
                x = ((rng.random((4000, 4)) < 0.2) * rng.uniform(0.5, 2.0, (4000, 4))) @ d
                x = x + 0.02 * rng.normal(size=x.shape)
            else:
                x = rng.normal(size=(4000, 8))
            x = x.astype(np.float32)
            fit = S.fit_and_score(x[:3000], x[3000:], cfg, [draw])
            null = S.fit_and_score(x[:3000], x[3000:], cfg, [draw], shuffle_rng=rng)
            gains.append(fit["fve"][0] - null["fve"][0])
            if kind == "sparse":
                recovered.append(int((S.match_directions(fit["params"]["W_dec"], d) > 0.9).sum()))
        g = np.array(gains)
        out[kind] = {"hits": int((g > THRESHOLD).sum()), "n": n, "rate": proportion_ci(g > THRESHOLD),
                     "gains": [float(g.min()), float(np.median(g)), float(g.max())]}
        if recovered:
            out[kind]["directions_recovered_of_4"] = recovered
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="distill:lizard/regenerating", help="published name or run folder")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--planted", type=int, default=0, metavar="N", help="instead: the gain on N planted draws of each kind")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    load0 = os.getloadavg()[0]
    if a.planted:
        w0 = time.time()
        res = planted(a.planted)
        res["wall_s"], res["load_start"], res["load_end"] = time.time() - w0, load0, os.getloadavg()[0]
        print(json.dumps(res))
        return 0
    w0, c0 = time.time(), time.process_time()
    from scripts import features_report

    with tempfile.TemporaryDirectory() as out:
        rc = features_report.main([a.model, "--out", out, "--quiet"] + extra)
    res = {"model": a.model, "flags": extra, "wall_s": time.time() - w0, "cpu_s": time.process_time() - c0,
           "load_start": load0, "load_end": os.getloadavg()[0], "cores": os.cpu_count(), "rc": rc}
    print(json.dumps(res) if a.json else
          f"{a.model}: {res['wall_s']:.0f} s wall, {res['cpu_s']:.0f} s CPU "
          f"(load {load0:.1f} -> {res['load_end']:.1f}, {res['cores']} cores)", file=sys.stderr if not a.json else sys.stdout)
    return rc


if __name__ == "__main__":
    sys.exit(main())
