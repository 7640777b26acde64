"""The spatial null's false-positive rates with the surrogate noise redrawn: one battery run per
seed, pooled, with intervals by bootstrap over the seeds.

A ``BodyNull`` draws its surrogate noise once and tests every map of a family against it, so
one battery run's k/n is the rate *given one draw of the noise* and its binomial interval is
too narrow (docs/validation/spatial_null.md). The rate a user meets, over the noise and the
field, needs the noise redrawn: run the battery once per seed (each seed's ``BodyNull`` draws
its own noise), then pool here::

    for s in $(seq 100 139); do python bench/dissection.py --out DIR/s$s --only battery \\
        --parts fp --old-null '' --draws 50 --seed $s --families F1,F2; done
    python bench/null_redrawn.py DIR > redrawn.json

Per family and test: maps k/n pooled over the seeds, the rate, a 95 % percentile bootstrap
interval over the seeds (10,000 resamples of the seeds, generator seed 0; the seeds are the
independent units), the Clopper-Pearson interval that treats maps as independent (beside it,
for comparison), the over-dispersion of the seeds' counts (their variance, ddof 1, over the
binomial's), and each seed's count. JSON on stdout; the seeds found on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TESTS = ("radial", "any_direction", "along_axis", "across_axis", "kind_rule_any_or_radial")
BOOTSTRAP = 10_000


def pool(runs: dict[int, dict], tests: tuple[str, ...] = TESTS) -> list[dict]:
    """runs: seed -> that seed's battery (``false_positives`` of bench/dissection.py's JSON).
    Families in the first seed's order, only those every seed measured."""
    import numpy as np

    from analysis.stats import binomial_interval

    seeds = sorted(runs)
    families = [f for f in runs[seeds[0]] if all(f in runs[s] for s in seeds)]
    out = []
    for fam in families:
        row = {"family": fam, "seeds": len(seeds), "maps": sum(runs[s][fam]["radial"]["n"] for s in seeds)}
        for test in tests:
            k = np.array([runs[s][fam][test]["k"] for s in seeds])
            n = np.array([runs[s][fam][test]["n"] for s in seeds])
            rate = k.sum() / n.sum()
            rng = np.random.default_rng(0)
            draws = rng.integers(0, len(seeds), (BOOTSTRAP, len(seeds)))
            boot = k[draws].sum(1) / n[draws].sum(1)
            binom = n.mean() * rate * (1 - rate)
            row[test] = {"k": int(k.sum()), "n": int(n.sum()), "rate": float(rate),
                         "cluster_boot_95": [float(v) for v in np.percentile(boot, [2.5, 97.5])],
                         "binomial_cp_95": list(binomial_interval(int(k.sum()), int(n.sum()))),
                         "dispersion": float(k.var(ddof=1) / binom) if binom > 0 else None,
                         "per_seed_k": k.tolist()}
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path, help="folder of the per-seed runs, DIR/s<seed>/dissection.json")
    a = ap.parse_args()
    runs = {}
    for f in sorted(a.dir.glob("s*/dissection.json")):
        battery = json.loads(f.read_text())["battery"]
        runs[int(f.parent.name[1:])] = battery["false_positives"]
    if not runs:
        print(f"error: no DIR/s<seed>/dissection.json under {a.dir}", file=sys.stderr)
        return 2
    print(f"seeds {min(runs)}-{max(runs)}: {len(runs)}", file=sys.stderr)
    json.dump({"what": "false-positive rates of the spatial null with the surrogate noise redrawn per seed; "
                       "interval = bootstrap over seeds", "results": pool(runs)}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
