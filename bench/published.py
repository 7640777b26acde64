"""Fidelity of the published Distill models to their 2020 targets, as a distribution over
fire-mask keys (issue 23: one key is one draw; the README's old "0.0002-0.0003" was key 0).

    python bench/published.py                       # 16 keys, the five models below
    python bench/published.py --keys 32 --json      # one JSON object on stdout

For each model (the persistent and regenerating lizards, the three butterflies) and each
key ``jax.random.key(i)``, i = 0..keys-1 (the keys a user passes to ``nca.grow``: each
draws the stochastic-update fire masks, ``nca.model.step_key``), the model grows from the
seed for ``STEPS[experiment]`` steps (200; the growing butterfly 100, where the article's
experiment-1 models are at their best) and we measure the MSE of the clipped RGBA to the
2020 target (``m.target_image()``), and the same state's MSE to the target's mirror image
(left-right) and upside-down copy: the controls that a wrong Sobel sign would win.

Reported per model: median, the 2.5 / 97.5 % quantiles and the worst (largest) MSE over
the keys, the median's 95 % percentile-bootstrap interval (``analysis.stats``), and the
smallest ratio control MSE / MSE over the keys (how far the closest control is).
Progress on stderr, the table (or JSON) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

MODELS = ("distill:lizard/persistent", "distill:lizard/regenerating", "distill:butterfly/growing",
          "distill:butterfly/persistent", "distill:butterfly/regenerating")
STEPS = {"growing": 100, "persistent": 200, "regenerating": 200}


def fidelity(name: str, keys: int) -> dict:
    """One model over ``keys`` fire-mask keys -> per-key MSEs and their summary."""
    import jax
    import numpy as np

    import nca
    from analysis.stats import bootstrap_ci

    m = nca.load_model(name)
    steps = STEPS[name.split("/")[1]]
    target = np.asarray(m.target_image())
    # one compiled program for all keys: grow is vmapped over the key (each key's fire masks
    # are exactly those of nca.grow(m, steps, key))
    seed = nca.model.seed_state(m.grid_size, m.grid_size, m.model_config)

    def one(k):
        x, _ = nca.rollout(m.params, seed, k, steps, m.model_config, record=())
        return x

    ks = jax.vmap(jax.random.key)(np.arange(keys))
    xs = np.asarray(jax.jit(jax.vmap(one))(ks))  # [K, H, W, C]
    rgba = np.clip(xs[..., :4], 0, 1)

    def mse(t):
        return np.mean((rgba - t) ** 2, axis=(1, 2, 3))  # [K]

    err, mirror, flip = mse(target), mse(target[:, ::-1]), mse(target[::-1])
    rng = np.random.default_rng(0)
    q = lambda v, p: float(np.quantile(v, p))  # noqa: E731
    return {"model": name, "steps": steps, "keys": keys, "mse": err.tolist(),
            "median": q(err, 0.5), "q025": q(err, 0.025), "q975": q(err, 0.975), "worst": float(err.max()),
            "best": float(err.min()), "median_ci": bootstrap_ci(err, np.median, rng),
            "mirror_median": q(mirror, 0.5), "mirror_min": float(mirror.min()),
            "upside_down_median": q(flip, 0.5), "upside_down_min": float(flip.min()),
            "min_ratio_mirror": float((mirror / err).min()), "min_ratio_upside_down": float((flip / err).min())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=16, help="fire-mask keys per model (jax.random.key(0..keys-1))")
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="published names")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args(argv)
    t, c = time.perf_counter(), time.process_time()
    rows = []
    for name in a.models:
        rows.append(fidelity(name, a.keys))
        print(f"{name}: done ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    out = {"rows": rows, "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
           "load_average": os.getloadavg()[0]}
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'model':34s} {'steps':>5s} {'median':>8s} {'[95% CI of median]':>20s} {'q2.5%':>8s} {'q97.5%':>8s} "
          f"{'worst':>8s} {'mirror min':>10s} {'upside min':>10s} {'min ratio':>9s}")
    for r in rows:
        ci = r["median_ci"]
        print(f"{r['model']:34s} {r['steps']:5d} {r['median']:8.5f} [{ci['lo']:.5f}, {ci['hi']:.5f}]   "
              f"{r['q025']:8.5f} {r['q975']:8.5f} {r['worst']:8.5f} {r['mirror_min']:10.4f} "
              f"{r['upside_down_min']:10.4f} {min(r['min_ratio_mirror'], r['min_ratio_upside_down']):9.1f}")
    print(f"n = {a.keys} keys per model; {out['wall_s']:.0f} s wall, {out['cpu_s']:.0f} s CPU, "
          f"load {out['load_average']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
