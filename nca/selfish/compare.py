"""The comparison of scripts/selfish.py: presets and evaluation (no disk, no printing).

Every variant is evaluated through ``lineage_rollout`` (one rule with all ids 0 for the
cooperative and selfish variants -- the same numbers as the core rollout, tested), so
all variants get the same measures:

- ``loss_curve``: visible MSE (``visible_mse``: clipped RGBA, the loss while states stay
  in [0, 1], finite when a rule explodes) every ``every`` steps of a ``persist_steps``
  rollout from the variant's seed; ``final_loss``: the raw training loss (RGBA MSE) at
  ``eval_at`` (the training horizon), ``final_loss_visible`` the visible one;
  ``persist_loss``: visible MSE at the end; ``alive_end``: fraction of the grid alive;
- regeneration: the grown state at ``damage_at`` is hit with ``damage_n`` of the article's
  damage discs (``nca.damage.circle_masks``, fixed key) and regrown ``regen_steps``, next to
  the undamaged state run as long (the control: long rollouts drift even without damage);
  ``regen_recovery`` = mean over the discs that hurt (visible MSE up > 5%) of
  1 - (loss_after - loss_control) / (loss_damaged - loss_before): 1 = as good as the
  undamaged control, 0 = no repair (None when no disc hurt); ``regen_gap`` = mean
  loss_after - loss_control;
- per-cell fitness maps (``cell_fitness``) at ``snapshot_times``; lineage shares over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Config, preset
from ..errors import NCAError
from ..model import ModelConfig, Params, seed_state
from ..damage import circle_masks
from ..rng import stream
from .fitness import cell_error, cell_fitness, visible_mse
from .invasion import invasion_curves, plant_ids
from .lineages import lineage_rollout, lineage_seed, lineage_shares, stack_params
from .training import AdversaryConfig

VARIANTS = ("cooperative", "selfish", "lineages")
MUTANTS = ("host", "perturbed", "selfish", "adversary")


@dataclass(frozen=True)
class ComparisonConfig:
    """Everything one comparison run needs (hashable)."""

    train: Config = field(default_factory=Config)  # the cooperative variant's training config
    lineages: int = 2  # K rules in the competing-lineages variant
    seed_radius: int = 2  # px between the centre and each lineage's seed cell
    persist_steps: int = 1024
    every: int = 16  # record every n steps (eval_at, damage_at, persist_steps are multiples)
    eval_at: int = 48
    damage_at: int = 96
    regen_steps: int = 192
    damage_n: int = 8
    snapshot_times: tuple[int, ...] = (16, 48, 256, 1024)
    host: str = "distill:lizard/persistent"
    host_grow: int = 200
    invasion_steps: int = 500
    invasion_every: int = 10
    patch_radius: int = 4
    fraction: float = 0.1
    perturb_scale: float = 0.5
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)

    def __post_init__(self):
        for name in ("eval_at", "damage_at", "persist_steps", "regen_steps"):
            if getattr(self, name) % self.every:
                raise NCAError(f"{name}={getattr(self, name)} must be a multiple of every={self.every}")
        for t in self.snapshot_times:
            if t % self.every or not 0 < t <= self.persist_steps:
                raise NCAError(f"snapshot time {t} must be a multiple of every={self.every} in (0, persist_steps]")
        if not self.eval_at <= self.persist_steps or not self.damage_at <= self.persist_steps:
            raise NCAError("eval_at and damage_at must be <= persist_steps")
        if self.invasion_steps % self.invasion_every:
            raise NCAError(f"invasion_steps must be a multiple of invasion_every={self.invasion_every}")
        if self.lineages < 1:
            raise NCAError(f"lineages must be >= 1, got {self.lineages}")


def _cpu() -> ComparisonConfig:
    train = preset("quick", target_size=24, target_padding=6, train_steps=300, batch_size=4, pool_size=128,
                   rollout_min=32, rollout_max=48, lr_decay_step=250, checkpoint_every=100, hidden=64)
    return ComparisonConfig(train=train, adversary=AdversaryConfig(steps=40, batch=1, rollout=32))


def _smoke() -> ComparisonConfig:
    train = preset("tiny", train_steps=4, checkpoint_every=4)
    return ComparisonConfig(train=train, persist_steps=32, every=8, eval_at=8, damage_at=16, regen_steps=16,
                            damage_n=2, snapshot_times=(8, 32), host_grow=16,
                            invasion_steps=20, adversary=AdversaryConfig(steps=2, batch=1, rollout=4))


COMPARISON_PRESETS = {"cpu": _cpu, "smoke": _smoke}


def comparison_preset(name: str, **overrides) -> ComparisonConfig:
    """A named preset ("cpu": the 2-core comparison; "smoke": seconds, for tests) with
    top-level overrides (``train_steps=...`` goes to the training config)."""
    if name not in COMPARISON_PRESETS:
        raise NCAError(f"unknown comparison preset {name!r}; choose one of {', '.join(COMPARISON_PRESETS)}")
    c = COMPARISON_PRESETS[name]()
    if "train_steps" in overrides:
        c = replace(c, train=replace(c.train, train_steps=overrides.pop("train_steps")))
    return replace(c, **overrides)


# --------------------------------------------------------------------------- evaluation


_rollout = jax.jit(lineage_rollout, static_argnames=("steps", "cfg", "record", "every", "remat"))


def start_state(variant: str, ccfg: ComparisonConfig, model_cfg: ModelConfig):
    """The variant's seed: the article's one cell (id 0), or one cell per lineage."""
    g = ccfg.train.grid_size
    if variant == "lineages":
        return lineage_seed(g, g, model_cfg, ccfg.lineages, ccfg.seed_radius)
    x = seed_state(g, g, model_cfg)
    return x, jnp.where(x[..., 3] > model_cfg.alive_threshold, 0, -1).astype(jnp.int32)


def _mse(states, target):
    return np.asarray(visible_mse(states, target))


def evaluate_variant(params: Params, model_cfg: ModelConfig, x0, ids0, target, ccfg: ComparisonConfig,
                     key) -> dict:
    """Measures of one trained variant (params: leaves [K, ...]). target: [H, W, 4].

    Returns numpy values: times [T], loss_curve [T], alive_curve [T], shares [T, K],
    final_loss, persist_loss, alive_end, regen_before/damaged/after [damage_n],
    regen_recovery, snapshots {t: (state [H, W, C], ids [H, W], fitness [H, W])},
    gif (states [F, H, W, C], ids [F, H, W]): the recorded rollout, at most ~96 frames.
    """
    k = params["b2"].shape[0]
    every = ccfg.every
    _, _, traj = _rollout(params, x0, ids0, key, steps=ccfg.persist_steps, cfg=model_cfg, every=every)
    times = np.arange(1, ccfg.persist_steps // every + 1) * every
    loss = _mse(traj.states, target)
    alive = np.asarray(jnp.mean(traj.ids >= 0, axis=(-2, -1)))
    shares = np.asarray(lineage_shares(traj.ids, k))
    at = lambda t: t // every - 1  # noqa: E731 -- index of the state after step t

    # regeneration after the article's damage discs
    g = target.shape[0]
    grown, grown_ids = traj.states[at(ccfg.damage_at)], traj.ids[at(ccfg.damage_at)]
    # The same discs for every variant and seed (a fixed, named stream), so that variants
    # are compared on identical wounds.
    keep = 1.0 - circle_masks(stream(jax.random.key(0), "selfish-eval-damage"), ccfg.damage_n, g, g)[..., None]
    damaged = grown[None] * keep
    dmg_ids = jnp.broadcast_to(grown_ids, damaged.shape[:-1])
    after, _, _ = _rollout(params, damaged, dmg_ids, key, steps=ccfg.regen_steps, cfg=model_cfg, record=False,
                           t0=ccfg.damage_at)
    # the undamaged state rides along as the last entry: the control of the regrowth
    after, _, _ = _rollout(params, jnp.concatenate([damaged, grown[None]]),
                           jnp.concatenate([dmg_ids, grown_ids[None]]), key, steps=ccfg.regen_steps,
                           cfg=model_cfg, record=False, t0=ccfg.damage_at)
    before = float(_mse(grown, target))
    l_dmg, l_after = _mse(damaged, target), _mse(after[:-1], target)
    control = float(_mse(after[-1], target))
    # Only discs that hurt (loss up by > 5% and > 1e-4) define a recovery; a disc that
    # missed the body would divide by ~0.
    hit = (l_dmg - before) > max(1e-4, 0.05 * before)
    recovery = 1.0 - (l_after - control) / np.where(hit, l_dmg - before, 1.0)
    fit = cell_fitness(traj.states, target)
    snapshots = {int(t): (np.asarray(traj.states[at(t)]), np.asarray(traj.ids[at(t)]), np.asarray(fit[at(t)]))
                 for t in ccfg.snapshot_times}
    sub = max(1, len(times) // 96)  # at most ~96 GIF frames, taken from the recorded rollout
    return {
        "times": times, "loss_curve": loss, "alive_curve": alive, "shares": shares,
        "fitness_curve": np.asarray(jnp.mean(fit, axis=(-2, -1))),
        "final_loss": float(jnp.mean(cell_error(traj.states[at(ccfg.eval_at)], target)) / 4.0),
        "final_loss_visible": float(loss[at(ccfg.eval_at)]), "persist_loss": float(loss[-1]),
        "alive_end": float(alive[-1]),
        "regen_before": before, "regen_damaged": l_dmg, "regen_after": l_after,
        "regen_recovery": float(np.mean(recovery[hit])) if hit.any() else None,
        "regen_control": control, "regen_hits": int(hit.sum()), "regen_gap": float(np.mean(l_after) - control),
        "snapshots": snapshots,
        "gif": (np.asarray(traj.states[::sub]), np.asarray(traj.ids[::sub])),
        # the states the body-axis analysis reads (analysis.reports.selfish.axis_components)
        "axis_states": np.asarray(traj.states[: at(ccfg.eval_at) + 1]), "axis_times": times[: at(ccfg.eval_at) + 1],
    }


# --------------------------------------------------------------------------- invasion


def host_states(host_params: Params, model_cfg: ModelConfig, grid: int, steps: int, key, n: int = 1):
    """The host grown from its seed: the states after steps - (n-1)*every_n ... steps
    (``n`` ages, spaced steps // (2n)) -> [n, H, W, C]."""
    x0 = seed_state(grid, grid, model_cfg)
    ids0 = jnp.where(x0[..., 3] > model_cfg.alive_threshold, 0, -1)
    if n == 1:
        x, _, _ = _rollout(stack_params([host_params]), x0, ids0, key, steps=steps, cfg=model_cfg, record=False)
        return x[None]
    gap = max(1, steps // (2 * n))
    first = steps - (n - 1) * gap
    x, ids, _ = _rollout(stack_params([host_params]), x0, ids0, key, steps=first, cfg=model_cfg, record=False)
    _, _, traj = _rollout(stack_params([host_params]), x, ids, key, steps=(n - 1) * gap, cfg=model_cfg,
                          every=gap, t0=first)
    return jnp.concatenate([x[None], traj.states])


def run_invasion(host: Params, mutant: Params, model_cfg: ModelConfig, x0, target, ccfg: ComparisonConfig,
                 key) -> dict:
    """Plant ``mutant`` in the grown host state x0 [H, W, C] in every PLANT mode and roll
    out with a control (the host alone, same fire masks).

    Returns {mode: {"times" (steps since planting, from 0), curves of ``invasion_curves``
    [T + 1], "planted": cells,
    "frames": (states [F, H, W, C], ids [F, H, W])}} as numpy.
    """
    modes = {"patch": ccfg.patch_radius, "cell": 0.0, "fraction": ccfg.fraction}
    t0 = ccfg.host_grow
    steps, every = ccfg.invasion_steps, ccfg.invasion_every
    # One unbatched rollout per mode: the fire masks then equal the control's exactly
    # (they are drawn per grid shape), so harm is due to the mutant alone.
    params = stack_params([host, mutant])
    no_mutant = jnp.where(x0[..., 3] > model_cfg.alive_threshold, 0, -1).astype(jnp.int32)
    _, _, control = _rollout(params, x0, no_mutant, key, steps=steps, cfg=model_cfg, every=every, t0=t0)
    times = np.arange(0, steps // every + 1) * every  # 0: the moment of planting
    out = {}
    for i, (mode, size) in enumerate(modes.items()):
        ids0 = plant_ids(x0, mode, size, jax.random.fold_in(key, i), model_cfg.alive_threshold)
        _, _, traj = _rollout(params, x0, ids0, key, steps=steps, cfg=model_cfg, every=every, t0=t0)
        curves = invasion_curves(jnp.concatenate([ids0[None], traj.ids]), jnp.concatenate([x0[None], traj.states]),
                                 jnp.concatenate([x0[None], control.states]), target, model_cfg.alive_threshold)
        out[mode] = {"times": times, **{k: np.asarray(v) for k, v in curves.items()},
                     "planted": int(jnp.sum(ids0 == 1)), "frames": (np.asarray(traj.states), np.asarray(traj.ids))}
    return out


def invasion_summary(curves: dict) -> dict:
    """Scalars of one invasion run: final/peak mutant share, extinct (no mutant cell at the
    end), extinct_at (first recorded step with none, or None), final harm, final overgrowth."""
    m = curves["mutant_cells"]
    gone = np.nonzero(m == 0)[0]
    return {
        "planted": curves["planted"],
        "final_share": float(curves["mutant_share"][-1]),
        "peak_share": float(curves["mutant_share"].max()),
        "final_mutant_cells": int(m[-1]),
        "extinct": bool(m[-1] == 0),
        "extinct_at": int(curves["times"][gone[0]]) if len(gone) else None,
        "final_harm": float(curves["harm"][-1]),
        "final_overgrowth": int(curves["overgrowth"][-1]),
    }

