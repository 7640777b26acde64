"""Time the unit-level knockout atlas of a published model (issue 13: under 3 minutes on 2
CPU cores), and print what it found.

    python bench/knockouts.py                               # distill:lizard/regenerating
    python bench/knockouts.py distill:lizard/persistent --replicates 5 --json

What is timed: ``analysis.causal.knockouts.unit_atlas`` as ``scripts/knockout_report.py`` runs it:
the grown start (growth condition: from the seed, ``--steps`` steps), the 128 single unit
knockouts, the ``--max-pairs`` pairs with the most alike output weights and ``--random-pairs``
drawn uniformly from the other pairs of the 128 units (8128 in all), then all small units at once,
``--replicates`` fire-mask replicates each, compilation included (a cold process: the
figure a user waits for). The knockouts run on the fast path as zeroed output weights,
vmapped in chunks of 16 (one compiled program per chunk shape).

Timings on a shared machine are noisy: the load average is printed beside them, and the
process's CPU time (``cpu_s``, both cores together): on an otherwise idle 2-core machine the
wall time is at least cpu_s / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="distill:lizard/regenerating", help="published name or run folder")
    ap.add_argument("--steps", type=int, default=160, help="CA steps of the growth condition")
    ap.add_argument("--replicates", type=int, default=5, help="fire-mask replicates")
    ap.add_argument("--max-pairs", type=int, default=48, help="pairs with the most alike output weights")
    ap.add_argument("--random-pairs", type=int, default=48, help="pairs drawn uniformly from the rest")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args(argv)

    t_import = time.time()
    import jax
    import numpy as np

    import nca
    from analysis.causal import knockouts as K

    m = nca.load_model(a.model)
    cfg = m.model_config
    target = K.target_on_grid(m.target_image(), m.grid_size)
    key = jax.random.key(a.seed)
    t0 = time.time()
    cpu0 = time.process_time()
    start = K.Start("growth", np.asarray(nca.seed_state(m.grid_size, m.grid_size, cfg, batch=a.replicates)), 0,
                    a.steps)
    u = K.unit_atlas(m.params, cfg, target, key, start, K.UnitAtlasSettings(max_pairs=a.max_pairs,
                                                                          random_pairs=a.random_pairs))
    wall = time.time() - t0
    cpu = time.process_time() - cpu0
    eff = np.array(u["effect"]["mean"])
    r = u["redundancy"]
    out = {"model": a.model, "grid": m.grid_size, "steps": a.steps, "replicates": a.replicates,
           "rollouts": (1 + cfg.hidden + 1 + r["tested_pairs"] + 1), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "import_s": round(t0 - t_import, 1), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
           "units_effect_ge_0.5": int((eff >= K.ESSENTIAL).sum()), "units_effect_lt_0.1": int((eff < 0.1).sum()),
           "eligible_pairs": r["eligible_pairs"], "tested_pairs": r["tested_pairs"], "flagged": len(r["flagged"]),
           "flagged_strict": len(r["flagged_strict"]), "flagged_scaled_epistasis": len(r["flagged_scaled_epistasis"]),
           "buffering_counts": r["buffering_counts"], "pair_selection": u["pair_selection"],
           "diverged_units": sum(1 for d in u["diverged"] if d), "pairs_diverged": u["pairs_diverged"],
           "cpu_s_per_rollout": round(cpu / (1 + cfg.hidden + 1 + r["tested_pairs"] + 1), 3),
           "verdict": r["verdict"], "eligible_group": r["eligible_group"],
           "most_buffered": sorted(({"pair": p["pair"], "buffering": p["buffering"],
                                     "effect_double": p["effect_double"]["mean"],
                                     "effect_single": [e["mean"] for e in p["effect_single"]]} for p in r["pairs"]
                                    if p["buffering"]["mean"] is not None),
                                   key=lambda p: -p["buffering"]["mean"])[:5],
           "most_aggravating": sorted(({"pair": p["pair"], "scaled_epistasis": p["scaled_epistasis"],
                                        "effect_double": p["effect_double"]["mean"]} for p in r["pairs"]
                                       if p["scaled_epistasis"]["mean"] is not None),
                                      key=lambda p: p["scaled_epistasis"]["mean"])[:5]}
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    print(f"unit atlas of {a.model}: {wall:.0f} s ({'under' if wall < 180 else 'OVER'} the 3-minute budget)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
