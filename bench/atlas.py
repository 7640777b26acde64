"""Time the full atlas report on a published lizard (issue 27: under 2 minutes on 2 CPU
cores), cold (imports and compilation included), and print its summary lines.

    python bench/atlas.py                                   # distill:lizard/regenerating, defaults
    python bench/atlas.py distill:lizard/persistent --json
    python bench/atlas.py -- --replicates 5 --regrow 0      # flags after -- go to the script
    python bench/atlas.py --planted 100                     # false-positive rate and power
    python bench/atlas.py --planted 400 --only moran        # the Moran test alone, more draws

What is timed: ``scripts/atlas_report.py MODEL --out TMP`` in this process (imports, model
load, growth, the types and their nulls, markers, Moran's I and enrichment, pseudotime,
the cut and regrowth, figures and writes). Timings on a shared machine are noisy: the load
average is printed beside them, with the process's CPU time (``cpu_s``, all cores together).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def planted(n: int = 100, only: tuple[str, ...] = ("moran", "types")) -> dict:
    """False-positive rate and power of two atlas tests on planted data (the code of the report):

    * Moran's I permutation test (99 permutations, one-sided p < 0.05) on a 20 x 20 grid:
      iid N(0, 1) values (no autocorrelation) and a left-right ramp with noise sd 4x its step;
    * "beyond the null" of the types (the modularity's permutation p over 19 channel-shuffled
      draws <= 0.05, as the report): one Gaussian population of 300 cells x 16 channels (no types) and 3 planted
      types 2 sd apart.
    -> {test: {case: {hits, n, rate (Wilson)}}}."""
    import numpy as np

    from analysis.representation import atlas as A
    from analysis.stats import proportion_ci

    r, c = np.divmod(np.arange(400), 20)
    W = A.grid_adjacency(r, c)
    moran = {"iid": [], "ramp": []}
    types = {"one population": [], "three types": []}
    for seed in range(n):
        rng = np.random.default_rng([seed, 27])
        for case, v in (("iid", rng.normal(0, 1, 400)), ("ramp", c / 20 + rng.normal(0, 4 / 20, 400))):
            if "moran" in only:
                moran[case].append(bool(A.moran_test(v[:, None], W, 99, rng)["p"][0] < 0.05))
        for case, X in (("one population", rng.normal(0, 1, (300, 16))),
                        ("three types", np.repeat(rng.normal(0, 2 / np.sqrt(2), (3, 16)), 100, 0)
                         + rng.normal(0, 1, (300, 16)))):
            if "types" not in only:
                continue
            q = A.leiden(A.zscore(X), seed=seed)[1]
            nulls = [A.leiden(A.zscore(A.shuffle_channels(X, rng)), seed=seed)[1] for _ in range(19)]
            types[case].append(bool((1 + sum(x >= q for x in nulls)) / 20 <= 0.05))
    rate = lambda h: {"hits": int(sum(h)), "n": len(h), "rate": proportion_ci(h)}  # noqa: E731
    out = {}
    if "moran" in only:
        out["moran"] = {k: rate(v) for k, v in moran.items()}
    if "types" in only:
        out["beyond_null"] = {k: rate(v) for k, v in types.items()}
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="distill:lizard/regenerating")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    p.add_argument("--planted", type=int, default=0, metavar="N",
                   help="instead: false-positive rate and power of the Moran and types tests on N planted draws")
    p.add_argument("--only", default="moran,types", help="with --planted: moran and/or types")
    a = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if a.planted:
        print(json.dumps(planted(a.planted, tuple(a.only.split(","))), indent=1))
        return 0
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    from scripts import atlas_report

    import io
    from contextlib import redirect_stdout

    with tempfile.TemporaryDirectory() as tmp:
        buf = io.StringIO()
        with redirect_stdout(buf):
            atlas_report.main([a.model, "--out", str(Path(tmp) / "r"), "--quiet", *extra])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"model": a.model, "flags": extra, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
           "summary": buf.getvalue().strip().splitlines()}
    if a.json:
        print(json.dumps(out))
    else:
        print("\n".join(out["summary"]))
        print(f"atlas report {a.model}: {wall:.1f} s wall, {cpu:.1f} s CPU ({out['cores']} cores; load average "
              f"{load0:.2f} before, {out['load_after']:.2f} after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
