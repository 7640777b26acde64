"""Self-repair accounting: how much of a perturbation the CA undoes by itself.

For a hidden channel ``c``, starting from a grown state at step ``t0``, three perturbations
of what the update rule *reads* of the channel (its three perception features, identity
and Sobel pair, ablated at the "perception" hook; the channel stays in the state):

* **total(h)**: ablated throughout ``[t0, t0 + h)``; deviation after h steps;
* **pulse(h)**: ablated in step ``t0`` only, then left alone: does the deviation decay
  (repair) or grow (amplification)?
* **direct(h)**: the deviation the ablation would cause if nothing reacted to it: the sum
  of its one-step effects ``step_ablated(x_s) - step(x_s)`` along the *intact* trajectory
  (same fire masks), ``s = t0 .. t0 + h - 1``; no step sees an earlier step's change.

Deviation = RMS over cells and replicates of the difference of the RGBA as seen (clipped to
[0, 1], ``nca.model.to_rgba``) from the intact rollout
(same keys). All three agree at h = 1. ``repair = 1 - total(h) / direct(h)``: > 0 when the
system compensates for part of what the channel did (self-repair), < 0 when downstream
steps amplify it. ``pulse_recovery = 1 - pulse(h) / max(pulse)``: 1 when a one-step
perturbation is fully undone.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from nca.model import ModelConfig, rollout, step, step_key, to_rgba

from .interventions import ablate, perception_directions


def _rms(a: jax.Array) -> jax.Array:
    """RMS over everything but the leading (time) axis. a: [T, ...] -> [T]."""
    return jnp.sqrt(jnp.mean(jnp.square(a).reshape(a.shape[0], -1), axis=1))


@partial(jax.jit, static_argnames=("horizon", "cfg"))
def _curves(params, x0, key, t0, dirs, horizon, cfg):
    """x0 [B, H, W, C] at step t0; dirs [N, k, 3C] -> total, pulse, direct: each [N, horizon]."""
    def run(hooks):
        return rollout(params, x0, key, horizon, cfg, record=("state",), hooks=hooks, t0=t0)[1].states

    intact = run(None)  # [T, B, H, W, C]
    incoming = jnp.concatenate([x0[None], intact[:-1]], 0)
    ts = t0 + jnp.arange(horizon, dtype=jnp.int32)

    def one(d):
        total = run({"perception": ablate(d, t_start=t0)})
        pulse = run({"perception": ablate(d, t_start=t0, t_stop=t0 + 1)})

        def one_step(args):
            x, t = args
            return to_rgba(step(params, x, step_key(key, t), cfg, t, {"perception": ablate(d)})[0])

        seen = to_rgba(intact)
        deltas = jax.lax.map(one_step, (incoming, ts)) - seen
        return _rms(to_rgba(total) - seen), _rms(to_rgba(pulse) - seen), _rms(jnp.cumsum(deltas, axis=0))

    return jax.vmap(one)(dirs)


def repair_curves(params, cfg: ModelConfig, x0, key: jax.Array, t0: int, horizon: int, channels) -> dict:
    """Self-repair curves of each channel. x0: [B, H, W, C], the grown state at step t0.

    Returns ``{"channels", "h": [1..horizon], "total", "pulse", "direct": [n][horizon],
    "summary": [{channel, total, direct, pulse_peak, pulse_end, repair, pulse_recovery}]}``
    (summary values at h = horizon)."""
    channels = [int(c) for c in channels]
    dirs = np.stack([perception_directions([c], cfg.channels) for c in channels])
    total, pulse, direct = (np.asarray(a, np.float64) for a in
                            _curves(params, jnp.asarray(x0), key, t0, jnp.asarray(dirs), horizon, cfg))
    summary = []
    for i, c in enumerate(channels):
        d, tot, pu = direct[i, -1], total[i, -1], pulse[i]
        summary.append({"channel": c, "total": tot, "direct": d, "pulse_peak": pu.max(), "pulse_end": pu[-1],
                        "repair": 1.0 - tot / d if d > 1e-9 else float("nan"),
                        "pulse_recovery": 1.0 - pu[-1] / pu.max() if pu.max() > 1e-9 else float("nan")})
    return {"channels": channels, "t0": int(t0), "h": list(range(1, horizon + 1)),
            "total": total.tolist(), "pulse": pulse.tolist(), "direct": direct.tolist(), "summary": summary}
