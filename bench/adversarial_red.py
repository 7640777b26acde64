"""Adversarial "red lizard" cells (nca/assets/adversarial) mixed into a host lizard, as in
Randazzo et al. (Distill 2021): each step x = host(x) (1 - m) + adversary(x) m, with m fixed on
60 % of the target's cells (alpha >= 0.1), independent fire masks, from the seed and (as the
article's notebook, adversarial_growing_ca.ipynb, trains it: ``x0_seed`` is the host grown 200
steps) from the host grown for 200 steps. Prints, at steps 100-600 after the start, the body
size (alpha > 0.5) and the mean (R - G) over the body, for the host alone and attacked, with
the bundled regenerating and persistent lizards as hosts.

    python bench/adversarial_red.py
"""
from pathlib import Path

import jax
import numpy as np

import nca
from nca.model import step
adversary = nca.load_model(Path(nca.__file__).parent / "assets" / "adversarial" / "red_model_60perc.json")
for hname in ("distill:lizard/regenerating", "distill:lizard/persistent"):
    host = nca.load_model(hname)
    target = host.target_image()
    key = jax.random.key(0)
    m = ((jax.random.uniform(nca.rng.stream(key, "mask"), target.shape[:2] + (1,)) < 0.6) & (target[..., 3:4] >= 0.1)).astype(np.float32)
    @jax.jit
    def mixed(x, t, m):
        a = step(host.params, x, jax.random.fold_in(nca.rng.stream(key, "host"), t), host.model_config)[0]
        b = step(adversary.params, x, jax.random.fold_in(nca.rng.stream(key, "adversary"), t), adversary.model_config)[0]
        return a * (1 - m) + b * m
    grown = nca.seed_state(72, 72, host.model_config)
    for t in range(200):
        grown = mixed(grown, t, np.zeros_like(m))
    for (mm, lab), (start, t0) in [(a, b) for b in ((nca.seed_state(72, 72, host.model_config), 0), (grown, 200))
                                   for a in ((np.zeros_like(m), "alone"), (m, "attacked"))]:
        x = start
        out = []
        for t in range(t0, t0 + 600):
            x = mixed(x, t, mm)
            if (t + 1 - t0) in (100, 200, 400, 600):
                rgba = np.clip(np.asarray(x[..., :4]), 0, 1); body = rgba[..., 3] > 0.5
                out.append((t + 1, int(body.sum()), round(float(np.mean(rgba[..., 0][body] - rgba[..., 1][body])), 3) if body.sum() else None))
        print(hname, "from the seed" if t0 == 0 else "from the host grown 200 steps", lab, out)
