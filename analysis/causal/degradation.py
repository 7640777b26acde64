"""Error and attack tolerance of a Growing NCA: how the body degrades as more parts are lost.

The network-science form of the question (Albert, Jeong & Barabási 2000, "Error and attack
tolerance of complex networks", Nature 406:378): remove a growing number ``k`` of parts
either in random order (**error**: many random draws, a band over them) or worst first
(**attack**: ranked by the single-removal effect; and **greedy**: re-ranked after removals
by the marginal effect given what is already removed), and draw the body's effect against
``k``.

Parts:

* **units**: the 128 hidden units of the update MLP. Removal by *zeroing* (row j of ``w2``
  zeroed: unit j writes nothing, = its activation zeroed at the "hidden" hook) or by
  *mean ablation* (its activation replaced by its mean over alive cells of the intact run:
  row j of ``w2`` zeroed and ``mean_j * w2[j]`` added to ``b2``; the update is masked by the
  fire and life masks afterwards as in an intact step, so this equals setting h_j = mean_j at
  the hidden hook). Both are *parameters* of one vmapped fast-path rollout program
  (``_weight_rollouts``): every removal set of a condition, in every order, reuses it.
* **channels**: the hidden state channels (4..C-1), zeroed or set to their mean over alive
  cells in the incoming state of every step. Zeroing runs as never-read channels (their
  perception rows of w1 zeroed: the same program as the units); the mean needs the state
  hook (``analysis.causal.knockouts.channel_ablations`` -> ``ablation_losses``, the dense step,
  ~6x slower), so channel mean ablation is off by default (``channel_modes``).

**Effect** (``analysis.causal.knockouts.replicate_effects``): ``(L - L_ref) / (L_empty - L_ref)`` per
fire-mask replicate, L = RGBA MSE to the target after the condition's steps; 0 = intact,
1 = as bad as an empty grid (above 1 when the body overgrows). Conditions as the knockout
atlas's ``Assay``: growth (removal from the seed), persistence (grown intact, then removed),
regeneration (grown intact, cut, regrown with the removal).

Summaries of a curve, each per (draw, replicate) and then given with n and a 95 % interval
(``analysis.stats``):

* ``k50``: the first k of the grid at which the effect exceeds 0.5 (``EFFECT_FAIL``), as a
  fraction of the parts; a curve that never exceeds it is censored at 1 + 1/n_parts and
  counted in ``never``;
* ``auc``: the area under the effect (clipped to [0, 1]) against the fraction removed
  k / n_parts (trapezoid on the grid): 0 = no part matters, 1 = removing anything is fatal;
* ``gap``: attack AUC minus error AUC (same replicate): how much worse the worst order is
  than chance. A network whose function is spread evenly over its parts has gap ~ 0.

The orders are generic (``degradation_curves`` takes any ``evaluate(removed [N, P] bool) ->
effects [N, B]``), so the planted controls of tests/test_degradation.py run the same code.
They are written as generators (``curve_plan``: yield removal sets, receive effects) so that
``run_model`` drives every unit and zeroed-channel curve of a condition in lockstep
(``run_plans``) and rolls each distinct removal set out once (``WeightRows``): the same
numbers as each curve alone (tested), fewer rollouts.

**Cells** (``cell_curves``): living cells killed once at the start of persistence, a
fraction f of them, in random order and (``cell_attack`` > 0) worst first by square
patches ranked by the single effect of killing each patch's cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np

from nca.errors import NCAError, require_at_least

from analysis.causal.knockouts import (CONDITIONS, Assay, ablation_losses, assay_starts, channel_ablations, direction_ablations,
                        empty_loss, none_ablation, replicate_effects, target_on_grid)

Array = jax.Array
EFFECT_FAIL = 0.5  # "the body fails": as far from intact as halfway to an empty grid
UNIT_KS = (0, 1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)  # the unit grid (dense where curves bend)


def unit_grid(hidden: int) -> tuple[int, ...]:
    """The default k grid of a model's unit curves: ``UNIT_KS`` scaled to its hidden width
    (itself for the article's 128 units; 0, 2, 3, 6, ..., 192 for the isotropic demo's 192)."""
    return tuple(sorted({int(round(k * hidden / UNIT_KS[-1])) for k in UNIT_KS}))


# --------------------------------------------------------------------------- orders (generic)

def _grid_check(ks, n_parts: int, what: str) -> tuple[int, ...]:
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] != 0:
        ks = (0,) + ks
    if ks[0] < 0:
        raise NCAError(f"{what}: k must be >= 0, got {ks[0]}")
    if ks[-1] > n_parts:
        raise NCAError(f"{what}: k = {ks[-1]} is beyond the number of parts ({n_parts})")
    return ks


def _prefix_masks(order, ks, n_parts: int) -> np.ndarray:
    """Removal masks bool [len(ks), n_parts]: row i removes the first ``ks[i]`` parts of ``order``."""
    masks = np.zeros((len(ks), n_parts), bool)
    for i, k in enumerate(ks):
        masks[i, np.asarray(order[:k], int)] = True
    return masks


def degradation_curves(evaluate, n_parts: int, ks, draws: int, rng: np.random.Generator, attack: bool = True,
                       greedy: bool = True, greedy_pool: int = 0) -> dict:
    """Effects of removing k parts, k over the grid ``ks``, in three orders.

    evaluate: removed [N, n_parts] bool -> effects [N, B] (B replicates; row-independent);
    draws: random orders (error); greedy_pool: at each grid step the greedy order re-ranks
    only the ``greedy_pool`` remaining parts with the largest single effects (0: all).

    -> {"ks": [K], "error": [draws, K, B], "error_orders": [draws, n_parts],
        "single": [n_parts, B], "attack": [K, B], "attack_order": [n_parts],
        "greedy": [K, B], "greedy_order": [ks[-1]], "evaluations": rows asked for}.
    k = 0 is evaluated once and shared by every order. The orders are ``curve_plan``, driven
    here one request at a time (``run_plans``).
    """
    return run_plans([curve_plan(n_parts, ks, draws, rng, attack, greedy, greedy_pool)],
                     lambda items: [evaluate(m) for _, m in items])[0]


def curve_plan(n_parts: int, ks, draws: int, rng: np.random.Generator, attack: bool = True, greedy: bool = True,
               greedy_pool: int = 0):
    """``degradation_curves`` as a generator: yields removal masks [N, n_parts] (bool), is sent
    their effects [N, B], returns the curves dict. Several plans run side by side
    (``run_plans``) share batches: ``run_model`` pools every curve of a condition."""
    if draws < 1:
        raise NCAError(f"draws must be >= 1, got {draws}")
    ks = _grid_check(ks, n_parts, "ks")
    K = len(ks)
    orders = np.stack([rng.permutation(n_parts) for _ in range(draws)])
    sets = [np.zeros(n_parts, bool)]  # row 0: nothing removed
    for d in range(draws):
        sets.extend(_prefix_masks(orders[d], ks[1:], n_parts))
    single_rows = len(sets)
    if attack or greedy:
        sets.extend(np.eye(n_parts, dtype=bool))
    eff = np.asarray((yield np.stack(sets)), np.float64)
    evaluations = len(sets)
    B = eff.shape[1]
    error = np.empty((draws, K, B))
    error[:, 0] = eff[0]
    error[:, 1:] = eff[1:single_rows].reshape(draws, K - 1, B)
    out = {"ks": list(ks), "error": error, "error_orders": orders}
    if not (attack or greedy):
        out["evaluations"] = evaluations
        return out
    single = eff[single_rows:]
    out["single"] = single
    rank = np.argsort(-single.mean(1), kind="stable")
    out["attack_order"] = rank
    if attack:
        rows = _prefix_masks(rank, ks[1:], n_parts)
        a = np.asarray((yield rows), np.float64)
        evaluations += len(rows)
        out["attack"] = np.concatenate([eff[:1], a])
    if greedy:
        removed, gorder = np.zeros(n_parts, bool), []
        for i in range(1, K):
            step = ks[i] - ks[i - 1]
            remaining = [int(p) for p in rank if not removed[p]]
            cand = remaining[:greedy_pool] if greedy_pool else remaining
            if len(cand) > step and step > 0:  # re-rank by the marginal effect given what is removed
                trial = np.repeat(removed[None], len(cand), 0)
                trial[np.arange(len(cand)), cand] = True
                marg = np.asarray((yield trial), np.float64).mean(1)
                evaluations += len(cand)
                pick = [cand[j] for j in np.argsort(-marg, kind="stable")[:step]]
            else:
                pick = cand[:step]
            removed[pick] = True
            gorder.extend(pick)
        # the greedy sets, evaluated together at the end (one batch)
        rows = _prefix_masks(gorder, ks[1:], n_parts)
        gv = np.asarray((yield rows), np.float64)
        evaluations += len(rows)
        out["greedy"] = np.concatenate([eff[:1], gv])
        out["greedy_order"] = np.array(gorder)
    out["evaluations"] = evaluations
    return out


def run_plans(plans: list, evaluate_all) -> list:
    """Drive generator plans (``curve_plan``) in lockstep: each round, every unfinished plan's
    request goes to ``evaluate_all([(plan index, request), ...]) -> [answer, ...]`` (one
    batch), and each answer is sent back. -> the plans' return values, in order."""
    results, pending = [None] * len(plans), {}

    def advance(i, answer=None, first=False):
        try:
            pending[i] = next(plans[i]) if first else plans[i].send(answer)
        except StopIteration as stop:
            pending.pop(i, None)
            results[i] = stop.value

    for i in range(len(plans)):
        advance(i, first=True)
    while pending:
        idx = list(pending)
        for i, ans in zip(idx, evaluate_all([(i, pending[i]) for i in idx])):
            advance(i, ans)
    return results


def k_fail(curves: np.ndarray, ks, n_parts: int, level: float = EFFECT_FAIL) -> np.ndarray:
    """curves [..., K] -> the first k / n_parts at which effect > level, [...]; a curve that
    never exceeds it is censored at 1 + 1 / n_parts."""
    c = np.asarray(curves, np.float64)
    frac = np.asarray(ks, np.float64) / n_parts
    over = c > level
    first = np.argmax(over, axis=-1)
    return np.where(over.any(-1), frac[first], 1.0 + 1.0 / n_parts)


def auc(curves: np.ndarray, ks, n_parts: int) -> np.ndarray:
    """Area under the effect (clipped to [0, 1]) against k / n_parts over the grid, [...].
    The grid must span 0..n_parts for the area to be in [0, 1]."""
    c = np.clip(np.asarray(curves, np.float64), 0.0, 1.0)
    x = np.asarray(ks, np.float64) / n_parts
    return np.sum((c[..., 1:] + c[..., :-1]) / 2 * np.diff(x), axis=-1)


def summarise_curves(cv: dict, n_parts: int) -> dict:
    """Per order: the mean curve with a 95 % band (t over draws x replicates for error, over
    replicates for attack/greedy), k50 and AUC (mean_ci over the same rows; k50 also the
    number censored), and the attack - error gap per replicate (mean_ci, n = B)."""
    from analysis.stats import mean_ci, mean_ci_axis

    ks = cv["ks"]
    out = {"ks": list(ks), "n_parts": n_parts, "evaluations": int(cv["evaluations"])}
    err = cv["error"]  # [D, K, B]
    rows = {"error": np.moveaxis(err, 1, -1).reshape(-1, len(ks))}  # [D * B, K]
    for o in ("attack", "greedy"):
        if o in cv:
            rows[o] = cv[o].T  # [B, K]
    for o, r in rows.items():
        band = mean_ci_axis(r, axis=0)
        kf = k_fail(r, ks, n_parts)
        out[o] = {"mean": band["mean"].tolist(), "lo": band["lo"].tolist(), "hi": band["hi"].tolist(),
                  "n": int(r.shape[0]), "k50": mean_ci(kf), "k50_median": float(np.median(kf)),
                  "never": int((kf > 1).sum()), "auc": mean_ci(auc(r, ks, n_parts))}
    auc_err_b = auc(np.moveaxis(err, 1, -1), ks, n_parts).mean(0)  # [B]: each replicate over draws
    for o in ("attack", "greedy"):
        if o in cv:
            out[f"gap_{o}"] = mean_ci(auc(cv[o].T, ks, n_parts) - auc_err_b)
    if "attack_order" in cv:
        out["attack_order"] = [int(i) for i in cv["attack_order"][:16]]
        out["single_effect"] = cv["single"].mean(1).tolist()
    if "greedy_order" in cv:
        out["greedy_order"] = [int(i) for i in cv["greedy_order"][:16]]
    return out


# --------------------------------------------------------------------------- CA evaluators

@partial(jax.jit, static_argnames=("steps", "cfg"))
def _weight_rollouts(params, x0, key, t0, target, keep1, keep2, shift, steps, cfg):
    """Rollouts with the rows of w1 scaled by keep1 [N, 3C] (perception features read), the
    rows of w2 by keep2 [N, hidden] (units' outputs) and b2 shifted by shift [N, C] (mean
    ablation: the sum of removed mean_j * w2[j]), vmapped over N, on the fast path.
    x0 [B, H, W, C] -> losses [N, B]. Units and channels, zero and mean, share this program."""
    from nca.model import rollout, to_rgba
    from nca.train import per_sample_loss

    def one(k1, k2, s):
        p = {**params, "w1": params["w1"] * k1[:, None], "w2": params["w2"] * k2[:, None], "b2": params["b2"] + s}
        x, _ = rollout(p, x0, key, steps, cfg, record=(), t0=t0, fast=True)
        return per_sample_loss(to_rgba(x), target)

    return jax.vmap(one)(keep1, keep2, shift)


def weight_losses(params, cfg, start, key: Array, target, keep1=None, keep2=None, shift=None,
                  chunk: int = 16) -> np.ndarray:
    """Losses [N, B] from ``start`` (``analysis.causal.knockouts.Start``) of the weight masks keep1
    [N, 3C] / keep2 [N, hidden] and b2 shifts [N, C] (None: intact). Chunks are padded to
    ``chunk`` with intact rollouts: one compiled program per condition length."""
    from nca.model import to_device

    n_all = next(len(a) for a in (keep1, keep2, shift) if a is not None)
    full = {"k1": (keep1, cfg.kernels * cfg.channels, 1.0), "k2": (keep2, cfg.hidden, 1.0), "s": (shift, cfg.channels, 0.0)}
    x0, tgt = to_device(start.x0), to_device(target)
    out = []
    for i in range(0, n_all, chunk):
        n = min(chunk, n_all - i)
        arr = {}
        for name, (a, width, fill) in full.items():
            v = np.full((chunk, width), fill, np.float32)
            if a is not None:
                v[:n] = np.asarray(a, np.float32)[i:i + n]
            arr[name] = to_device(v)
        loss = _weight_rollouts(params, x0, key, start.t0, tgt, arr["k1"], arr["k2"], arr["s"], start.steps, cfg)
        out.append(np.asarray(loss)[:n])
    return np.concatenate(out) if out else np.zeros((0, start.x0.shape[0]))


class WeightRows:
    """Memoised losses of weight rows (keep1 [3C], keep2 [hidden], shift [C]) from one start:
    a row asked for again (k = 0 and k = n of every order, the singles that the error's
    k = 1, the attack's k = 1 and the greedy's first candidates repeat, the same set in two
    curves) is rolled out once, and the new rows of a call go through ``weight_losses``
    together (one padded batch). rollouts: distinct rows run; padded: with the padding."""

    def __init__(self, params, cfg, start, key: Array, target, chunk: int = 16):
        self.params, self.cfg, self.start, self.key, self.target, self.chunk = params, cfg, start, key, target, chunk
        self.cache: dict[bytes, np.ndarray] = {}
        self.rollouts = self.padded = 0

    def losses(self, keep1: np.ndarray, keep2: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """keep1 [N, 3C], keep2 [N, hidden], shift [N, C] -> losses [N, B]."""
        rows = np.concatenate([keep1, keep2, shift], 1).astype(np.float32)
        keys = [r.tobytes() for r in rows]
        first = {}
        for i, k in enumerate(keys):
            if k not in self.cache:
                first.setdefault(k, i)
        if first:
            sel = rows[list(first.values())]
            a, b = keep1.shape[1], keep1.shape[1] + keep2.shape[1]
            out = weight_losses(self.params, self.cfg, self.start, self.key, self.target, keep1=sel[:, :a],
                                keep2=sel[:, a:b], shift=sel[:, b:], chunk=self.chunk)
            self.cache.update(zip(first, out))
            self.rollouts += len(first)
            self.padded += -(-len(first) // self.chunk) * self.chunk
        return np.stack([self.cache[k] for k in keys])


def weight_rows(params, cfg, part: str, mode: str, removed: np.ndarray, unit_means=None):
    """The weight rows (keep1 [N, 3C], keep2 [N, hidden], shift [N, C]) of removing the sets
    ``removed`` [N, n_parts] (bool) of units (zero; mean with ``unit_means``) or hidden
    channels (zero): what ``unit_losses`` and ``channel_zero_losses`` roll out."""
    removed = np.asarray(removed, bool)
    n, c = len(removed), cfg.channels
    k1 = np.ones((n, cfg.kernels * c), np.float32)  # one perception row per band and channel
    k2 = np.ones((n, cfg.hidden), np.float32)
    sh = np.zeros((n, c), np.float32)
    if part == "units":
        k2 = (1.0 - removed).astype(np.float32)
        if mode == "mean":
            sh = (removed * np.asarray(unit_means, np.float32)[None]) @ np.asarray(params["w2"], np.float32)
    elif part == "channels" and mode == "zero":
        for i, r in enumerate(removed):
            for j in np.flatnonzero(r):
                k1[i, [b * c + 4 + j for b in range(cfg.kernels)]] = 0.0
    else:
        raise NCAError(f"{part} {mode} is not a weight removal")
    return k1, k2, np.asarray(sh, np.float32)


def unit_losses(params, cfg, start, key: Array, target, removed: np.ndarray, unit_means=None,
                chunk: int = 16) -> np.ndarray:
    """Losses [N, B] of removing the unit sets ``removed`` [N, hidden] (bool) from ``start``:
    zeroed (w2 rows), or mean-ablated when ``unit_means`` [hidden] is given."""
    removed = np.asarray(removed, bool)
    shift = None if unit_means is None else weight_rows(params, cfg, "units", "mean", removed, unit_means)[2]
    return weight_losses(params, cfg, start, key, target, keep2=1.0 - removed, shift=shift, chunk=chunk)


def channel_zero_losses(params, cfg, start, key: Array, target, removed: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Losses [N, B] of zeroing sets of hidden channels: removed [N, C - 4] (bool, channel
    4 + j). As never-read channels (their perception rows of w1 zeroed, one per band): the same bodies as
    zeroing them in the state every step (a hidden channel acts only through the perception;
    ``analysis.causal.knockouts.read_ablation_losses``, tested there), on the fast path."""
    if cfg.frame_channel is not None:  # a steering channel acts through every channel's slots:
        from analysis.causal.knockouts import read_ablation_losses  # its state-hook path for them

        sets = [tuple(4 + j for j in np.flatnonzero(r)) for r in np.asarray(removed, bool)]
        return read_ablation_losses(params, cfg, start, key, target, sets, chunk)[0]
    keep = weight_rows(params, cfg, "channels", "zero", removed)[0]
    return weight_losses(params, cfg, start, key, target, keep1=keep, chunk=chunk)


@partial(jax.jit, static_argnames=("steps", "cfg"))
def _start_rollouts(params, x0s, key, t0, target, steps, cfg):
    """Intact rollouts from N start states x0s [N, B, H, W, C], vmapped -> losses [N, B]."""
    from nca.model import rollout, to_rgba
    from nca.train import per_sample_loss

    def one(x0):
        x, _ = rollout(params, x0, key, steps, cfg, record=(), t0=t0, fast=True)
        return per_sample_loss(to_rgba(x), target)

    return jax.vmap(one)(x0s)


def kill_masks(alive: np.ndarray, fractions, draws: int, rng: np.random.Generator) -> np.ndarray:
    """keep masks [draws, F, B, H, W] (float): for each draw, fraction and replicate, a random
    round(f * n_alive) of the alive cells (alive [B, H, W] bool) set to 0, nested over the
    fractions (the cells killed at f are among those killed at a larger f: one random order
    of the cells per draw, as the error order of the other parts)."""
    B = alive.shape[0]
    keep = np.ones((draws, len(fractions), B) + alive.shape[1:], np.float32)
    for d in range(draws):
        for b in range(B):
            idx = np.flatnonzero(alive[b].ravel())
            order = rng.permutation(idx)
            for i, f in enumerate(fractions):
                flat = keep[d, i, b].reshape(-1)
                flat[order[:int(round(f * len(idx)))]] = 0.0
    return keep


def kill_losses(params, cfg, start, key: Array, target, keep: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Losses [N, B] of persistence from ``start`` with the cells where keep [N, B, H, W] is 0
    killed (their whole state zeroed) at the start; chunks padded with intact starts."""
    from nca.model import to_device

    x0 = np.asarray(start.x0, np.float32)
    tgt = to_device(target)
    out = []
    for i in range(0, len(keep), chunk):
        k = np.ones((chunk,) + keep.shape[1:], np.float32)
        n = min(chunk, len(keep) - i)
        k[:n] = keep[i:i + n]
        loss = _start_rollouts(params, to_device(x0[None] * k[..., None]), key, start.t0, tgt, start.steps, cfg)
        out.append(np.asarray(loss)[:n])
    return np.concatenate(out) if out else np.zeros((0, x0.shape[0]))


def patch_ids(alive: np.ndarray, patch: int) -> np.ndarray:
    """The square patch (side ``patch`` cells, row-major over the grid) of every alive cell of
    alive [B, H, W] (bool) -> int [B, H, W], -1 where no cell is alive."""
    B, H, W = alive.shape
    y, x = np.mgrid[:H, :W]
    ids = (y // patch) * (-(-W // patch)) + x // patch
    return np.where(alive, ids[None], -1)


def attack_kill_masks(alive: np.ndarray, pid: np.ndarray, rank: np.ndarray, fractions) -> np.ndarray:
    """keep masks [F, B, H, W] (float) of the attack order on cells: in each replicate its
    alive cells sorted by the rank of their patch (``rank``: patch ids, worst first; cells of
    one patch in grid order), the first round(f * n_alive) killed. Nested over f, as the
    random order (``kill_masks``)."""
    pos = np.full(pid.max() + 2, len(rank), int)
    pos[np.asarray(rank, int)] = np.arange(len(rank))
    keep = np.ones((len(fractions),) + alive.shape, np.float32)
    for b in range(alive.shape[0]):
        idx = np.flatnonzero(alive[b].ravel())
        order = idx[np.argsort(pos[pid[b].ravel()[idx]], kind="stable")]
        for i, f in enumerate(fractions):
            keep[i, b].reshape(-1)[order[:int(round(f * len(idx)))]] = 0.0
    return keep


def cell_curves(evaluate, alive: np.ndarray, fractions, draws: int, rng: np.random.Generator,
                patch: int = 0) -> dict:
    """Killing a fraction of the living cells (alive [B, H, W] bool), in random order
    (``kill_masks``: ``draws`` orders) and, with ``patch`` > 0, worst first (attack): the
    grid cut into patch x patch squares, each patch's cells killed alone (its single
    effect, mean over replicates), cells then killed patch by patch, worst patch first
    (``attack_kill_masks``). evaluate: keep masks [N, B, H, W] -> effects [N, B].

    -> ``degradation_curves``'s dict (ks in percent of the alive cells, n_parts = 100;
    "single" [P, B] and "attack_order" [P]: patch ids, ``patch_ids``)."""
    fr = tuple(sorted({0.0, *[float(f) for f in fractions]}))
    if fr[-1] > 1.0 or fr[0] < 0.0:
        raise NCAError(f"cell fractions must be in [0, 1], got {list(fractions)}")
    if draws < 1:
        raise NCAError(f"draws must be >= 1, got {draws}")
    if patch < 0:
        raise NCAError(f"the cell attack's patch must be >= 0 cells, got {patch}")
    keep = kill_masks(alive, fr[1:], draws, rng)  # [D, F-1, B, H, W]
    D, F1, B = keep.shape[:3]
    rows = [keep.reshape((D * F1,) + keep.shape[2:])]
    if patch:
        pid = patch_ids(alive, patch)
        ids = np.unique(pid[pid >= 0])
        rows.append(np.stack([np.where(pid == i, 0.0, 1.0).astype(np.float32) for i in ids]))
    eff = np.asarray(evaluate(np.concatenate(rows)), np.float64)
    error = np.zeros((D, F1 + 1, B))
    error[:, 1:] = eff[:D * F1].reshape(D, F1, B)
    out = {"ks": [int(round(100 * f)) for f in fr], "error": error, "error_orders": np.zeros((D, 0), int),
           "evaluations": 1 + D * F1}
    if patch:
        single = eff[D * F1:]
        rank = ids[np.argsort(-single.mean(1), kind="stable")]
        a = np.asarray(evaluate(attack_kill_masks(alive, pid, rank, fr[1:])), np.float64)
        out.update(single=single, attack_order=rank, attack=np.concatenate([np.zeros((1, B)), a]))
        out["evaluations"] += len(ids) + F1
    return out


def cell_curve(params, cfg, start, key: Array, target, empty: float, fractions, draws: int,
               rng: np.random.Generator, chunk: int = 16, patch: int = 0) -> dict:
    """``cell_curves`` of the CA: the cells killed (their whole state zeroed) at the start of
    persistence (``start``), then persisting intact; the intact run is row 0 of every batch."""
    alive = np.asarray(start.x0[..., 3] > cfg.alive_threshold)

    def evaluate(keep):
        ones = np.ones((1,) + keep.shape[1:], np.float32)
        return replicate_effects(kill_losses(params, cfg, start, key, target, np.concatenate([ones, keep]), chunk),
                                 empty)

    return cell_curves(evaluate, alive, fractions, draws, rng, patch)


def unit_means_of(params, states: np.ndarray, cfg) -> np.ndarray:
    """Mean hidden activation [hidden] over the alive cells of states [T, H, W, C] (the intact
    run): the value a mean-ablated unit is held at. The activations are the step's own
    (``nca.model.step``'s cache: the model's perception, any variant's), not recomputed here."""
    import jax.numpy as jnp

    from nca.model import step

    x = jnp.asarray(states, jnp.float32)
    _, cache = step(params, x, jax.random.key(0), cfg)  # the fire mask does not reach "hidden"
    alive = np.asarray(states[..., 3] > cfg.alive_threshold)
    return np.asarray(cache["hidden"])[alive].mean(0)


# --------------------------------------------------------------------------- the pipeline

@dataclass(frozen=True)
class DegradationSettings:
    """What a degradation report measures. grow/persist/regrow: steps of the three
    conditions (``analysis.causal.knockouts.Assay``); cut: the regeneration cut; replicates:
    fire-mask replicates; draws: random orders (error) per curve; unit_ks: the k grid of the
    units (channels use every k); parts: "units", "channels", "cells" (living cells killed
    at random once at the start of persistence; cell_fractions: the fractions of the alive
    cells killed, error order only), "pcs" (the principal components of the hidden
    channels over alive cells of the intact run, mean-ablated at the state hook on the dense
    step: opt-in, ~6x slower); modes: removal by "zero" and/or
    "mean" (the first is the default shown first); conditions; attack / greedy: the worst-first
    orders; channel_modes: the channels' removal modes (default zero only: the mean runs
    on the dense step, too slow for the 3-minute budget); greedy_pool: candidates re-ranked per grid step (0 = all remaining);
    cell_attack: the side (cells) of the square patches of the cells' attack order
    (``cell_curves``; 0: random order only); seed; size:
    grid (None: the model's); chunk: rollouts per compiled batch."""

    grow: int = 96
    persist: int = 96
    regrow: int = 64
    cut: str = "left"
    replicates: int = 2
    draws: int = 8
    unit_ks: tuple[int, ...] | None = None  # None: unit_grid(the model's hidden width)
    parts: tuple[str, ...] = ("units", "channels", "cells")
    cell_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    modes: tuple[str, ...] = ("zero", "mean")
    channel_modes: tuple[str, ...] = ("zero",)
    conditions: tuple[str, ...] = CONDITIONS
    attack: bool = True
    greedy: bool = True
    greedy_pool: int = 16
    cell_attack: int = 8
    seed: int = 0
    size: int | None = None
    chunk: int = 16

    def __post_init__(self):
        require_at_least(self, ("grow", "persist", "regrow", "replicates", "chunk", "draws"), 1)
        if self.cell_attack < 0:
            raise NCAError(f"cell_attack must be >= 0 (the patch side in cells; 0: no attack on cells), "
                           f"got {self.cell_attack}")
        if self.greedy_pool < 0:
            raise NCAError(f"greedy_pool must be >= 0, got {self.greedy_pool}")
        if self.unit_ks is not None and (not self.unit_ks or min(self.unit_ks) < 0):
            raise NCAError(f"unit_ks must be k >= 0, got {list(self.unit_ks)}")
        for name, allowed in (("parts", ("units", "channels", "cells", "pcs")), ("modes", ("zero", "mean")),
                              ("channel_modes", ("zero", "mean")),
                              ("conditions", CONDITIONS)):
            v = getattr(self, name)
            if not v or set(v) - set(allowed):
                raise NCAError(f"{name} must be a non-empty subset of {', '.join(allowed)}, got {list(v)}")
        from nca.damage import CUTS

        if self.cut not in CUTS:
            raise NCAError(f"cut must be one of {', '.join(CUTS)}, got {self.cut!r}")


def run_model(model, s: DegradationSettings, progress=None) -> dict:
    """Every curve of one loaded model (``nca.load_model``).

    -> {"model", "grid", "curves": {part: {mode: {condition: summary}}}, "raw": same with the
    raw arrays of ``degradation_curves``}. Raises NCAError for a model that does not grow
    (fewer than 10 alive cells after ``grow`` steps) or a unit k beyond the hidden width."""
    from analysis.rollouts import grow_states

    cfg = model.model_config
    unit_ks = _grid_check(s.unit_ks or unit_grid(cfg.hidden), cfg.hidden, "unit_ks")
    key = jax.random.key(s.seed)
    grid = s.size or model.grid_size
    target = target_on_grid(model.target_image(), grid)
    empty = empty_loss(target)
    states = grow_states(model, s.grow, key, size=grid)[:, 0]  # [T+1, H, W, C]
    fit = sorted({s.grow // 2, s.grow})
    alive = states[fit, ..., 3] > cfg.alive_threshold
    if alive[-1].sum() < 10:
        raise NCAError(f"{model.name} does not grow: {int(alive[-1].sum())} alive cells after {s.grow} steps")
    starts = assay_starts(model.params, cfg, key, grid, Assay(s.grow, s.persist, s.regrow, s.cut, s.replicates))
    chan_means = np.zeros(cfg.channels, np.float32)
    chan_means[4:] = states[fit][alive][:, 4:].mean(0)
    umeans = unit_means_of(model.params, states[fit], cfg)
    hidden_ch = list(range(4, cfg.channels))
    curves, raw, rollouts = {}, {}, {}
    if "cells" in s.parts:
        rng = np.random.default_rng(np.random.SeedSequence([s.seed, _stream("cells", "kill", "persistence")]))
        cv = cell_curve(model.params, cfg, starts["persistence"], key, target, empty, s.cell_fractions, s.draws, rng,
                        s.chunk, s.cell_attack if s.attack else 0)
        curves["cells"] = {"kill": {"persistence": summarise_curves(cv, 100)}}
        raw["cells"] = {"kill": {"persistence": cv}}
        if progress is not None:
            progress(f"{model.name} cells kill persistence: {cv['evaluations']} rollouts")
    pcs = None
    if "pcs" in s.parts:
        from analysis.causal.interventions import embed_directions
        from analysis.representation.pca import fit_cell_pca

        pca = fit_cell_pca(states[fit, ..., 4:], alive, cfg.channels - 4)
        pcs = (embed_directions(pca.components, 4, cfg.channels), pca.components @ pca.mean)  # [P, C], [P]
    done = {}  # (part, mode, cond) -> curves
    for cond in s.conditions:  # units and zeroed channels: every curve of a condition pooled (WeightRows)
        st = starts[cond]
        pool = WeightRows(model.params, cfg, st, key, target, s.chunk)
        names = [(p, m) for p in ("units", "channels") if p in s.parts
                 for m in (s.modes if p == "units" else s.channel_modes) if not _dense(p, m, cfg)]
        plans = []
        for part, mode in names:
            n = cfg.hidden if part == "units" else len(hidden_ch)
            ks = unit_ks if part == "units" else range(n + 1)
            rng = np.random.default_rng(np.random.SeedSequence([s.seed, _stream(part, mode, cond)]))
            plans.append(curve_plan(n, ks, s.draws, rng, s.attack, s.greedy, s.greedy_pool))
        empty_row = weight_rows(model.params, cfg, "units", "zero", np.zeros((1, cfg.hidden), bool))

        def evaluate_all(items, names=names, pool=pool, empty_row=empty_row):
            enc = [weight_rows(model.params, cfg, *names[i], m, umeans) for i, m in items]
            loss = pool.losses(*[np.concatenate([empty_row[j]] + [e[j] for e in enc]) for j in range(3)])
            ref, out, at = loss[0], [], 1  # row 0: nothing removed, the reference of every curve
            for i, m in items:
                out.append(replicate_effects(np.concatenate([ref[None], loss[at:at + len(m)]]), empty))
                at += len(m)
            return out

        for (part, mode), cv in zip(names, run_plans(plans, evaluate_all)):
            done[part, mode, cond] = cv
            if progress is not None:
                progress(f"{model.name} {part} {mode} {cond}: {cv['evaluations']} rows")
        rollouts[cond] = {"distinct": pool.rollouts, "padded": pool.padded}
        if progress is not None and names:
            progress(f"{model.name} {cond}: {pool.rollouts} distinct rollouts ({pool.padded} with padding)")
    for part in [p for p in s.parts if p != "cells"]:  # the state hook (dense step): one curve at a time
        for mode in {"units": (), "channels": s.channel_modes, "pcs": ("mean",)}[part]:
            for cond in s.conditions:
                if not _dense(part, mode, cfg):
                    continue
                st = starts[cond]
                if part == "pcs":
                    n, ks = len(pcs[0]), range(len(pcs[0]) + 1)
                    ref = ablation_losses(model.params, cfg, st, key, target, none_ablation(cfg.channels),
                                          s.chunk)[0][0]

                    def evaluate(removed, st=st, ref=ref):
                        # every removed PC's component held at its alive-cell mean (mean ablation)
                        abl = direction_ablations([pcs[0][r] for r in removed], [str(i) for i in range(len(removed))],
                                                  cfg.channels, [pcs[1][r] for r in removed])
                        loss, _ = ablation_losses(model.params, cfg, st, key, target, abl, s.chunk)
                        return replicate_effects(np.concatenate([ref[None], loss]), empty)
                else:
                    n, ks = len(hidden_ch), range(len(hidden_ch) + 1)
                    ref = ablation_losses(model.params, cfg, st, key, target, none_ablation(cfg.channels),
                                          s.chunk)[0][0]

                    def evaluate(removed, st=st, ref=ref):  # held at the alive-cell mean (or 0) every step
                        sets = [tuple(hidden_ch[j] for j in np.flatnonzero(r)) for r in removed]
                        loss, _ = ablation_losses(model.params, cfg, st, key, target,
                                                  channel_ablations(sets, cfg.channels,
                                                                    chan_means if mode == "mean" else None), s.chunk)
                        return replicate_effects(np.concatenate([ref[None], loss]), empty)

                rng = np.random.default_rng(np.random.SeedSequence([s.seed, _stream(part, mode, cond)]))
                done[part, mode, cond] = degradation_curves(evaluate, n, ks, s.draws, rng, s.attack, s.greedy,
                                                            s.greedy_pool)
                if progress is not None:
                    progress(f"{model.name} {part} {mode} {cond}: {done[part, mode, cond]['evaluations']} rollouts")
    for part in [p for p in s.parts if p != "cells"]:  # the report's order: part, mode, condition
        for mode in {"units": s.modes, "channels": s.channel_modes, "pcs": ("mean",)}[part]:
            for cond in s.conditions:
                cv = done[part, mode, cond]
                n = {"units": cfg.hidden, "channels": len(hidden_ch)}.get(part) or len(pcs[0])
                curves.setdefault(part, {}).setdefault(mode, {})[cond] = summarise_curves(cv, n)
                raw.setdefault(part, {}).setdefault(mode, {})[cond] = cv
    return {"model": model.name, "grid": grid, "curves": curves, "raw": raw, "rollouts": rollouts,
            "unit_means": umeans.tolist(), "channel_means": chan_means.tolist()}


def _dense(part: str, mode: str, cfg) -> bool:
    """Whether a curve runs through the state hook (the dense step) rather than as pooled
    weight rows: PCs, mean-held channels, and zeroed channels of a model whose frame channel
    steers the others' perception (``ModelConfig.frame_channel``)."""
    return part == "pcs" or (part == "channels" and (mode == "mean" or cfg.frame_channel is not None))


def _stream(part: str, mode: str, cond: str) -> int:
    """Named stream of the random orders of one curve (``nca.rng.stream_id``)."""
    from nca.rng import stream_id

    return stream_id(f"degradation/{part}/{mode}/{cond}")
