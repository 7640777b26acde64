"""Knockouts of state channels or directions, batched: one compiled program for all of them.

A knockout ablates a set of directions of the *state* (channel ``c`` = unit vector ``e_c``;
a PC = its loading, embedded in the 16 channels) at the "state" hook of every step of a
rollout: ``v -> v - v @ P + alive * m`` with ``P = D^T D`` the projection onto the
ablated subspace and ``m`` the replacement (0 for zero ablation; the component means for
mean ablation, applied to alive cells only so that dead cells stay empty as in an intact
run). The ablated set is a *traced* array ``P [N, C, C]``, vmapped over N, so 12 single and
66 double knockouts share one compilation.

Since no other state depends on a channel's stored value except through the perception,
zeroing channel c in the incoming state every step has the same effect on every other
channel as never letting the update rule read it.

Three conditions (``Assay``), each a clean question:

* **growth**: knock out from the seed, grow ``grow_steps``: is the channel needed to grow?
* **persistence**: grow intact, then knock out for ``persist_steps`` more: needed to keep
  the body?
* **regeneration**: grow intact, cut (``nca.animate.Cut``), regrow ``regrow_steps`` with the
  knockout: needed to regenerate?

Loss = MSE of the RGBA *as seen* (clipped to [0, 1], ``nca.model.to_rgba``) to the target
(``nca.train.per_sample_loss``; clipping keeps a knockout that makes the state explode at a
finite, comparable value), averaged over
``replicates`` rollouts (independent fire masks). **Effect** = ``(L - L_ref) / (L_empty -
L_ref)``: 0 = as the intact model, 1 = as bad as an empty grid (``L_empty = mean(target^2)``);
above 1 when the body overgrows. Epistasis of a pair: ``effect(ij) - effect(i) - effect(j)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import combinations

import jax
import jax.numpy as jnp
import numpy as np

from nca.animate import CUTS, Cut
from nca.model import ModelConfig, alive_mask, rollout, seed_state, to_rgba
from nca.train import per_sample_loss

Array = jax.Array
CONDITIONS = ("growth", "persistence", "regeneration")


@dataclass(frozen=True)
class Ablations:
    """N ablations of the state. labels: [N]; proj: [N, C, C] projections onto the ablated
    subspaces; fill: [N, C] replacement vectors (zeros for zero ablation)."""

    labels: tuple[str, ...]
    proj: np.ndarray
    fill: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __add__(self, other: "Ablations") -> "Ablations":
        return Ablations(self.labels + other.labels, np.concatenate([self.proj, other.proj]),
                         np.concatenate([self.fill, other.fill]))


def direction_ablations(direction_sets, labels, n_channels: int, means=None) -> Ablations:
    """direction_sets: per ablation an array [k, C] of orthonormal state directions;
    means: per ablation [k] component values to set (None: zero ablation)."""
    proj, fill = [], []
    for i, d in enumerate(direction_sets):
        d = np.atleast_2d(np.asarray(d, np.float32)).reshape(-1, n_channels)
        proj.append(d.T @ d)
        m = np.zeros(len(d), np.float32) if means is None else np.atleast_1d(np.asarray(means[i], np.float32))
        fill.append(m @ d)
    proj = np.stack(proj) if proj else np.zeros((0, n_channels, n_channels), np.float32)
    fill = np.stack(fill) if fill else np.zeros((0, n_channels), np.float32)
    return Ablations(tuple(labels), proj.astype(np.float32), fill.astype(np.float32))


def channel_ablations(channel_sets, n_channels: int, channel_means=None) -> Ablations:
    """Knock out sets of channels (e.g. ``[(4,), (5,), (4, 5)]``). channel_means: [C]
    per-channel values for mean ablation (None: zero). Labels: "4", "4+5"."""
    sets = [tuple(int(c) for c in s) for s in channel_sets]
    eye = np.eye(n_channels, dtype=np.float32)
    means = None if channel_means is None else [np.asarray(channel_means)[list(s)] for s in sets]
    return direction_ablations([eye[list(s)] for s in sets], ["+".join(map(str, s)) for s in sets],
                               n_channels, means)


def none_ablation(n_channels: int) -> Ablations:
    """The intact reference (nothing ablated), labelled "none"."""
    return Ablations(("none",), np.zeros((1, n_channels, n_channels), np.float32),
                     np.zeros((1, n_channels), np.float32))


def singles_and_pairs(channels) -> list[tuple[int, ...]]:
    """[(c,) for c] + every unordered pair, in ``itertools.combinations`` order."""
    channels = [int(c) for c in channels]
    return [(c,) for c in channels] + list(combinations(channels, 2))


def knockout_hook(proj: Array, fill: Array, threshold: float):
    """The state hook of one knockout (proj [C, C], fill [C], both may be traced)."""

    def hook(v, t):
        alive = alive_mask(v, threshold).astype(v.dtype)
        return v - v @ proj + alive * fill

    return hook


@partial(jax.jit, static_argnames=("steps", "cfg"))
def _ablated_rollouts(params, x0, key, t0, target, proj, fill, steps, cfg):
    def one(p, m):
        x, _ = rollout(params, x0, key, steps, cfg, record=(), t0=t0,
                       hooks={"state": knockout_hook(p, m, cfg.alive_threshold)})
        rgba = to_rgba(x)  # what is seen: an exploding body saturates instead of diverging
        return per_sample_loss(rgba, target), rgba[0]

    return jax.vmap(one)(proj, fill)


@dataclass(frozen=True)
class Start:
    """Where a condition's rollouts begin: x0 [B, H, W, C] at global step t0, run ``steps``."""

    name: str
    x0: np.ndarray
    t0: int
    steps: int


def ablation_losses(params, cfg: ModelConfig, start: Start, key: Array, target, ablations: Ablations,
                    chunk: int = 16, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Run every ablation from ``start``. -> (losses [N, B], final RGBA of replicate 0 [N, H, W, 4]).

    Ablations go through in chunks of ``chunk`` (the last one padded), one compilation per
    chunk size; ``progress(n)`` is called after each chunk with the number done."""
    n = len(ablations)
    losses, rgba = [], []
    x0, target = jnp.asarray(start.x0), jnp.asarray(target)
    for i in range(0, n, chunk):
        p = ablations.proj[i:i + chunk]
        m = ablations.fill[i:i + chunk]
        k = len(p)
        if k < chunk and n > chunk:  # pad: same shape, same compiled program
            p = np.concatenate([p, np.zeros((chunk - k,) + p.shape[1:], p.dtype)])
            m = np.concatenate([m, np.zeros((chunk - k,) + m.shape[1:], m.dtype)])
        loss, img = _ablated_rollouts(params, x0, key, start.t0, target, jnp.asarray(p), jnp.asarray(m),
                                      start.steps, cfg)
        losses.append(np.asarray(loss)[:k])
        rgba.append(np.asarray(img)[:k])
        if progress is not None:
            progress(k)
    return np.concatenate(losses), np.concatenate(rgba)


@dataclass(frozen=True)
class Assay:
    """The three knockout conditions. cut: a ``nca.animate.Cut`` part (left, square, ...)."""

    grow_steps: int = 200
    persist_steps: int = 200
    regrow_steps: int = 100
    cut: str = "left"
    replicates: int = 2

    def __post_init__(self):
        if self.cut not in CUTS:
            raise ValueError(f"cut must be one of {CUTS}")


@partial(jax.jit, static_argnames=("steps", "cfg"))
def advance(params, x0, key, steps, cfg, t0=0):
    """x0 [..., H, W, C] at global step t0 (traced) -> the state ``steps`` steps later."""
    return rollout(params, x0, key, steps, cfg, record=(), t0=t0)[0]


def assay_starts(params, cfg: ModelConfig, key: Array, grid: int, assay: Assay, x0=None) -> dict[str, Start]:
    """The start states of the three conditions (intact growth to ``grow_steps`` shared).

    x0: growth start [B, H, W, C] (default: the article's seed, ``assay.replicates`` times)."""
    seed = (np.asarray(seed_state(grid, grid, cfg, batch=assay.replicates)) if x0 is None
            else np.asarray(x0, np.float32))
    grown = np.asarray(advance(params, jnp.asarray(seed), key, assay.grow_steps, cfg))
    keep = 1.0 - Cut(assay.grow_steps, assay.cut).mask(grid, grid).astype(np.float32)
    return {
        "growth": Start("growth", seed, 0, assay.grow_steps),
        "persistence": Start("persistence", grown, assay.grow_steps, assay.persist_steps),
        "regeneration": Start("regeneration", grown * keep[None, :, :, None], assay.grow_steps,
                              assay.regrow_steps),
    }


def empty_loss(target) -> float:
    """Loss of an empty grid: mean(target^2) over the RGBA channels."""
    return float(np.mean(np.square(np.asarray(target, np.float64))))


def normalised_effect(loss, ref_loss: float, empty: float) -> np.ndarray:
    """(L - L_ref) / (L_empty - L_ref): 0 = intact, 1 = as an empty grid."""
    return (np.asarray(loss, np.float64) - ref_loss) / max(empty - ref_loss, 1e-12)


def epistasis(single: np.ndarray, pair_effect: dict[tuple[int, int], float], index: dict[int, int]) -> np.ndarray:
    """E[i, j] = effect(ij) - effect(i) - effect(j) over the singles' order; NaN on the
    diagonal and where a pair was not measured. single: [n]; index: channel -> position."""
    n = len(single)
    e = np.full((n, n), np.nan)
    for (a, b), v in pair_effect.items():
        i, j = index[a], index[b]
        e[i, j] = e[j, i] = v - single[i] - single[j]
    return e


@dataclass(frozen=True)
class RedundancyThresholds:
    """A pair is *redundant* (backups) when each single effect < ``single_max`` and the
    double effect >= ``double_min``. Conventions fixed before looking at any model."""

    single_max: float = 0.1
    double_min: float = 0.3


def redundant_pairs(single: dict[int, float], pair_effect: dict[tuple[int, int], float],
                    th: RedundancyThresholds = RedundancyThresholds()) -> list[dict]:
    """Pairs flagged as backups, largest double effect first."""
    out = []
    for (a, b), v in pair_effect.items():
        if max(single[a], single[b]) < th.single_max and v >= th.double_min:
            out.append({"pair": [a, b], "effect_single": [single[a], single[b]], "effect_double": v,
                        "epistasis": v - single[a] - single[b]})
    return sorted(out, key=lambda d: -d["effect_double"])


def atlas(params, cfg: ModelConfig, target, key: Array, grid: int, channels, assay: Assay = Assay(),
          pair_conditions=("growth",), extra: Ablations | None = None, channel_means=None,
          chunk: int = 16, th: RedundancyThresholds = RedundancyThresholds(), progress=None,
          x0=None) -> dict:
    """The knockout atlas: single knockouts of ``channels`` (and ``extra`` ablations, e.g.
    PCs) in every condition; all pairs in ``pair_conditions``. x0: growth start state
    [B, H, W, C] (default: the seed).

    Returns a JSON-ready dict: ``empty_loss``, per condition ``{reference_loss,
    labels, loss [N], loss_sd [N], effect [N]}`` for singles (+ extra) and, where pairs
    were run, ``pairs: {labels, loss, effect}``, ``epistasis [n][n]`` (channel order) and
    ``redundant`` pairs; ``images``: final RGBA of replicate 0 per condition (NumPy, not
    JSON: for the figures)."""
    c = cfg.channels
    channels = [int(ch) for ch in channels]
    index = {ch: i for i, ch in enumerate(channels)}
    singles = channel_ablations([(ch,) for ch in channels], c, channel_means)
    if extra is not None:
        singles = singles + extra
    pairs = channel_ablations(list(combinations(channels, 2)), c, channel_means)
    starts = assay_starts(params, cfg, key, grid, assay, x0)
    empty = empty_loss(target)
    out = {"empty_loss": empty, "channels": channels, "conditions": {}}
    images = {}
    for name in CONDITIONS:
        st = starts[name]
        abl = none_ablation(c) + singles
        if name in pair_conditions:
            abl = abl + pairs
        loss, rgba = ablation_losses(params, cfg, st, key, target, abl, chunk, progress)
        mean = loss.mean(1)
        ref = float(mean[0])
        eff = normalised_effect(mean, ref, empty)
        ns = len(singles)
        cond = {"start_step": st.t0, "steps": st.steps, "reference_loss": ref,
                "labels": list(singles.labels), "loss": mean[1:1 + ns].tolist(),
                "loss_sd": loss[1:1 + ns].std(1).tolist(), "effect": eff[1:1 + ns].tolist()}
        images[name] = {"reference": rgba[0], "singles": rgba[1:1 + ns], "start": np.clip(st.x0[0, ..., :4], 0, 1)}
        if name in pair_conditions:
            pe = {p: float(e) for p, e in zip(combinations(channels, 2), eff[1 + ns:])}
            single_eff = {ch: float(eff[1 + index[ch]]) for ch in channels}
            cond["pairs"] = {"labels": list(pairs.labels), "loss": mean[1 + ns:].tolist(),
                             "effect": eff[1 + ns:].tolist()}
            cond["epistasis"] = epistasis(np.array([single_eff[ch] for ch in channels]), pe, index).tolist()
            cond["redundant"] = redundant_pairs(single_eff, pe, th)
        out["conditions"][name] = cond
    out["images"] = images
    return out


ESSENTIAL = 0.5  # a knockout with effect >= 0.5 counts as "essential" in the summaries


def summarise(atl: dict, repair: dict | None = None) -> dict:
    """Counts one can compare across models/seeds (channel numbers are not comparable
    between seeds, these are): per condition the number of essential channels (effect >=
    0.5), the largest single effect and its label; per pair condition the number of
    redundant pairs and the mean and extreme epistasis; the median repair fraction."""
    n = len(atl["channels"])
    out = {}
    for name, c in atl["conditions"].items():
        eff = np.array(c["effect"][:n], float)
        d = {"essential_channels": int((eff >= ESSENTIAL).sum()), "max_effect": float(eff.max()),
             "max_effect_label": c["labels"][int(eff.argmax())], "mean_effect": float(eff.mean())}
        if "epistasis" in c:
            e = np.array(c["epistasis"], float)
            e = e[np.triu_indices(n, 1)]
            d.update({"redundant_pairs": len(c["redundant"]), "mean_epistasis": float(np.nanmean(e)),
                      "min_epistasis": float(np.nanmin(e)), "max_epistasis": float(np.nanmax(e))})
        out[name] = d
    if repair is not None:
        r = np.array([s["repair"] for s in repair["summary"]], float)
        p = np.array([s["pulse_recovery"] for s in repair["summary"]], float)
        out["repair"] = {"median_repair": float(np.nanmedian(r)), "median_pulse_recovery": float(np.nanmedian(p))}
    return out


def target_on_grid(target, size: int) -> np.ndarray:
    """The target [G, G, 4] placed on a ``size`` grid so that its seed cell (G//2, G//2)
    lands on the new seed cell (size//2, size//2): zero-padded or cropped. -> [size, size, 4]."""
    target = np.asarray(target, np.float32)
    g = target.shape[0]
    out = np.zeros((size, size) + target.shape[2:], np.float32)
    off = size // 2 - g // 2
    src = slice(max(0, -off), min(g, size - off))
    dst = slice(max(0, off), max(0, off) + (src.stop - src.start))
    out[dst, dst] = target[src, src]
    return out
