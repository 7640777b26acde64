"""The orientation check: which variant of an imported model is the one its authors trained.

A state_dict does not say which of its gradient bands reads d/dx, nor with which sign. The 8
variants (``torch_layouts.VARIANTS``: swap the bands or not, times a sign on each) grow the 8
images of the same body under the symmetries of the square -- a wrong choice grows a clean,
mirrored body with no error (a transposed PyTorch reproduction read in the obvious band
order grows its lizard mirrored on the diagonal). So the choice is measured:

- ``by_target``: grow every variant from the seed and score the final RGBA against the
  target it was trained on (mean squared error, as the article's loss); the best variant is
  taken only if it beats the runner-up by ``margin`` (a symmetric target cannot tell two
  variants apart: refused) and beats the empty grid (a model that grows nothing under every
  variant: refused).
- ``by_step``: run one step of every variant on a state, with the fire mask the source
  drew, and keep the variants that reproduce the source's next state to ``tol``; exactly
  one must.

Pure functions of arrays; the rollouts are the jitted ``nca.model.rollout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import NCAError
from ..model import ModelConfig, rollout, seed_state, step
from ..rng import stream


@dataclass(frozen=True)
class OrientationSettings:
    """steps: growth steps before scoring (the article's models are judged at 64-96; 200
    lets slower growers finish); rollouts: fire-mask draws per variant (scores averaged);
    margin: the best variant's score must be below margin x the runner-up's; empty_margin:
    and below empty_margin x the score of an empty grid; seed: the PRNG seed of the draws;
    alpha: "premultiplied" (our state's RGB, the article) or "straight" (a source trained
    on un-premultiplied colour: the target's RGB is divided by its alpha before scoring)."""

    steps: int = 200
    rollouts: int = 2
    margin: float = 0.5
    empty_margin: float = 0.5
    seed: int = 0
    alpha: str = "premultiplied"

    def __post_init__(self):
        if self.alpha not in ("premultiplied", "straight"):
            raise NCAError(f"alpha must be 'premultiplied' or 'straight', got {self.alpha!r}")
        if self.steps < 1 or self.rollouts < 1:
            raise NCAError(f"orientation steps and rollouts must be >= 1, got {self.steps}, {self.rollouts}")
        if not 0 < self.margin <= 1 or not 0 < self.empty_margin <= 1:
            raise NCAError(f"orientation margins must be in (0, 1], got {self.margin}, {self.empty_margin}")


@dataclass(frozen=True)
class Orientation:
    """The outcome: the chosen variant's index, how it was chosen ("target", "step" or
    "declared": the layout's documented default, unchecked), and every variant's score
    (MSE to the target, or max |error| of the step), in ``VARIANTS`` order."""

    chosen: int
    by: str
    scores: tuple[float, ...] = ()
    empty_score: float | None = None


@partial(jax.jit, static_argnames=("steps", "cfg"))
def _final_rgba(params, x0, key, steps, cfg):
    return rollout(params, x0, key, steps, cfg, record=(), fast=True)[0][..., :4]


def _scorable_target(target: np.ndarray, alpha: str) -> np.ndarray:
    t = np.asarray(target, np.float32)[..., :4].copy()
    if alpha == "straight":
        a = t[..., 3:4]
        t[..., :3] = np.where(a > 0, t[..., :3] / np.maximum(a, 1e-8), 0.0)
    return t


def by_target(candidates: list[dict], cfg: ModelConfig, target: np.ndarray, names: list[str],
              settings: OrientationSettings = OrientationSettings()) -> Orientation:
    """Choose among ``candidates`` (params of each variant) the one that grows ``target``
    ``[H, W, 4]`` (premultiplied, as ``nca.load_target``) from the seed on an H x W grid."""
    t = _scorable_target(target, settings.alpha)
    h, w = t.shape[:2]
    x0 = seed_state(h, w, cfg)
    key = jax.random.key(settings.seed)
    scores = []
    for params in candidates:
        errs = []
        for r in range(settings.rollouts):
            rgba = np.asarray(_final_rgba(params, x0, stream(key, "orientation", r), settings.steps, cfg))
            errs.append(float(np.mean((np.clip(rgba, 0, 1) - t) ** 2)))
        scores.append(float(np.mean(errs)))
    empty = float(np.mean(t ** 2))
    order = np.argsort(scores)
    best, second = scores[order[0]], scores[order[1]]
    table = ", ".join(f"{names[i]} {scores[i]:.5f}" for i in order)
    if best >= settings.empty_margin * empty:
        raise NCAError(f"the model grows nothing like the target under every variant (best MSE {best:.5f}, "
                       f"an empty grid scores {empty:.5f}); check the layout, fire convention and target "
                       f"[{table}]")
    if best >= settings.margin * second:
        raise NCAError(f"orientation is ambiguous: variants {names[order[0]]} and {names[order[1]]} grow the "
                       f"target equally well (MSE {best:.5f} vs {second:.5f}; a symmetric target cannot tell "
                       f"them apart); pass variant= explicitly or another target [{table}]")
    return Orientation(int(order[0]), "target", tuple(scores), empty)


@partial(jax.jit, static_argnames=("cfg",))
def _one_step(params, x, fire, cfg):
    return step(params, x, jax.random.key(0), cfg, fire=fire)[0]


def by_step(candidates: list[dict], cfg: ModelConfig, x: np.ndarray, fire: np.ndarray, x_next: np.ndarray,
            names: list[str], tol: float = 1e-4) -> Orientation:
    """Choose the variant whose step maps ``x`` [..., H, W, C] to the source's ``x_next``
    under the source's fire mask ``fire`` [..., H, W, 1] (bool: the cells that updated)."""
    x, x_next = jnp.asarray(x, jnp.float32), np.asarray(x_next, np.float32)
    fire = jnp.asarray(np.asarray(fire, bool))
    if x.shape != x_next.shape or fire.shape != x.shape[:-1] + (1,):
        raise NCAError(f"source step shapes disagree: x {x.shape}, x_next {x_next.shape}, fire {fire.shape} "
                       "(fire must be [..., H, W, 1])")
    if x.shape[-1] != cfg.channels:
        raise NCAError(f"source state has {x.shape[-1]} channels, the model {cfg.channels}")
    errs = [float(np.max(np.abs(np.asarray(_one_step(p, x, fire, cfg)) - x_next))) for p in candidates]
    good = [i for i, e in enumerate(errs) if e <= tol]
    table = ", ".join(f"{n} {e:.2e}" for n, e in zip(names, errs))
    if not good:
        raise NCAError(f"no variant reproduces the source's step within {tol:g} (max |error|: {table}); "
                       "check the layout, feature order and kernel scale")
    if len(good) > 1:
        raise NCAError(f"orientation is ambiguous: variants {', '.join(names[i] for i in good)} all reproduce "
                       f"the source's step within {tol:g}; give a state that is not symmetric")
    return Orientation(good[0], "step", tuple(errs))
