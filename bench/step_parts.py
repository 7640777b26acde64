"""Where the canonical training step's CPU time goes, measured in turns in one process.

    python bench/step_parts.py                 # 5 rounds
    python bench/step_parts.py --rounds 7 --json
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python bench/step_parts.py --only train_step   # a setting: run
    python bench/step_parts.py --only train_step                                          # both, alternating

The canonical step of ``bench/run.py`` (batch 8, 72x72, exactly 96 CA steps, on its pool of
grown lizards), and parts of it: ``value_and_grad`` of the 96-step rollout alone (remat,
fast path), its forward pass alone, drawing the 96 steps' fire masks (``fire_masks``), and
zero-filling a buffer the size of the stacked states the rematerialised scan keeps
([96, 8, 72, 72, 16] float32). Each call's **CPU time** (user + system of this process,
``os.times``) -- on a machine shared with other work, wall time says little -- one call of
each per round after a warm-up call; medians and minima, and the system time apart (the
page faults of fresh buffers). docs/performance.md (2026-12-06) has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ("train_step", "value_and_grad", "forward", "fire_masks", "zero_fill")


def calls(only) -> dict:
    import jax
    import jax.numpy as jnp

    from bench.run import CANONICAL_STEPS, bench_state, canonical_config, lizard, stateful
    from nca.model import fire_masks, rollout
    from nca.train import compiled_train_step, per_sample_loss

    cfg = canonical_config()
    params, states, target = lizard()
    x0, key, n = states[: cfg.batch_size], jax.random.key(1), CANONICAL_STEPS

    def loss(p, x0, key):
        x, _ = rollout(p, x0, key, n, cfg.model, record=(), remat=True, active_steps=jnp.int32(n), fast=True)
        return jnp.mean(per_sample_loss(x, target))

    grad, fwd = jax.jit(jax.value_and_grad(loss)), jax.jit(loss)
    ts = jnp.arange(n, dtype=jnp.int32)
    masks = jax.jit(lambda k, ts: fire_masks(k, ts, x0.shape, cfg.model.fire_rate).sum())
    zeros = jax.jit(lambda i: jnp.zeros((n, *x0.shape)).at[i].set(1.0).sum())
    made = {"train_step": lambda: stateful(compiled_train_step(cfg, fast=True), bench_state(cfg, params, states), target),
            "value_and_grad": lambda: lambda: grad(params, x0, key),
            "forward": lambda: lambda: fwd(params, x0, key),
            "fire_masks": lambda: lambda: masks(key, ts),
            "zero_fill": lambda: lambda: zeros(3)}
    return {k: made[k]() for k in only}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    only = [p.strip() for p in a.only.split(",") if p.strip()]
    bad = sorted(set(only) - set(PARTS))
    if bad or a.rounds < 1:
        ap.error(f"unknown parts {bad}" if bad else "--rounds must be >= 1")
    import jax

    fns = calls(only)
    for f in fns.values():
        jax.block_until_ready(f())
    cpu, sys_ = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(a.rounds):
        for k, f in fns.items():
            t0 = os.times()
            jax.block_until_ready(f())
            t1 = os.times()
            cpu[k].append(t1.user - t0.user + t1.system - t0.system)
            sys_[k].append(t1.system - t0.system)
    out = {k: {"cpu_ms_median": round(statistics.median(cpu[k]) * 1e3), "cpu_ms_min": round(min(cpu[k]) * 1e3),
               "sys_ms_median": round(statistics.median(sys_[k]) * 1e3), "rounds": a.rounds} for k in fns}
    if a.json:
        print(json.dumps(out))
    else:
        for k, r in out.items():
            print(f"{k:15s} CPU {r['cpu_ms_median']:6d} ms median, {r['cpu_ms_min']:6d} min, "
                  f"system {r['sys_ms_median']:5d} ms (n={r['rounds']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
