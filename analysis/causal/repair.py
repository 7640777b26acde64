"""Self-repair as McGrath et al. (2023) define it, adapted to a cellular automaton.

McGrath, Rahtz, Kramár, Mikulik & Legg, "The Hydra Effect: Emergent Self-repair in Language
Model Computations", arXiv:2307.15771. There, the *direct* effect of ablating a component
is its effect on the readout with everything downstream of it frozen at the clean run's
values; the *total* effect is the effect when the rest of the network reacts; the
difference, *compensation = direct - total*, is self-repair, and it is attributed to the
downstream components whose own contribution changes to undo it ("backup" components).

Here, over steps ``t0 .. t0 + h - 1`` from a grown state (same fire masks in every run):

* **component**: a hidden channel ``c``, ablated where the update rule *reads* it (its three
  perception features, identity and Sobel pair, set to 0; the channel stays in the state);
* **readout**: the RGBA as seen (clipped to [0, 1], ``nca.model.to_rgba``) after ``h``
  steps; an effect is the RMS over cells of the difference from the clean run, per
  replicate (independent fire masks);
* **total(h)**: c ablated, everything reacts;
* **direct(h)**, two definitions, both reported (``definitions`` per horizon):
  *others frozen*: c ablated, and every other hidden channel frozen at the clean run's
  values (patched into the state each step) and the life mask frozen at the clean run's (the
  "alive" hook); the fire masks are the same by construction. What still evolves is the
  readout itself: the RGBA channels read themselves, so a passive relaxation of the body
  (its own leak, no other part reacting) belongs to the direct path and is *not* repair.
  *update frozen* (McGrath et al.'s direct path: nothing downstream of the ablated write
  reacts): each step's update computed on the clean incoming state with c ablated, the
  changes summed onto the clean trajectory; here the readout's own leak is downstream, so
  passive relaxation scores as repair;
* **repair_fraction(h) = (direct - total) / direct** under each: 1 = fully undone by the
  reaction, 0 = no compensation, < 0 = the total effect exceeds the direct one -- which is
  what a channel with a second, *mediated* output scores with no compensation anywhere
  (planted: -0.02 to -0.41). Undefined (null, with a reason) when the direct effect is below
  ``min_direct``; **along_direct** = <d - total, d> / <d, d>, the compensation along the
  direct effect's own direction (0 for the mediated output);
* **attribution**: for each other hidden channel k, the ablated run again with only k frozen
  at its clean values ("k may not react"). ``share_k(h) = (frozen_k - total) /
  (direct - total)``: the part of the compensation that disappears when k cannot react;
  channels with a large share are listed as ``compensating`` (not "backups": a channel that
  passively copies c and leaks away without it is listed the same way, planted). Shares
  need not sum to 1 (they can interact); ``unattributed`` = 1 - the sum.
* **pulse(h)**: c ablated in step t0 only: ``pulse_recovery(h) = 1 - pulse(h) / max pulse``
  (does a one-step perturbation decay?). Descriptive only: a passive leak also decays.

Every number is reported at several horizons (``RepairSettings.horizons``) with n and a
95 % interval over replicates (``analysis.stats``), never as one horizon-dependent number.
Controls (tests/test_repair.py): a rule that permanently erases cells and a rule with pure
relaxation give repair ~0 at every horizon (relaxation: under "others frozen" only); a rule
with two identical integral controllers gives ~full repair attributed to the twin; the same
rule with the twin's feedback cut gives 0 (others frozen); a rule without compensation whose
channel drives a mediated second output gives 1 - sqrt(1 + m^2) < 0 under both; a passive
copying channel gives m > 0 under both (m = the share of the copy that has leaked).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from nca.errors import NCAError
from nca.model import ModelConfig, rollout, step, step_key, to_rgba

from analysis.causal.interventions import perception_directions
from analysis.stats import mean_ci, mean_ci_axis


@dataclass(frozen=True)
class RepairSettings:
    """horizons: steps after t0 at which everything is reported (the runs go to the largest);
    attribute: run the "k frozen" variants (n - 1 more runs per channel); attribute_units:
    also the first-order attribution to the MLP's hidden units (``unit_attribution``; 3 more
    runs per channel), reporting the ``top_units`` largest shares; min_direct: RMS
    RGBA deviation below which the direct effect is too small for a repair fraction;
    backup_share: a channel is listed as a backup where its share of the compensation is at
    least this, its interval's lower end above 0, and the repair fraction's above 0;
    chunk: variants per compiled batch."""

    horizons: tuple[int, ...] = (5, 10, 20, 40, 60)
    attribute: bool = True
    attribute_units: bool = False
    top_units: int = 5
    min_direct: float = 5e-3
    backup_share: float = 0.25
    chunk: int = 8

    def __post_init__(self):
        if not self.horizons or min(self.horizons) < 1:
            raise NCAError(f"repair horizons must be >= 1, got {list(self.horizons)}")

    @property
    def steps(self) -> int:
        return max(self.horizons)


@partial(jax.jit, static_argnames=("steps", "cfg"))
def _clean(params, x0, key, t0, steps, cfg):
    """The clean run: incoming states [T, B, H, W, C], RGBA as seen [T, B, H, W, 4] after each
    step, life masks [T, B, H, W, 1]."""
    _, tr = rollout(params, x0, key, steps, cfg, record=("state", "alive"), t0=t0)
    incoming = jnp.concatenate([x0[None], tr.states[:-1]], 0)
    return incoming, to_rgba(tr.states), tr.alive


@partial(jax.jit, static_argnames=("cfg",))
def _hydra_runs(params, x0, key, t0, incoming, seen, life, keep, clamp, hz_idx, cfg):
    """The total run and the two direct runs of one ablation, in lockstep (same fire masks).

    keep [3C]: the perception features read (0 = ablated); clamp [C]: 1 for the channels
    frozen at the clean run in the "others frozen" direct run. The "update frozen" direct run
    (McGrath et al.'s direct path: nothing downstream of the ablated write reacts) adds, to the
    clean trajectory, each step's change of the update computed *on the clean incoming state*
    with the ablation (life masks of the clean run): x_B(s + 1) = clean(s + 1) + sum_{r <= s}
    [step_ablated(incoming_r) - clean(r + 1)]. -> (RMS RGBA deviation from the clean run
    [3, T, B] for (total, others frozen, update frozen), the deviation fields at the horizons
    [3, nH, B, H, W, 4])."""
    nh = hz_idx.shape[0]
    fields0 = jnp.zeros((3, nh) + x0.shape[:-1] + (4,), x0.dtype)

    def body(carry, i):
        xt, xa, acc, fields = carry
        t = t0 + i
        k = step_key(key, t)
        xt, _ = step(params, xt, k, cfg, t, _hooks_of(keep, 0.0, 0.0, incoming[i], life[i]))
        xa, _ = step(params, xa, k, cfg, t, _hooks_of(keep, clamp, 1.0, incoming[i], life[i]))
        # the same step on the clean incoming state, without and with the ablation (the clean
        # step is recomputed rather than read from the recording, so rounding cancels)
        c0, _ = step(params, incoming[i], k, cfg, t, _hooks_of(1.0, 0.0, 1.0, incoming[i], life[i]))
        c1, _ = step(params, incoming[i], k, cfg, t, _hooks_of(keep, 0.0, 1.0, incoming[i], life[i]))
        acc = acc + (c1 - c0)
        dev = jnp.stack([to_rgba(v) - seen[i] for v in (xt, xa, c0 + acc)])  # [3, B, H, W, 4]
        at = (hz_idx == i).astype(x0.dtype)[None, :, None, None, None, None]
        fields = fields + at * dev[:, None]
        return (xt, xa, acc, fields), jnp.sqrt(jnp.mean(jnp.square(dev), axis=(-3, -2, -1)))

    (_, _, _, fields), rms = jax.lax.scan(body, (x0, x0, jnp.zeros_like(x0), fields0),
                                          jnp.arange(incoming.shape[0]))
    return jnp.moveaxis(rms, 1, 0), fields


@partial(jax.jit, static_argnames=("cfg",))
def _variant_deviations(params, x0, key, t0, incoming, seen, life, keep, clamp, freeze, stop, cfg):
    """RMS RGBA deviation from the clean run after each step, per variant and replicate.

    keep [V, 3C]: 1 for the perception features read, 0 for the ablated ones (in steps t <
    stop [V]); clamp [V, C]: 1 where a channel is frozen at the clean run's value; freeze
    [V]: 1 to apply the clean run's life masks. -> [V, T, B]."""

    def one(kp, cl, fr, st):
        def body(x, i):
            t = t0 + i
            hooks = {"state": lambda v, _: v + cl * (incoming[i] - v),
                     "perception": lambda v, _: v * jnp.where(t < st, kp, 1.0),
                     "alive": lambda a, _: a + fr * (life[i] - a)}
            x, _ = step(params, x, step_key(key, t), cfg, t, hooks)
            d = to_rgba(x) - seen[i]
            return x, jnp.sqrt(jnp.mean(jnp.square(d), axis=(-3, -2, -1)))

        return jax.lax.scan(body, x0, jnp.arange(incoming.shape[0]))[1]

    return jax.vmap(one)(keep, clamp, freeze, stop)


def _hooks_of(keep, clamp, freeze, incoming_i, life_i):
    return {"state": lambda v, _: v + clamp * (incoming_i - v),
            "perception": lambda v, _: v * keep,
            "alive": lambda a, _: a + freeze * (life_i - a)}


@partial(jax.jit, static_argnames=("cfg",))
def _direct_fields(params, x0, key, t0, incoming, seen, life, keep, clamp, hz_idx, cfg):
    """The direct run's RGBA deviation fields at the horizons: [nH, B, H, W, 4]."""
    def body(x, i):
        t = t0 + i
        x, _ = step(params, x, step_key(key, t), cfg, t, _hooks_of(keep, clamp, 1.0, incoming[i], life[i]))
        return x, to_rgba(x) - seen[i]

    return jax.lax.scan(body, x0, jnp.arange(incoming.shape[0]))[1][hz_idx]


@partial(jax.jit, static_argnames=("cfg",))
def _unit_projections(params, x0, key, t0, incoming, seen, life, keep, clamp, d, hz_idx, cfg):
    """Direct and total runs in lockstep (same fire masks): for each horizon h and unit j,
    <sum_{s <= h - 1} fire_s (h^total_{s,j} - h^direct_{s,j}) W2[j, :4], d(h)> summed over cells;
    d: the direct deviation fields [nH, B, H, W, 4]. -> (proj [nH, B, hidden], the total run's
    deviation fields at the horizons [nH, B, H, W, 4])."""
    w2 = params["w2"][:, :4]
    nh = hz_idx.shape[0]
    acc0 = jnp.zeros((nh, x0.shape[0], w2.shape[0]), x0.dtype)

    def body(carry, i):
        xd, xt, acc = carry
        t = t0 + i
        k = step_key(key, t)
        xd, cd = step(params, xd, k, cfg, t, _hooks_of(keep, clamp, 1.0, incoming[i], life[i]))
        xt, ct = step(params, xt, k, cfg, t, _hooks_of(keep, 0.0, 0.0, incoming[i], life[i]))
        dh = (ct["hidden"] - cd["hidden"]) * ct["fire"]  # [B, H, W, hidden]
        proj = jnp.einsum("bxyj,jk,nbxyk->nbj", dh, w2, d)
        acc = acc + (i <= hz_idx).astype(acc.dtype)[:, None, None] * proj  # steps 0..h-1 make the state at h
        return (xd, xt, acc), to_rgba(xt) - seen[i]

    (_, _, acc), dev = jax.lax.scan(body, (x0, x0, acc0), jnp.arange(incoming.shape[0]))
    return acc, dev[hz_idx]


def unit_attribution(params, cfg: ModelConfig, x0, key, t0: int, incoming, seen, life, channel: int,
                     settings: "RepairSettings") -> list[dict]:
    """First-order attribution of the compensation to the hidden units of the update MLP
    (the direct logit attribution of McGrath et al. 2023, per step): unit j's *write* to the
    RGBA is ``fire * h_j * W2[j, :4]``; its change between the total and the direct run,
    summed over the steps before h and projected on the direct effect d(h) (RGBA as seen),
    gives ``share_j(h) = -<sum dwrite_j, d> / <d, d>``: the fraction of the direct effect that
    unit j's changed output undoes (> 0 compensates, < 0 amplifies). First order: pre-clip
    writes, life masks ignored after the write; ``accounted`` compares the sum over units with
    the measured compensation along d, ``<d - total, d> / <d, d>`` (equal for a linear rule
    without clipping or deaths, tested). -> one dict per horizon.

    ``measured_along_direct`` also answers a question the norm-based repair fraction cannot:
    the reaction may cancel part of the direct effect *along its direction* while adding
    damage elsewhere (repair fraction < 0, compensation along d > 0)."""
    s = settings
    c_all = cfg.channels
    keep = jnp.asarray(1.0 - perception_directions([channel], c_all, cfg.kernels).sum(0))
    clamp = np.zeros(c_all, np.float32)
    clamp[4:] = 1.0
    clamp = jnp.asarray(clamp)
    hz_idx = jnp.asarray([h - 1 for h in s.horizons], jnp.int32)
    d = _direct_fields(params, x0, key, t0, incoming, seen, life, keep, clamp, hz_idx, cfg)
    proj, tau = _unit_projections(params, x0, key, t0, incoming, seen, life, keep, clamp, d, hz_idx, cfg)
    d, tau, proj = (np.asarray(a, np.float64) for a in (d, tau, proj))
    dd = np.sum(d * d, axis=(2, 3, 4))  # [nH, B]
    ok = dd > (s.min_direct ** 2) * np.prod(d.shape[2:])  # RMS of the direct field >= min_direct
    out = []
    for j, h in enumerate(s.horizons):
        share = -proj[j] / np.where(ok[j], dd[j], 1.0)[:, None]  # [B, hidden]
        share[~ok[j]] = np.nan
        measured = np.where(ok[j], np.sum((d[j] - tau[j]) * d[j], axis=(1, 2, 3)) / np.where(ok[j], dd[j], 1.0), np.nan)
        mean = np.nanmean(share, axis=0) if ok[j].any() else np.full(share.shape[1], np.nan)
        order = np.argsort(-np.abs(np.nan_to_num(mean)))[:s.top_units]
        out.append({"h": h, "top_units": [{"unit": int(u), "share": mean_ci(share[:, u])} for u in order],
                    "sum_of_units": mean_ci(np.nansum(share, axis=1) if ok[j].any() else np.full(len(ok[j]), np.nan)),
                    "measured_along_direct": mean_ci(measured), "measured_along_direct_replicates": measured.tolist()})
    return out


def _ratio(num, den, ok):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def repair_curves(params, cfg: ModelConfig, x0, key: jax.Array, t0: int, channels,
                  settings: RepairSettings = RepairSettings(), progress=None) -> dict:
    """Direct, total and pulse effects of ablating each channel, repair fractions and their
    attribution to the other hidden channels. x0: [B, H, W, C], the grown state at step t0
    (B replicates: the intervals are over them; each replicate has its own fire masks only if
    the caller gives different keys per replicate -- one key with a batch draws independent
    masks per batch member, ``nca.model.fire_mask``).

    Returns a JSON-ready dict: ``h`` (1..steps), ``horizons``, ``replicates``, and per channel
    (``per_channel``): ``curves`` {direct, total, pulse: {mean, lo, hi} [steps]}, ``at``
    (one entry per horizon: direct, total, repair_fraction, pulse_recovery as {mean, lo, hi,
    n}, ``attribution`` [{channel, share}], ``backups``), and ``summary``: per horizon the
    median repair fraction over channels (interval over replicates)."""
    s = settings
    channels = [int(c) for c in channels]
    c_all, hidden = cfg.channels, list(range(4, cfg.channels))
    if any(c not in hidden for c in channels):
        raise NCAError(f"repair channels must be hidden channels 4..{c_all - 1}, got {channels}")
    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 4:
        raise NCAError(f"x0 must be [B, H, W, C], got shape {tuple(x0.shape)}")
    steps = s.steps
    incoming, seen, life = _clean(params, x0, key, t0, steps, cfg)
    never = t0 + steps + 1
    variants, index = [], []  # (keep, clamp, freeze, stop); index: (channel, kind, other)
    for c in channels:
        keep = 1.0 - perception_directions([c], c_all, cfg.kernels).sum(0)
        others = [k for k in hidden if k != c]
        frozen_hidden = np.zeros(c_all, np.float32)
        frozen_hidden[hidden] = 1.0
        variants.append((keep, np.zeros(c_all), 0.0, t0 + 1))
        index.append((c, "pulse", None))
        if s.attribute:
            for k in others:
                variants.append((keep, np.eye(c_all, dtype=np.float32)[k], 0.0, never))
                index.append((c, "frozen", k))
    devs = []
    for i in range(0, len(variants), s.chunk):
        part = variants[i:i + s.chunk]
        n = len(part)
        part = part + [part[-1]] * (s.chunk - n)  # same shapes: one compiled program
        keep, clamp, freeze = (np.stack([np.asarray(v[j], np.float32) for v in part]) for j in range(3))
        stop = np.array([v[3] for v in part], np.int32)
        d = _variant_deviations(params, x0, key, t0, incoming, seen, life, jnp.asarray(keep),
                                jnp.asarray(clamp), jnp.asarray(freeze), jnp.asarray(stop), cfg)
        devs.append(np.asarray(d, np.float64)[:n])
        if progress is not None:
            progress(n)
    devs = np.concatenate(devs)  # [V, T, B]
    by = {(c, kind, k): devs[i] for i, (c, kind, k) in enumerate(index)}
    hz_idx = jnp.asarray([h - 1 for h in s.horizons], jnp.int32)
    frozen_hidden = np.zeros(c_all, np.float32)
    frozen_hidden[hidden] = 1.0
    fields = {}
    for c in channels:  # total and both direct runs (one compiled program for every channel)
        keep = jnp.asarray(1.0 - perception_directions([c], c_all, cfg.kernels).sum(0), jnp.float32)
        rms, f = _hydra_runs(params, x0, key, t0, incoming, seen, life, keep, jnp.asarray(frozen_hidden), hz_idx, cfg)
        rms = np.asarray(rms, np.float64)
        by[(c, "total", None)], by[(c, "direct", None)], by[(c, "direct_update", None)] = rms
        fields[c] = np.asarray(f, np.float64)  # [3, nH, B, H, W, 4]
        if progress is not None:
            progress(1)
    hz = [h for h in s.horizons]
    out = {"h": list(range(1, steps + 1)), "horizons": hz, "t0": int(t0), "replicates": int(x0.shape[0]),
           "min_direct": s.min_direct, "per_channel": []}
    repair_by_channel = []  # [channel][horizon][replicate]
    by_definition = {d: {"repair": [], "along": []} for d in DEFINITIONS}  # [channel][horizon][replicate]
    for c in channels:
        tot, dire, pul = by[(c, "total", None)], by[(c, "direct", None)], by[(c, "pulse", None)]
        dire_u = by[(c, "direct_update", None)]
        ok = dire >= s.min_direct
        frac = _ratio(dire - tot, dire, ok)  # [T, B]
        frac_u = _ratio(dire_u - tot, dire_u, dire_u >= s.min_direct)
        peak = np.maximum.accumulate(pul, axis=0)
        rec = _ratio(peak - pul, peak, peak > 1e-9)
        curves = {}
        for name, a in (("direct", dire), ("direct_update_frozen", dire_u), ("total", tot), ("pulse", pul)):
            m = mean_ci_axis(a, axis=-1)
            curves[name] = {k: m[k].tolist() for k in ("mean", "lo", "hi")}
        f_tot, f_defs = fields[c][0], {"others_frozen": fields[c][1], "update_frozen": fields[c][2]}
        at = []
        for j, h in enumerate(hz):
            i = h - 1
            entry = {"h": h, "direct": mean_ci(dire[i]), "total": mean_ci(tot[i]),
                     "repair_fraction": mean_ci(frac[i]), "pulse_recovery": mean_ci(rec[i])}
            defs = {}
            for name, dev, fr in (("others_frozen", dire, frac), ("update_frozen", dire_u, frac_u)):
                along = compensation_along(f_defs[name][j], f_tot[j], s.min_direct)
                defs[name] = {"direct": mean_ci(dev[i]), "repair_fraction": mean_ci(fr[i]),
                              "along_direct": mean_ci(along)}
                by_definition[name]["repair"].append(fr[i])
                by_definition[name]["along"].append(along)
            entry["definitions"] = defs
            if not np.any(ok[i]):
                entry["repair_fraction"]["reason"] = f"direct effect below {s.min_direct} (RMS RGBA)"
            if s.attribute:
                comp = dire[i] - tot[i]
                okc = ok[i] & (np.abs(comp) >= s.min_direct)
                arrs = {k: _ratio(by[(c, "frozen", k)][i] - tot[i], comp, okc) for k in hidden if k != c}
                shares = [{"channel": k, "share": mean_ci(a)} for k, a in arrs.items()]
                entry["unattributed"] = mean_ci(np.where(okc, 1.0 - np.nansum(list(arrs.values()), axis=0), np.nan))
                entry["attribution"] = shares
                rf = entry["repair_fraction"]
                # channels whose reaction carries the compensation. Not "backups": a channel that
                # passively follows the ablated one scores the same (tests/test_repair.py)
                entry["compensating"] = [a["channel"] for a in shares if a["share"]["mean"] is not None
                                         and a["share"]["mean"] >= s.backup_share and (a["share"]["lo"] or 0) > 0
                                         and rf["lo"] is not None and rf["lo"] > 0]
            at.append(entry)
        if s.attribute_units:
            for entry, u in zip(at, unit_attribution(params, cfg, x0, key, t0, incoming, seen, life, c, s)):
                entry["units"] = u
            if progress is not None:
                progress(3)
        repair_by_channel.append(frac[[h - 1 for h in hz]])
        out["per_channel"].append({"channel": c, "curves": curves, "at": at})
    rb = np.array(repair_by_channel)  # [n, horizons, B]
    summary = []
    for j, h in enumerate(hz):
        with np.errstate(all="ignore"):
            med = np.array([np.nanmedian(rb[:, j, b]) if np.isfinite(rb[:, j, b]).any() else np.nan
                            for b in range(rb.shape[2])])
        entry = {"h": h, "median_repair_fraction": mean_ci(med),
                 "channels_defined": int(np.isfinite(rb[:, j]).any(axis=1).sum())}
        for name in DEFINITIONS:  # both direct definitions, both measures of compensation
            for what, key in (("repair", "median_repair_fraction"), ("along", "median_along_direct")):
                a = np.array([x[j] for x in _by_channel_horizon(by_definition[name][what], len(hz))])  # [n, B]
                with np.errstate(all="ignore"):
                    entry.setdefault(name, {})[key] = mean_ci(np.nanmedian(a, axis=0))
        if s.attribute_units:  # the compensation along the direct effect: median over channels per replicate
            along = np.array([p["at"][j]["units"]["measured_along_direct_replicates"] for p in out["per_channel"]])
            with np.errstate(all="ignore"):
                entry["median_compensation_along_direct"] = mean_ci(np.nanmedian(along, axis=0))
        summary.append(entry)
    out["summary"] = summary
    return out


DEFINITIONS = ("others_frozen", "update_frozen")


def _by_channel_horizon(flat: list, n_h: int) -> list:
    """[channel * horizon] arrays appended in (channel, horizon) order -> [channel][horizon]."""
    return [flat[i:i + n_h] for i in range(0, len(flat), n_h)]


def compensation_along(direct_field, total_field, min_direct: float) -> np.ndarray:
    """<d - total, d> / <d, d> per replicate: the part of the direct effect d (RGBA deviation
    field [B, H, W, 4]) that the reaction cancels along d's own direction (1 = all of it,
    < 0 = it adds along d); NaN where d's RMS is below ``min_direct``."""
    d = np.asarray(direct_field, np.float64)
    tau = np.asarray(total_field, np.float64)
    dd = np.sum(d * d, axis=(1, 2, 3))
    ok = dd > (min_direct ** 2) * np.prod(d.shape[1:])
    return _ratio(np.sum((d - tau) * d, axis=(1, 2, 3)), dd, ok)


def variants_per_channel(cfg: ModelConfig, attribute: bool, attribute_units: bool = False) -> int:
    """Runs ``repair_curves`` makes per channel (for progress bars)."""
    return 2 + (cfg.channels - 5 if attribute else 0) + (3 if attribute_units else 0)
