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
* **regeneration**: grow intact, cut (``nca.damage.Cut``), regrow ``regrow_steps`` with the
  knockout: needed to regenerate?

Loss = MSE of the RGBA *as seen* (clipped to [0, 1], ``nca.model.to_rgba``) to the target
(``nca.train.per_sample_loss``; clipping keeps a knockout that makes the state explode at a
finite, comparable value), averaged over
``replicates`` rollouts (independent fire masks). **Effect** = ``(L - L_ref) / (L_empty -
L_ref)``: 0 = as the intact model, 1 = as bad as an empty grid (``L_empty = mean(target^2)``);
above 1 when the body overgrows. Epistasis of a pair: ``effect(ij) - effect(i) - effect(j)``.
A rollout whose state becomes non-finite has *diverged*: its loss is the maximal loss
(``max_loss``), so its effect is the maximal effect, and it stays in n (``clip_diverged``;
issue 23: such replicates used to be dropped). Backups are flagged by ``buffering``, the
fraction of the double knockout's effect each single leaves undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import combinations

import jax
import numpy as np

from nca.errors import NCAError, require_at_least
from nca.damage import CUTS, Cut
from nca.model import ModelConfig, alive_mask, rollout, seed_state, to_device, to_rgba
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
        return _loss_or_nan(x, rgba, target), rgba[0]

    return jax.vmap(one)(proj, fill)


def _loss_or_nan(x, rgba, target):
    """Per-replicate loss [B], NaN where the state x [B, H, W, C] holds a non-finite value (a
    diverged rollout: clipping would hide an infinity as a finite picture). The host turns
    NaN into the maximal loss (``clip_diverged``), so a divergence is never dropped."""
    finite = jax.numpy.all(jax.numpy.isfinite(x), axis=(-3, -2, -1))
    return jax.numpy.where(finite, per_sample_loss(rgba, target), jax.numpy.nan)


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

    Ablations go through in chunks of ``chunk``, every one padded to ``chunk`` with intact
    rollouts (discarded): one compiled program per condition length, however many
    knockouts a call has (a test counts them); ``progress(n)`` is called after each chunk
    with the number done."""
    n = len(ablations)
    losses, rgba = [], []
    x0, target = to_device(start.x0), to_device(target)
    for i in range(0, n, chunk):
        p = ablations.proj[i:i + chunk]
        m = ablations.fill[i:i + chunk]
        k = len(p)
        if k < chunk:  # pad (zero projection and fill: intact): same shape, same program
            p = np.concatenate([p, np.zeros((chunk - k,) + p.shape[1:], p.dtype)])
            m = np.concatenate([m, np.zeros((chunk - k,) + m.shape[1:], m.dtype)])
        loss, img = _ablated_rollouts(params, x0, key, start.t0, target, to_device(p), to_device(m),
                                      start.steps, cfg)
        losses.append(np.asarray(loss)[:k])
        rgba.append(np.asarray(img)[:k])
        if progress is not None:
            progress(k)
    return np.concatenate(losses), np.concatenate(rgba)


# --------------------------------------------------------------------------- hidden units
# A unit of the update MLP is knocked out by zeroing its output weights (row j of w2): the
# same update as zeroing its activation at the "hidden" hook (tested), but as *parameters*
# it runs on the fast path (``nca.model.fast_step``), vmapped over the knockouts -- ~6x
# faster than hooks on the dense step, which is what lets 128 units and their pairs run in
# minutes (bench/knockouts.py).


def unit_sets_mask(unit_sets, hidden: int) -> np.ndarray:
    """keep masks [N, hidden]: 0 for the units of each set, 1 elsewhere."""
    keep = np.ones((len(unit_sets), hidden), np.float32)
    for i, s in enumerate(unit_sets):
        keep[i, list(s)] = 0.0
    return keep


@partial(jax.jit, static_argnames=("steps", "cfg"))
def _weight_rollouts(params, x0, key, t0, target, keep_w1, keep_w2, steps, cfg):
    """Rollouts with rows of w1 (keep_w1 [N, 3C]: perception features read) and of w2
    (keep_w2 [N, hidden]: units' outputs) scaled by the masks, vmapped over N. Unit and
    read knockouts share this one program (a mask of ones changes nothing, bit for bit)."""
    def one(k1, k2):
        p = {**params, "w1": params["w1"] * k1[:, None], "w2": params["w2"] * k2[:, None]}
        x, _ = rollout(p, x0, key, steps, cfg, record=(), t0=t0, fast=True)
        rgba = to_rgba(x)
        return _loss_or_nan(x, rgba, target), rgba[0]

    return jax.vmap(one)(keep_w1, keep_w2)


def _weight_ablation_losses(params, cfg, start, key, target, keep, name, chunk, progress):
    """keep [N, rows of params[name]] -> (losses [N, B], final RGBA of replicate 0); chunks
    padded to ``chunk`` with intact rollouts, as in ``ablation_losses``."""
    x0, target = to_device(start.x0), to_device(target)
    rows = {"w1": cfg.perception_dim, "w2": cfg.hidden}
    out, img = [], []
    for i in range(0, len(keep), chunk):
        k = keep[i:i + chunk]
        n = len(k)
        masks = {m: np.ones((chunk, r), np.float32) for m, r in rows.items()}
        masks[name][:n] = k
        masks = {m: to_device(v) for m, v in masks.items()}
        loss, rgba = _weight_rollouts(params, x0, key, start.t0, target, masks["w1"], masks["w2"], start.steps, cfg)
        out.append(np.asarray(loss)[:n])
        img.append(np.asarray(rgba)[:n])
        if progress is not None:
            progress(n)
    if not out:
        return np.zeros((0, x0.shape[0])), np.zeros((0,) + tuple(x0.shape[1:3]) + (4,), np.float32)
    return np.concatenate(out), np.concatenate(img)


def unit_ablation_losses(params, cfg: ModelConfig, start: "Start", key: Array, target, keep: np.ndarray,
                         chunk: int = 16, progress=None) -> np.ndarray:
    """Losses [N, B] of the unit knockouts ``keep`` [N, hidden] (``unit_sets_mask``) from
    ``start``, in chunks of ``chunk`` (padded: one compiled program)."""
    return _weight_ablation_losses(params, cfg, start, key, target, np.asarray(keep, np.float32), "w2", chunk,
                                   progress)[0]


def read_ablation_losses(params, cfg: ModelConfig, start: "Start", key: Array, target, channel_sets,
                         chunk: int = 16, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(losses [N, B], final RGBA of replicate 0 [N, H, W, 4]) of zero knockouts of sets of *hidden* channels as never-read channels: the
    rows of w1 that read them (their 3 perception features) zeroed, on the fast path. The RGBA
    and the life masks equal the state-hook knockout's (``ablation_losses`` with zero fill:
    a hidden channel acts on nothing but through the perception; tested), ~6x faster."""
    c = cfg.channels
    if cfg.frame_channel is not None:  # a steering channel acts through every channel's slots: the state hook
        return ablation_losses(params, cfg, start, key, target, channel_ablations(channel_sets, c), chunk, progress)
    keep = np.ones((len(channel_sets), cfg.perception_dim), np.float32)
    for i, chans in enumerate(channel_sets):
        if any(ch < 4 for ch in chans):
            raise ValueError("read_ablation_losses knocks out hidden channels only (>= 4)")
        for ch in chans:  # every perception band of the channel (3 for the article's Sobel pair)
            keep[i, [k * c + ch for k in range(cfg.kernels)]] = 0.0
    return _weight_ablation_losses(params, cfg, start, key, target, keep, "w1", chunk, progress)


def max_loss(target) -> float:
    """The largest loss any picture as seen (RGBA in [0, 1]) can have against ``target``
    [H, W, 4]: every value at the far end, mean(max(t, 1 - t)^2)."""
    t = np.asarray(target, np.float64)[..., :4]
    return float(np.mean(np.square(np.maximum(t, 1.0 - t))))


def clip_diverged(losses, worst: float) -> tuple[np.ndarray, np.ndarray]:
    """losses [N, B] with NaN/inf where a rollout diverged -> (losses with those set to
    ``worst`` (``max_loss``: a divergence is the maximal effect, not missing data),
    diverged [N, B] bool). Nothing is dropped: every replicate run stays in n."""
    losses = np.asarray(losses, np.float64)
    bad = ~np.isfinite(losses)
    return np.where(bad, worst, losses), bad


def replicate_effects(losses: np.ndarray, empty: float) -> np.ndarray:
    """losses [1 + N, B] (row 0: the intact run) -> effects [N, B], each replicate against the
    intact run with the same fire masks: (L_b - Lref_b) / (L_empty - Lref_b)."""
    losses = np.asarray(losses, np.float64)
    ref = losses[:1]
    return (losses[1:] - ref) / np.maximum(empty - ref, 1e-12)


# --------------------------------------------------------------------------- redundancy
# Graded redundancy of a pair relative to its singles: the scaled epistasis of Segre, DeLuna,
# Church & Kishony (2005), "Modular epistasis in yeast metabolism", Nature Genetics 37:77.
# With fitness W = 1 - effect (clipped to [0, 1]: 1 = intact, 0 = as an empty grid),
# eps = W_ij - W_i W_j (0 under the multiplicative null), scaled by how far it could go:
# eps / |W~ - W_i W_j|, with W~ = 0 when eps < 0 (aggravating: -1 = synthetic lethality,
# the pair's double kills although each single is harmless -- two backups of each other)
# and W~ = min(W_i, W_j) when eps > 0 (alleviating: +1 = the double is no worse than the
# worse single, as for two steps of one pathway).


def fitness(effect) -> np.ndarray:
    return np.clip(1.0 - np.asarray(effect, np.float64), 0.0, 1.0)


# Below this room between the multiplicative expectation and its bound, the scaled epistasis
# is a ratio of noise: on the alleviating side two near-harmless singles leave almost no room
# (min(W_i, W_j) - W_i W_j ~ 0), so the denominator is floored here (the aggravating side's
# room, W_i W_j, is then ~1 and unaffected).
MIN_ROOM = 0.01


def scaled_epistasis(e_i, e_j, e_ij) -> np.ndarray:
    """Segre et al.'s scaled epistasis from effects (arrays broadcast): in [-1, 0) aggravating,
    (0, 1] alleviating (> 1 suppressive); NaN where the null is degenerate (both the expected
    double and its bound at fitness 0: a single already lethal). The alleviating room is
    floored at ``MIN_ROOM``."""
    wi, wj, wij = fitness(e_i), fitness(e_j), fitness(e_ij)
    exp = wi * wj
    eps = wij - exp
    # aggravating: the room down to W~ = 0 is W_i W_j (> W_ij >= 0); alleviating: up to min(W_i, W_j)
    den = np.where(eps < 0, exp, np.maximum(np.minimum(wi, wj) - exp, MIN_ROOM))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(eps == 0, 0.0, eps / np.where(den > 0, den, 1.0))
    return np.where((exp <= 1e-9) & (eps <= 0), np.nan, out)  # a lethal single: nothing to compare


# Scaled epistasis cannot flag a backup whose function is a small share of the body: with
# both singles at 0 (W_i = W_j = 1) it equals W_ij - 1 = -effect(ij), so two perfect backups
# of one colour covering 4 % of the loss score -0.04 (tests/test_knockouts.py). Every
# definition of genetic interaction depends on such a choice of scale (Mani, St Onge, Hartman,
# Giaever & Roth 2008, "Defining genetic interaction", PNAS 105:3461). The backup measure here
# is therefore relative to the double knockout itself:
#
#   buffering(i, j) = 1 - max(effect(i), effect(j), 0) / effect(ij)
#
# the fraction of the double's damage that *each* single leaves undone: 1 = each alone
# harmless while both together do harm (a perfect backup, whatever the harm's size), 0.5 =
# two independent parts each doing half (additive), 0 = one single already does all of it.
# It is the normalisation "by the double knockout's effect" the audit of issue 23 asked for.


@dataclass(frozen=True)
class RedundancySettings:
    """A pair is flagged as a *backup pair* when its double effect is real (mean >=
    ``double_floor`` and the lower end of its 95 % interval > 0) and its buffering (see
    above) is at least ``buffer_min`` (each single does at most 1 - buffer_min of the
    double's damage: 0.8 leaves room above the additive 0.5 of two independent parts) with
    the lower end of its interval above ``buffer_lo``. ``strict``: also both singles <
    ``single_max``. The old rule, kept beside it for comparison: scaled epistasis (Segre et
    al. 2005) <= -``flag`` with its interval's upper end < 0, double >= ``double_min``, both
    singles < ``single_max``. Fixed before looking at any model."""

    single_max: float = 0.1
    double_min: float = 0.1
    flag: float = 0.5
    buffer_min: float = 0.8
    buffer_lo: float = 0.5
    double_floor: float = 0.005


def buffering(e_i, e_j, e_ij) -> np.ndarray:
    """1 - max(e_i, e_j, 0) / e_ij (arrays broadcast; per replicate): the fraction of the
    double knockout's effect that each single leaves undone; NaN where e_ij <= 0."""
    e_i, e_j, e_ij = (np.asarray(a, np.float64) for a in (e_i, e_j, e_ij))
    worst = np.maximum(np.maximum(e_i, e_j), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(e_ij > 0, 1.0 - worst / np.where(e_ij > 0, e_ij, 1.0), np.nan)


def redundancy(labels, single: np.ndarray, pairs, double: np.ndarray, n_eligible_pairs: int,
               n_eligible: int, th: RedundancySettings = RedundancySettings()) -> dict:
    """Score measured pairs. single: effects [n, B] of ``labels``; pairs: [(i, j)] indices
    into labels; double: effects [P, B]; n_eligible_pairs / n_eligible: the population the
    pairs were drawn from (pairs / parts that could have been flagged).

    -> {"eligible_units", "eligible_pairs", "tested_pairs", "pairs": [{pair, effect_single,
    effect_double, buffering, scaled_epistasis (each mean, lo, hi, n)}], "flagged" (backup
    pairs by buffering, ``RedundancySettings``), "flagged_strict" (of those, both singles <
    single_max), "flagged_scaled_epistasis" (the old rule), "verdict", "thresholds",
    "buffering_counts" {threshold: pairs with mean buffering >= it and a real double}}. The
    verdict is "none eligible" when no pair could be flagged, so an empty list is never read
    as evidence of no redundancy."""
    from analysis.stats import mean_ci

    rows = []
    for (i, j), d in zip(pairs, np.asarray(double, np.float64)):
        se = scaled_epistasis(single[i], single[j], d)  # per replicate
        rows.append({"pair": [labels[i], labels[j]],
                     "effect_single": [mean_ci(single[i]), mean_ci(single[j])],
                     "effect_double": mean_ci(d), "buffering": mean_ci(buffering(single[i], single[j], d)),
                     "scaled_epistasis": mean_ci(se)})

    def real_double(r):
        d = r["effect_double"]
        return d["mean"] is not None and d["mean"] >= th.double_floor and d["lo"] is not None and d["lo"] > 0

    def small_singles(r):
        return max(r["effect_single"][0]["mean"], r["effect_single"][1]["mean"]) < th.single_max

    flagged = [r for r in rows if real_double(r) and r["buffering"]["mean"] is not None
               and r["buffering"]["mean"] >= th.buffer_min
               and r["buffering"]["lo"] is not None and r["buffering"]["lo"] > th.buffer_lo]
    flagged.sort(key=lambda r: -r["buffering"]["mean"])
    old = [r for r in rows
           if r["effect_double"]["mean"] is not None and r["effect_double"]["mean"] >= th.double_min
           and r["scaled_epistasis"]["mean"] is not None and r["scaled_epistasis"]["mean"] <= -th.flag
           and r["scaled_epistasis"]["hi"] is not None and r["scaled_epistasis"]["hi"] < 0 and small_singles(r)]
    old.sort(key=lambda r: r["scaled_epistasis"]["mean"])
    counts = {str(b): sum(1 for r in rows if real_double(r) and r["buffering"]["mean"] is not None
                          and r["buffering"]["mean"] >= b) for b in (0.5, 0.8, 0.9)}
    verdict = ("none eligible" if n_eligible_pairs == 0 else
               f"{len(flagged)} flagged of {len(rows)} tested ({n_eligible_pairs} eligible)")
    return {"eligible_units": int(n_eligible), "eligible_pairs": int(n_eligible_pairs), "tested_pairs": len(rows),
            "pairs": rows, "flagged": flagged, "flagged_strict": [r for r in flagged if small_singles(r)],
            "flagged_scaled_epistasis": old, "buffering_counts": counts, "verdict": verdict,
            "thresholds": th.__dict__}


def output_similarity(w2: np.ndarray, units) -> np.ndarray:
    """|cosine| of the output weight rows (what each unit writes) between ``units``: [n, n]."""
    w = np.asarray(w2, np.float64)[list(units)]
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    return np.abs(w @ w.T)


@dataclass(frozen=True)
class UnitAtlasSettings:
    """condition: where the units are knocked out ("growth" or "persistence"); the pairs
    tested are drawn from all ``hidden * (hidden - 1) / 2`` pairs of units (buffering can
    flag any pair): the ``max_pairs`` whose output weights are most alike (a backup that
    writes what its partner writes; ``output_similarity``), then ``random_pairs`` drawn
    uniformly without replacement from the rest (PRNG stream "unit_pairs" of the atlas's
    key), so the flagged fraction of the random ones estimates it for the untested pairs
    (Wilson interval); all pairs when the two add up to the population. chunk: knockouts per
    compiled batch."""

    condition: str = "growth"
    max_pairs: int = 48
    random_pairs: int = 48
    chunk: int = 16
    redundancy: RedundancySettings = RedundancySettings()


def choose_unit_pairs(w2, key: Array, most_similar: int, random_pairs: int) -> tuple[list, list, list]:
    """The unit pairs to test. w2: output weights [hidden, C]. -> (pairs [(i, j)], how
    ["similar" | "random" | "all"] per pair, |cosine| of their output weights per pair)."""
    from nca.rng import stream

    h = np.asarray(w2).shape[0]
    allp = list(combinations(range(h), 2))
    sim = output_similarity(np.asarray(w2), range(h))
    if most_similar + random_pairs >= len(allp):
        return allp, ["all"] * len(allp), [float(sim[p]) for p in allp]
    order = sorted(range(len(allp)), key=lambda q: -sim[allp[q]])
    top = order[:most_similar]
    rest = np.array(sorted(order[most_similar:]))
    pick = np.asarray(jax.random.choice(stream(key, "unit_pairs"), len(rest), (random_pairs,), replace=False))
    chosen = top + [int(rest[i]) for i in sorted(pick)]
    how = ["similar"] * len(top) + ["random"] * random_pairs
    return [allp[q] for q in chosen], how, [float(sim[allp[q]]) for q in chosen]


def unit_atlas(params, cfg: ModelConfig, target, key: Array, start: "Start",
               settings: UnitAtlasSettings = UnitAtlasSettings(), progress=None) -> dict:
    """Single knockouts of every hidden unit of the update MLP, then the pairs of
    ``choose_unit_pairs``, scored by ``redundancy`` (buffering and, for comparison, the
    scaled epistasis), then all small units (single < ``single_max``) knocked out at once.

    start: the condition's start (``assay_starts``); B = its batch = replicates.
    -> {"condition", "units", "effect" {mean, lo, hi} [hidden], "effect_replicates" [hidden][B],
    "diverged" [hidden] (replicates whose state became non-finite, counted at the maximal
    loss), "similarity_of_tested", "pair_selection" {population, most_similar, random,
    random_flagged (Wilson interval)}, "redundancy" (see ``redundancy``; plus
    ``eligible_group``: all small units knocked out together, its effect, the sum of their
    singles and the excess, each with an interval)}."""
    from analysis.stats import mean_ci, mean_ci_axis, proportion_ci

    s = settings
    h = cfg.hidden
    empty, worst = empty_loss(target), max_loss(target)
    keep = np.concatenate([np.ones((1, h), np.float32), unit_sets_mask([(j,) for j in range(h)], h)])
    loss, div = clip_diverged(unit_ablation_losses(params, cfg, start, key, target, keep, s.chunk, progress), worst)
    eff = replicate_effects(loss, empty)
    mean = eff.mean(1)
    small = [j for j in range(h) if mean[j] < s.redundancy.single_max]
    pairs, how, sim = choose_unit_pairs(params["w2"], key, s.max_pairs, s.random_pairs)
    # the pairs, then all small units at once (a screen of the pairs not tested: if the
    # group's effect is no more than the sum of its singles, no strong redundancy hides in it)
    sets = pairs + ([tuple(small)] if len(small) > 1 else [])
    double = np.zeros((0, eff.shape[1]))
    ddiv = np.zeros((0, eff.shape[1]), bool)
    if sets:
        keep2 = np.concatenate([np.ones((1, h), np.float32), unit_sets_mask(sets, h)])
        l2, ddiv = clip_diverged(unit_ablation_losses(params, cfg, start, key, target, keep2, s.chunk, progress),
                                 worst)
        double, ddiv = replicate_effects(l2, empty), ddiv[1:]
    group = None
    if len(small) > 1:
        group = {"units": len(small), "effect": mean_ci(double[-1]),
                 "sum_of_singles": mean_ci(eff[small].sum(0)),
                 "excess": mean_ci(double[-1] - eff[small].sum(0))}
        double = double[:-1]
    ci = mean_ci_axis(eff, axis=1)
    npairs = h * (h - 1) // 2
    red = redundancy(list(range(h)), eff, pairs, double, npairs, h, s.redundancy)
    red["eligible_group"] = group
    flagged = {tuple(f["pair"]) for f in red["flagged"]}
    rnd = [tuple(p) in flagged for p, w in zip(pairs, how) if w == "random"]
    selection = {"population": npairs, "tested": len(pairs), "most_similar": how.count("similar"),
                 "random": how.count("random"), "all": how.count("all") == npairs,
                 "how": "all pairs" if how.count("all") == npairs else
                 f"the {how.count('similar')} pairs with the most alike output weights, then {how.count('random')} "
                 f"drawn uniformly from the other {npairs - how.count('similar')} (stream 'unit_pairs')",
                 "random_flagged": proportion_ci(rnd) if rnd else None}
    return {"condition": s.condition, "units": h, "start_step": start.t0, "steps": start.steps,
            "effect": {k: ci[k].tolist() for k in ("mean", "lo", "hi")}, "effect_replicates": eff.tolist(),
            "diverged": div[1:].sum(1).tolist(), "pairs_diverged": int(ddiv[:len(pairs)].any(1).sum()),
            "similarity_of_tested": sim, "pair_selection": selection, "redundancy": red}


@dataclass(frozen=True)
class Assay:
    """The three knockout conditions. cut: a ``nca.damage.Cut`` part (left, square, ...)."""

    grow_steps: int = 200
    persist_steps: int = 200
    regrow_steps: int = 100
    cut: str = "left"
    replicates: int = 2

    def __post_init__(self):
        if self.cut not in CUTS:
            raise NCAError(f"cut must be one of {CUTS}")


@partial(jax.jit, static_argnames=("steps", "cfg"))
def advance(params, x0, key, steps, cfg, t0=0):
    """x0 [..., H, W, C] at global step t0 (traced) -> the state ``steps`` steps later (the
    fast path: equal to the dense step to float rounding, tests/test_speed_paths.py)."""
    return rollout(params, x0, key, steps, cfg, record=(), t0=t0, fast=True)[0]


def assay_starts(params, cfg: ModelConfig, key: Array, grid: int, assay: Assay, x0=None) -> dict[str, Start]:
    """The start states of the three conditions (intact growth to ``grow_steps`` shared).

    x0: growth start [B, H, W, C] (default: the article's seed, ``assay.replicates`` times)."""
    seed = (np.asarray(seed_state(grid, grid, cfg, batch=assay.replicates)) if x0 is None
            else np.asarray(x0, np.float32))
    grown = np.asarray(advance(params, to_device(seed), key, assay.grow_steps, cfg))
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


@dataclass(frozen=True)
class AtlasSettings:
    """What ``atlas`` measures. grid: the grid side; channels: the channels knocked out (one
    at a time, and in pairs); assay: the three conditions' steps and replicates;
    pair_conditions: the conditions in which every channel pair is knocked out; chunk:
    knockouts per compiled batch; thresholds: the old all-or-none redundancy rule (kept for
    comparison); redundancy: buffering and scaled epistasis (None: the defaults)."""

    grid: int
    channels: tuple[int, ...]
    assay: Assay = Assay()
    pair_conditions: tuple[str, ...] = ("growth",)
    chunk: int = 16
    thresholds: RedundancyThresholds = RedundancyThresholds()
    redundancy: RedundancySettings | None = None


def atlas(params, cfg: ModelConfig, target, key: Array, settings: AtlasSettings, extra: Ablations | None = None,
          channel_means=None, x0=None, progress=None) -> dict:
    """The knockout atlas: single knockouts of ``settings.channels`` (and ``extra``
    ablations, e.g. PCs) in every condition; all pairs in ``settings.pair_conditions``.
    channel_means: [C] means of a mean knockout (None: zero knockouts); x0: growth start
    state [B, H, W, C] (default: the seed). Replicates = the batch (independent fire masks).

    Returns a JSON-ready dict: ``empty_loss``, per condition ``{reference_loss, labels,
    loss [N], loss_sd [N], effect [N] (mean over replicates of each replicate's effect),
    effect_ci [N] ({mean, lo, hi, n}), effect_replicates [N][B]}`` for singles (+ extra)
    and, where pairs were run, ``pairs: {labels, loss, effect, effect_replicates}``,
    ``epistasis [n][n]`` (additive, channel order), ``redundant`` (the old all-or-none rule,
    kept for comparison), ``diverged`` per knockout (replicates counted at the maximal loss)
    and ``redundancy`` (``redundancy``: buffering with its flags, and Segre's scaled
    epistasis with intervals); with two or more ``extra`` directions also ``extra_pairs``
    {labels, effect, effect_replicates} (pairs jointly ablated) and ``extra_redundancy``;
    ``images``: final RGBA of replicate 0 per condition (NumPy,
    not JSON: for the figures)."""
    from nca.errors import NCAError

    from analysis.stats import mean_ci

    grid, assay, pair_conditions = settings.grid, settings.assay, settings.pair_conditions
    chunk, th = settings.chunk, settings.thresholds
    rs = settings.redundancy or RedundancySettings()
    c = cfg.channels
    channels = [int(ch) for ch in settings.channels]
    index = {ch: i for i, ch in enumerate(channels)}
    singles = channel_ablations([(ch,) for ch in channels], c, channel_means)
    if extra is not None:
        singles = singles + extra
    pairs = channel_ablations(list(combinations(channels, 2)), c, channel_means)
    starts = assay_starts(params, cfg, key, grid, assay, x0)
    empty = empty_loss(target)
    worst = max_loss(target)
    max_eff = lambda ref: (worst - ref) / max(empty - ref, 1e-12)  # noqa: E731  (a diverged rollout's effect)
    out = {"empty_loss": empty, "channels": channels, "conditions": {}}
    images = {}
    for name in CONDITIONS:
        st = starts[name]
        if channel_means is None:  # zero knockouts of channels: as unread channels, on the fast path
            n_ch = len(channels)
            sets = [()] + [(ch,) for ch in channels] + (list(combinations(channels, 2)) if name in pair_conditions
                                                        else [])
            lc, ic = read_ablation_losses(params, cfg, st, key, target, sets, chunk, progress)
            parts = [(lc[:1 + n_ch], ic[:1 + n_ch])]
            if extra is not None:
                parts.append(ablation_losses(params, cfg, st, key, target, extra, chunk, progress))
            parts.append((lc[1 + n_ch:], ic[1 + n_ch:]))
            loss = np.concatenate([p[0] for p in parts])
            rgba = np.concatenate([p[1] for p in parts])
        else:
            abl = none_ablation(c) + singles
            if name in pair_conditions:
                abl = abl + pairs
            loss, rgba = ablation_losses(params, cfg, st, key, target, abl, chunk, progress)
        loss, diverged = clip_diverged(loss, worst)  # a diverged rollout = the maximal loss, kept in n
        if diverged[0].any():
            raise NCAError(f"the intact model diverged (non-finite state) in {int(diverged[0].sum())} of "
                           f"{diverged.shape[1]} replicates of {name}: no reference to measure effects against")
        mean = loss.mean(1)
        ref = float(mean[0])
        eff_rep = replicate_effects(loss, empty)  # [N - 1, B]
        eff = eff_rep.mean(1)
        ns = len(singles)
        cond = {"start_step": st.t0, "steps": st.steps, "reference_loss": ref, "replicates": int(loss.shape[1]),
                "labels": list(singles.labels), "loss": mean[1:1 + ns].tolist(),
                "loss_sd": loss[1:1 + ns].std(1).tolist(), "effect": eff[:ns].tolist(),
                "effect_ci": [mean_ci(e) for e in eff_rep[:ns]], "effect_replicates": eff_rep[:ns].tolist(),
                "diverged": diverged[1:1 + ns].sum(1).tolist(), "max_effect": float(max_eff(ref)),
                "max_loss": worst}
        images[name] = {"reference": rgba[0], "singles": rgba[1:1 + ns], "start": np.clip(st.x0[0, ..., :4], 0, 1)}
        if name in pair_conditions:
            pe = {p: float(e) for p, e in zip(combinations(channels, 2), eff[ns:])}
            single_eff = {ch: float(eff[index[ch]]) for ch in channels}
            cond["pairs"] = {"labels": list(pairs.labels), "loss": mean[1 + ns:].tolist(),
                             "effect": eff[ns:].tolist(), "effect_replicates": eff_rep[ns:].tolist(),
                             "diverged": diverged[1 + ns:].sum(1).tolist()}
            cond["epistasis"] = epistasis(np.array([single_eff[ch] for ch in channels]), pe, index).tolist()
            cond["redundant"] = redundant_pairs(single_eff, pe, th)
            nch = len(channels)
            pidx = list(combinations(range(nch), 2))  # every pair: buffering can flag any of them
            cond["redundancy"] = redundancy([str(ch) for ch in channels], eff_rep[:nch], pidx,
                                            eff_rep[ns:], len(pidx), nch, rs)
            cond["redundancy"]["all_pairs"] = [{"pair": [str(channels[i]), str(channels[j])],
                                                "scaled_epistasis": mean_ci(scaled_epistasis(
                                                    eff_rep[i], eff_rep[j], eff_rep[ns + k]))}
                                               for k, (i, j) in enumerate(pidx)]
        if name in pair_conditions and extra is not None and len(extra) >= 2:
            # pairs of the extra directions (PCs), jointly mean-ablated: the same redundancy score
            k = len(extra)
            pidx = list(combinations(range(k), 2))
            joint = Ablations(tuple(f"{extra.labels[i]}+{extra.labels[j]}" for i, j in pidx),
                              np.stack([extra.proj[i] + extra.proj[j] for i, j in pidx]),
                              np.stack([extra.fill[i] + extra.fill[j] for i, j in pidx]))
            lj, _ = ablation_losses(params, cfg, st, key, target, none_ablation(c) + joint, chunk, progress)
            lj, dvj = clip_diverged(lj, worst)
            dj = replicate_effects(lj, empty)
            se = eff_rep[len(channels):ns]  # the extras' single effects [k, B]
            cond["extra_pairs"] = {"labels": list(joint.labels), "effect": dj.mean(1).tolist(),
                                   "effect_replicates": dj.tolist(), "diverged": dvj[1:].sum(1).tolist()}
            cond["extra_redundancy"] = redundancy(list(extra.labels), se, pidx, dj, len(pidx), k, rs)
            cond["extra_redundancy"]["all_pairs"] = [
                {"pair": [extra.labels[i], extra.labels[j]],
                 "scaled_epistasis": mean_ci(scaled_epistasis(se[i], se[j], dj[q]))} for q, (i, j) in enumerate(pidx)]
        out["conditions"][name] = cond
    out["images"] = images
    return out


ESSENTIAL = 0.5  # a knockout with effect >= 0.5 counts as "essential" in the summaries


def summarise(atl: dict, repair: dict | None = None, units: dict | None = None, seed: int = 0) -> dict:
    """Numbers one can compare across models/seeds (channel numbers are not comparable
    between seeds, these are), each with n and a 95 % interval over replicates: per
    condition the number of essential channels (mean effect >= 0.5; percentile bootstrap
    over replicates), the largest single effect and its label; per pair condition the
    redundancy verdict (eligible, tested, flagged pairs) and the mean additive epistasis;
    per repair horizon the median repair fraction; for the unit atlas the number of units
    with effect >= 0.5 and < 0.1 and the redundancy verdict. seed: the bootstrap's stream."""
    from analysis.stats import bootstrap_ci, mean_ci

    rng = np.random.default_rng(np.random.SeedSequence([seed, BOOTSTRAP_STREAM]))
    n = len(atl["channels"])
    out = {}
    for name, c in atl["conditions"].items():
        eff = np.array(c["effect"][:n], float)
        rep = np.array(c["effect_replicates"][:n], float)  # [n, B]
        d = {"essential_channels": int((eff >= ESSENTIAL).sum()),
             "essential_channels_ci": bootstrap_ci(rep, lambda r: float((r.mean(1) >= ESSENTIAL).sum()), rng, axis=1),
             "max_effect": float(eff.max()), "max_effect_label": c["labels"][int(eff.argmax())],
             "max_effect_ci": c["effect_ci"][int(eff.argmax())], "mean_effect": float(eff.mean()),
             "mean_effect_ci": mean_ci(rep.mean(0))}
        div = np.array(c.get("diverged", [0] * len(c["labels"])))
        d.update({"diverged_knockouts": int((div > 0).sum()), "diverged_replicates": int(div.sum()),
                  "diverged_labels": [f"{lab} ({int(k)}/{c['replicates']})" for lab, k in zip(c["labels"], div)
                                      if k > 0]})
        if "epistasis" in c:
            e = np.array(c["epistasis"], float)
            e = e[np.triu_indices(n, 1)]
            r = c["redundancy"]
            d.update({"redundant_pairs_old_rule": len(c["redundant"]), "mean_epistasis": float(np.nanmean(e)),
                      "min_epistasis": float(np.nanmin(e)), "max_epistasis": float(np.nanmax(e)),
                      "eligible_pairs": r["eligible_pairs"], "tested_pairs": r["tested_pairs"],
                      "backup_pairs": len(r["flagged"]), "backup_pairs_strict": len(r["flagged_strict"]),
                      "backup_pairs_scaled_epistasis": len(r["flagged_scaled_epistasis"]),
                      "redundancy_verdict": r["verdict"]})
        if "extra_redundancy" in c:
            r = c["extra_redundancy"]
            d.update({"pc_eligible_pairs": r["eligible_pairs"], "pc_backup_pairs": len(r["flagged"]),
                      "pc_redundancy_verdict": r["verdict"]})
        out[name] = d
    if repair is not None:
        out["repair"] = {"by_horizon": [{k: v for k, v in x.items()} for x in repair["summary"]]}
    if units is not None:
        rep = np.array(units["effect_replicates"], float)
        r = units["redundancy"]
        out["units"] = {"condition": units["condition"],
                        "essential_units": int((rep.mean(1) >= ESSENTIAL).sum()),
                        "essential_units_ci": bootstrap_ci(rep, lambda x: float((x.mean(1) >= ESSENTIAL).sum()),
                                                           rng, axis=1),
                        "small_units": int((rep.mean(1) < r["thresholds"]["single_max"]).sum()),
                        "eligible_pairs": r["eligible_pairs"], "tested_pairs": r["tested_pairs"],
                        "backup_pairs": len(r["flagged"]), "backup_pairs_strict": len(r["flagged_strict"]),
                        "backup_pairs_scaled_epistasis": len(r["flagged_scaled_epistasis"]),
                        "pair_selection": units.get("pair_selection"),
                        "diverged_units": int((np.array(units.get("diverged", [0])) > 0).sum()),
                        "redundancy_verdict": r["verdict"]}
    return out


BOOTSTRAP_STREAM = 0x6B6F  # named stream of the summaries' bootstrap ("ko")


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


# --------------------------------------------------------------------------- the pipeline
# Used by analysis/reports/knockouts.py (settings -> run -> figures, page and report.json).


@dataclass(frozen=True)
class KnockoutSettings:
    """Everything a knockout report measures. grow/persist/regrow: steps of the three
    conditions; cut: the regeneration cut (``nca.damage.Cut``); replicates: fire-mask
    replicates (intervals are over them); pcs: top hidden-state PCs also knocked out (mean
    ablation); mode: channel knockouts "zero" or "mean"; pairs: conditions with all channel
    pairs; unit_condition: where the 128 MLP units are knocked out ("growth",
    "persistence", or None to skip); max_unit_pairs: unit pairs measured with the most alike
    output weights, random_unit_pairs: then drawn uniformly from the other pairs
    (``UnitAtlasSettings``);
    repair_at: self-repair horizons (() to skip); repair_attribute: the per-channel "k
    frozen" runs; repair_units: the first-order attribution to the MLP's units; seed: the one PRNG seed; size: grid size (None: the model's); chunk:
    knockouts per compiled batch."""

    grow: int = 160
    persist: int = 160
    regrow: int = 100
    cut: str = "left"
    replicates: int = 5
    pcs: int = 3
    mode: str = "zero"
    pairs: tuple[str, ...] = ("growth",)
    unit_condition: str | None = "growth"
    max_unit_pairs: int = 48
    random_unit_pairs: int = 48
    repair_at: tuple[int, ...] = (5, 10, 20, 40, 60)
    repair_attribute: bool = True
    repair_units: bool = True
    seed: int = 0
    size: int | None = None
    chunk: int = 16

    def __post_init__(self):
        from nca.errors import NCAError

        require_at_least(self, ("grow", "persist", "regrow", "replicates", "chunk"), 1)
        require_at_least(self, ("pcs", "max_unit_pairs", "random_unit_pairs"), 0)
        if self.mode not in ("zero", "mean"):
            raise NCAError(f"mode must be zero or mean, got {self.mode!r}")
        bad = set(self.pairs) - set(CONDITIONS)
        if bad:
            raise NCAError(f"unknown pair conditions {sorted(bad)}; choose from {', '.join(CONDITIONS)}")
        if self.unit_condition not in (None, "growth", "persistence"):
            raise NCAError(f"unit condition must be growth or persistence, got {self.unit_condition!r}")
        if self.repair_at and min(self.repair_at) < 1:
            raise NCAError(f"repair horizons must be >= 1, got {list(self.repair_at)}")
        if self.cut not in CUTS:
            raise NCAError(f"cut must be one of {', '.join(CUTS)}")


def rollouts_per_model(cfg: ModelConfig, s: KnockoutSettings) -> int:
    """Progress-bar units ``run`` reports per model (rollouts; repair variants)."""
    from analysis.causal.repair import variants_per_channel

    n = cfg.channels - 4
    total = 3 * (1 + n + s.pcs) + (n * (n - 1) // 2 + 1 + s.pcs * (s.pcs - 1) // 2) * len(s.pairs)
    if s.unit_condition:
        total += cfg.hidden + min(s.max_unit_pairs + s.random_unit_pairs, cfg.hidden * (cfg.hidden - 1) // 2) + 3
    if s.repair_at:
        total += n * variants_per_channel(cfg, s.repair_attribute, s.repair_units)
    return total


def run(models, s: KnockoutSettings, progress=None) -> dict:
    """The knockout report's measurements for each loaded model (``nca.load_model``).

    -> {"results": [per model {model, target, grid, pca, channel_means, atlas, units,
    repair, summary}], "images": per model the atlas's images (NumPy, for figures)}."""
    from nca.errors import NCAError

    from analysis.causal.interventions import embed_directions
    from analysis.representation.pca import fit_cell_pca
    from analysis.causal.repair import RepairSettings, repair_curves
    from analysis.rollouts import grow_states

    for m in models:  # a texture NCA (no alive masking) has no body to knock out of shape
        if m.model_config.life == "none":
            raise NCAError(f"{m.name} grows a texture, not a body (no alive masking): the knockout report "
                           "scores shape against a target and is undefined for it")
    if not models:
        raise NCAError("no model given")
    for m in models:
        if m.model_config.channels != models[0].model_config.channels:
            raise NCAError("all models must have the same number of channels to be compared")
    key = jax.random.key(s.seed)
    assay = Assay(s.grow, s.persist, s.regrow, s.cut, s.replicates)
    results, images = [], []
    for m in models:
        cfg = m.model_config
        c = cfg.channels
        channels = list(range(4, c))
        grid = s.size or m.grid_size
        target = target_on_grid(m.target_image(), grid)
        states = grow_states(m, s.grow, key, size=grid)[:, 0]  # [T+1, H, W, C] (replicate 0)
        fit_steps = sorted({s.grow // 2, s.grow})
        alive = states[fit_steps, ..., 3] > cfg.alive_threshold
        if alive[-1].sum() < 10:
            raise NCAError(f"{m.name} has {int(alive[-1].sum())} alive cells after {s.grow} steps: nothing to knock out")
        extra, pca_info = None, None
        if s.pcs:
            pca = fit_cell_pca(states[fit_steps, ..., 4:], alive, s.pcs)
            dirs = embed_directions(pca.components, 4, c)
            extra = direction_ablations([d[None] for d in dirs], [f"PC{j + 1}" for j in range(s.pcs)], c,
                                        means=[[float(pca.mean @ comp)] for comp in pca.components])
            pca_info = {"fit_steps": fit_steps, "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
                        "components": pca.components.tolist(), "ablation": "mean"}
        means = None
        if s.mode == "mean":
            means = np.zeros(c, np.float32)
            means[4:] = states[fit_steps][alive][:, 4:].mean(0)
        atl = atlas(m.params, cfg, target, key, AtlasSettings(grid, tuple(channels), assay, tuple(s.pairs), s.chunk),
                    extra, means, progress=progress)
        starts = assay_starts(m.params, cfg, key, grid, assay)
        units = None
        if s.unit_condition:
            units = unit_atlas(m.params, cfg, target, key, starts[s.unit_condition],
                               UnitAtlasSettings(s.unit_condition, s.max_unit_pairs, s.random_unit_pairs, s.chunk), progress)
        rep = None
        if s.repair_at:
            st = starts["persistence"]  # the grown bodies at step ``grow``, every replicate
            rep = repair_curves(m.params, cfg, st.x0, key, st.t0, channels,
                                RepairSettings(horizons=tuple(s.repair_at), attribute=s.repair_attribute,
                                               attribute_units=s.repair_units, chunk=max(1, min(s.chunk, 8))),
                                progress)
        images.append(atl.pop("images"))
        results.append({"model": m.name, "target": m.target, "grid": grid, "pca": pca_info,
                        "channel_means": None if means is None else means.tolist(), "atlas": atl, "units": units,
                        "repair": rep, "summary": summarise(atl, rep, units, s.seed)})
    return {"results": results, "images": images}
