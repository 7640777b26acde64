"""Speed of the selfish-cells code (issue 16's budget), on this machine.

    python bench/selfish.py                 # rollouts: genomes vs the standard rollout
    python bench/selfish.py --smoke         # also time the smoke preset of scripts/selfish.py
    python bench/selfish.py --default       # also time the default experiment (3 seeds; minutes)
    python bench/selfish.py --json

Measured:

- rollout: the published ``distill:lizard/regenerating`` grown from its seed on its 72x72
  grid for ``--steps`` steps: the standard rollout (``nca.model.rollout``, the dense
  reference step, nothing recorded) against the somatic rollout with heritable genomes
  and mutation at birth on (``nca.selfish.somatic.somatic_rollout``, 4 genes, rate 0.02,
  nothing but the final state kept), timed in turns (min and median of ``--reps`` calls
  after a warm-up); the budget: genomes cost <= 1.5x. Also against the CPU fast path
  (``rollout(fast=True)``) for reference.
- smoke / default: wall clock of ``scripts/selfish.py --preset smoke --seeds 0`` and of
  the default ``scripts/selfish.py`` (preset cpu, seeds 0,1,2), each in a fresh process
  with a fresh --out (budgets: < 1 min and < 15 min on 2 cores).

Timings on a shared machine are noisy; compare ratios from one run.
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

from run import interleaved  # bench/run.py: the one side-by-side timing loop

ROOT = Path(__file__).resolve().parents[1]


def measure_rollout(steps: int, reps: int) -> dict:
    import jax
    import jax.numpy as jnp

    import nca
    from nca.model import rollout, seed_state
    from nca.selfish.somatic import SomaticConfig, founders, somatic_rollout

    m = nca.load_model("distill:lizard/regenerating")
    cfg, g, p = m.model_config, m.grid_size, m.params
    x0 = seed_state(g, g, cfg)
    ids0 = jnp.where(x0[..., 3] > cfg.alive_threshold, 0, -1).astype(jnp.int32)
    scfg = SomaticConfig(genome_size=4, mutation_rate=0.02, mutation_size=0.02, max_clones=512)
    key = jax.random.key(0)
    std = jax.jit(lambda k: rollout(p, x0, k, steps, cfg, record=())[0])
    fast = jax.jit(lambda k: rollout(p, x0, k, steps, cfg, record=(), fast=True)[0])
    som = jax.jit(lambda k: somatic_rollout(p, x0, ids0, founders(jnp.zeros((1, 4)), 512), k, steps, cfg, scfg,
                                            every=steps)[0])
    r = interleaved({"standard": lambda: std(key), "standard_fast": lambda: fast(key), "genomes": lambda: som(key)},
                    reps)
    r["ratio_genomes_over_standard"] = round(r["genomes"]["ms_median"] / r["standard"]["ms_median"], 3)
    r["ratio_genomes_over_fast"] = round(r["genomes"]["ms_median"] / r["standard_fast"]["ms_median"], 3)
    r["steps"], r["grid"] = steps, g
    return r


def time_command(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "selfish.py"), "--out", str(Path(d) / "o"),
                            "--quiet", *args], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        secs = time.perf_counter() - t0
    return {"args": args, "seconds": round(secs, 1), "returncode": r.returncode,
            "stderr_tail": r.stderr[-400:] if r.returncode else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200, help="CA steps per rollout (default 200)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per rollout (default 5)")
    ap.add_argument("--smoke", action="store_true", help="also time the smoke preset")
    ap.add_argument("--default", action="store_true", help="also time the default experiment (minutes)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    res = {"rollout": measure_rollout(a.steps, a.reps)}
    if a.smoke:
        res["smoke"] = time_command(["--preset", "smoke", "--seeds", "0"])
    if a.default:
        res["default"] = time_command([])
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        r = res["rollout"]
        print(f"rollout {r['grid']}x{r['grid']}, {r['steps']} steps (median ms): standard {r['standard']['ms_median']}, "
              f"fast path {r['standard_fast']['ms_median']}, genomes {r['genomes']['ms_median']} -> "
              f"genomes/standard {r['ratio_genomes_over_standard']}x (budget 1.5x), "
              f"genomes/fast {r['ratio_genomes_over_fast']}x")
        for k in ("smoke", "default"):
            if k in res:
                print(f"{k}: {res[k]['seconds']} s (exit {res[k]['returncode']}) {res[k]['stderr_tail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
