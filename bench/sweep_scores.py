"""Validate the sweep table's scores (analysis/reports/sweep.py) on models whose behaviour
the article states, and on a model with nothing to find.

    python bench/sweep_scores.py --out docs/validation/sweep_scores.json   # ~5-10 min on 2 cores

Planted (the article, Mordvintsev et al. 2020, Experiments 1-3): the growing-experiment
lizard decays after growth, the persistent and regenerating ones hold (persistence
separates them); the regenerating lizard regrows a cut half (regeneration separates it
from the growing one). Negative: an untrained model (the article's zero-initialised last
layer: nothing grows) must score the empty grid's loss on every score; and the same model
scored with two independent scoring seeds must not differ (the false-positive check: each
pair's 95 % intervals over replicates should overlap).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--seeds", default="0,1")
    a = ap.parse_args()

    import jax
    import numpy as np

    import nca
    from analysis.reports.sweep import ScoreSettings, score_model
    from analysis.stats import mean_ci
    from nca.model import init_params

    out = {"settings": {}, "models": {}}
    lizard = nca.load_model("distill:lizard/growing")
    models = {name: nca.load_model(f"distill:lizard/{name}") for name in ("growing", "persistent", "regenerating")}
    untrained = init_params(jax.random.key(0), lizard.model_config)
    for seed in map(int, a.seeds.split(",")):
        s = ScoreSettings(replicates=a.replicates, seed=seed)
        out["settings"] = {k: getattr(s, k) for k in ("grow_steps", "persist_steps", "regrow_steps", "replicates")}
        entries = [(n, m.params, m.model_config) for n, m in models.items()]
        entries.append(("untrained", untrained, lizard.model_config))
        for name, params, cfg in entries:
            t0, c0 = time.perf_counter(), time.process_time()
            r = score_model(params, cfg, lizard.target_image(), lizard.grid_size, s)
            row = {k: mean_ci(v) for k, v in r.items() if k != "empty_loss"}
            row["empty_loss"] = r["empty_loss"]
            row["raw"] = {k: np.asarray(v).tolist() for k, v in r.items() if k != "empty_loss"}
            row["wall_s"], row["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
            out["models"].setdefault(name, {})[str(seed)] = row
            print(name, seed, {k: round(row[k]["mean"], 5) for k in ("growth", "persistence", "regeneration")},
                  f"cpu {row['cpu_s']:.1f}s", file=sys.stderr, flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
