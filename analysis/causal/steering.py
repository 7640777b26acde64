"""Causal tests of positional codes: steering along a direction, and transplants.

Probes (``analysis.development.positional``) say what a state *encodes*; these ask what the rule *does*
with it, by intervening through the "state" hook of ``nca.model.rollout`` (see
``analysis.causal.interventions`` for the hook conventions).

* **Steering** (activation addition, as in Turner et al. 2023, "Activation addition:
  steering language models without optimization", arXiv:2308.10248; here on a cellular
  automaton): at every step of a window ``[t_start, t_stop)`` every alive cell (or the
  cells of a region) gets ``dose * d / (t_stop - t_start)`` added to its state, with ``d``
  a *unit* direction over the 16 channels (a PC loading, a position probe's direction, or
  a random direction, all in the hidden channels). A dose is one absolute unit for every
  direction: the L2 norm of the total push added to a cell over the window (state units).
  (Until issue 23 it was counted in each direction's own sd over the body, which pushed
  PC1 2-5x harder than the random and probe directions it was compared with.)
  The read-outs are what the body does at the end: its centroid's shift along / across
  the intact body's long axis (px), its length along that axis (px), its area (alive
  cells) and its loss to the target; an effect is a read-out minus the same replicate's
  unsteered one. Control: R random unit hidden directions pushed with the same norms
  (named PRNG stream); a direction is *specific* at a dose only when its effect lies
  outside their 95 % prediction band and beyond every one of them (``specificity``:
  false-positive rate <= 2 / (R + 1) for any exchangeable effects, <= 5 % for normal
  ones; measured in tests/test_steering_control.py and docs/validation/steering.md).
* **Transplant** (the embryologists' graft, e.g. Spemann & Mangold 1924; here, does a cell's
  state carry its position with it?): at step ``t_graft`` the states of a disc of cells
  near one end of the long axis are copied onto a disc near the other end, and the body
  grows on. A kNN position probe trained on intact rollouts decodes where the grafted
  cells "think" they are. **Identity index** ``(s_graft - s_host) / (s_donor - s_host)``
  with ``s`` the mean decoded along-axis position of the disc's alive cells (graft: in the
  grafted body; host / donor: the destination and source discs of the intact body at the
  same step): 1 = the graft keeps its origin's identity, 0 = it takes its new position's.
  It is 1 right after the graft by construction (the probe reads the copied states).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from nca.errors import NCAError
from nca.model import ModelConfig, alive_mask, rollout, seed_state, to_rgba
from nca.stats import t_quantile

from analysis.representation.axes import cell_rc, direction_vector
from analysis.causal.interventions import in_window
from analysis.rollouts import euclidean, grow_states, image_positions, image_shift
from analysis.development.positional import (ProbeSettings, _fit_predict, cells_at, coordinate_grid, interval, numpy_rng,
                         probe_direction, reference_frame)

STREAM_PROBE_CELLS = 22


# --------------------------------------------------------------------------- steering


def steer_hook(direction, alpha, t_start, t_stop, mask, threshold: float):
    """"state" hook adding ``alpha * direction`` to the alive cells inside ``mask`` at steps
    ``t_start <= t < t_stop``. direction: [C]; alpha: scalar; mask: [H, W] (all traced-safe)."""

    def hook(v, t):
        w = in_window(t, t_start, t_stop) * alpha
        live = alive_mask(v, threshold).astype(v.dtype)  # [..., H, W, 1]
        return v + w * live * mask[..., None] * direction

    return hook


@partial(jax.jit, static_argnames=("steps", "cfg"))
def steered_finals(params, x0, key, directions, alphas, t_start, t_stop, mask, steps: int, cfg: ModelConfig):
    """Final states of steered rollouts: x0 [B, H, W, C]; directions [D, C]; alphas [D, N]
    (absolute per-step additions along each direction); mask [H, W] -> [D, N, B, H, W, C].
    One compiled program for every dose and direction (all traced)."""

    def one(d, a):
        hook = steer_hook(d, a, t_start, t_stop, mask, cfg.alive_threshold)
        return rollout(params, x0, key, steps, cfg, record=(), hooks={"state": hook})[0]

    return jax.vmap(lambda d, al: jax.vmap(lambda a: one(d, a))(al))(directions, alphas)


def push_per_step(doses, t_start: int, t_stop: int) -> np.ndarray:
    """The per-step push of each dose: doses [N] (total L2 norm of the push added to a
    steered cell over the window, state units) -> [N] float32, ``dose / (t_stop - t_start)``.
    The same for every direction: directions are unit vectors, so a dose is one absolute
    unit (the old unit, the direction's own sd, pushed PC1 2-3x harder than a random
    direction and 5x harder than the probe's direction; audit of issue 23)."""
    return (np.asarray(doses, np.float64) / (t_stop - t_start)).astype(np.float32)


def _check_unit(directions) -> np.ndarray:
    d = np.asarray(directions, np.float32)
    norms = np.linalg.norm(d, axis=-1)
    if d.ndim != 2 or not np.allclose(norms, 1.0, atol=1e-4):
        raise NCAError(f"steering directions must be unit vectors [D, C] (norms {np.round(norms, 3).tolist()})")
    return d


def steered_states(params, cfg: ModelConfig, x0, key, directions, doses, t_start: int, t_stop: int, mask,
                   steps: int, per_step=None) -> np.ndarray:
    """Final states after steering every direction at every dose, the same fire masks
    throughout (common random numbers: direction and dose are the only differences).

    x0: [B, H, W, C]; directions: [D, C] unit vectors; doses: [N] (total push norm per
    steered cell over the window); mask: [H, W] cells that may be steered; per_step: [D, N]
    to override the matched push (only to reproduce an unmatched control) -> [D, N, B, H,
    W, C]. One direction at a time (one compiled program, its arrays traced)."""
    d = _check_unit(directions)
    alphas = (np.broadcast_to(push_per_step(doses, t_start, t_stop), (len(d), len(doses))) if per_step is None
              else np.asarray(per_step, np.float32))
    x0, mask = jnp.asarray(x0), jnp.asarray(mask, jnp.float32)
    return np.stack([np.asarray(steered_finals(params, x0, key, jnp.asarray(d[i:i + 1]), jnp.asarray(alphas[i:i + 1]),
                                               t_start, t_stop, mask, steps, cfg))[0] for i in range(len(d))])


def body_measures(states: np.ndarray, target: np.ndarray, frame, threshold: float,
                  cfg: ModelConfig = ModelConfig()) -> dict:
    """What a body looks like in the intact body's frame. states: [..., H, W, C] ->
    {"shift_along", "shift_across", "length", "area", "loss"} each [...] (NaN where no cell
    lives; shift = the alive cells' centroid minus the frame's centroid, along / across the
    long axis, px; length = range of the alive cells' along-axis coordinates, px; area in
    cells). On the hex grid (``cfg.topology``) cells sit where the drawn image puts them
    (``analysis.rollouts.image_positions``, px of that image) and the loss compares that
    image (``euclidean``) with the target."""
    s = np.asarray(states)
    lead = s.shape[:-3]
    flat = s.reshape((-1,) + s.shape[-3:])
    grid = coordinate_grid(s.shape[-3:-1], frame, image_positions(s.shape[-3:-1], cfg))
    out = {k: np.full(len(flat), np.nan) for k in MEASURES}
    rgba = euclidean(np.clip(flat[..., :4], 0, 1), cfg)
    out["loss"] = ((rgba - np.asarray(target)[None]) ** 2).mean((1, 2, 3))
    for i, x in enumerate(flat):
        alive = x[..., 3] > threshold
        out["area"][i] = alive.sum()
        if alive.any():
            c = grid[alive]
            out["shift_along"][i] = c[:, 0].mean()
            out["shift_across"][i] = c[:, 1].mean()
            out["length"][i] = c[:, 0].max() - c[:, 0].min()
    return {k: v.reshape(lead) for k, v in out.items()}


MEASURES = ("shift_along", "shift_across", "length", "area", "loss")


def steering_measures(params, cfg: ModelConfig, x0, key, directions, doses, t_start: int, t_stop: int, mask,
                      steps: int, target: np.ndarray, frame, per_step=None) -> dict:
    """Body read-outs after steering: {measure: [D, N, B]} (``body_measures``) and "images":
    [D, N, H, W, 4] the final RGBA of replicate 0. The unsteered rollout (dose 0) is run
    once and shared by every direction. Arguments as ``steered_states``."""
    doses = np.asarray(doses, np.float32)
    nz = np.flatnonzero(doses != 0)
    d = _check_unit(directions)
    base = steered_states(params, cfg, x0, key, d[:1], [0.0], t_start, t_stop, mask, steps)[0, 0]  # [B, H, W, C]
    finals = np.broadcast_to(base, (len(d), len(doses)) + base.shape).copy()
    if len(nz):
        per = None if per_step is None else np.asarray(per_step, np.float32)[:, nz]
        finals[:, nz] = steered_states(params, cfg, x0, key, d, doses[nz], t_start, t_stop, mask, steps, per)
    out = body_measures(finals, target, frame, cfg.alive_threshold, cfg)
    out["images"] = euclidean(np.clip(finals[:, :, 0, ..., :4], 0, 1), cfg)  # as the body looks
    return out


def effects(values: np.ndarray, doses) -> tuple[np.ndarray, np.ndarray]:
    """Effect of each dose: the read-out minus the same replicate's unsteered read-out
    (dose 0; paired, same fire masks). values: [D, N, B] -> (mean over replicates [D, N],
    per replicate [D, N, B])."""
    v = np.asarray(values, float)
    zero = list(np.asarray(doses, float)).index(0.0)
    per = v - v[:, zero:zero + 1]
    n = np.isfinite(per).sum(-1)
    mean = np.where(n > 0, np.nansum(per, -1) / np.maximum(n, 1), np.nan)  # NaN where no body lived
    return mean, per


def random_band(random_effects: np.ndarray, level: float = 0.95) -> dict:
    """The random directions' band per dose. random_effects: [R, N] (each direction's mean
    effect) -> {"mean", "sd", "lo", "hi" (the ``level`` prediction interval of one more
    random direction's effect: mean +- t_{(1+level)/2, R-1} sd sqrt(1 + 1/R), Hahn & Meeker
    1991, "Statistical Intervals", ch. 4), "min", "max", "q_lo", "q_hi" (the 2.5 / 97.5 %
    quantiles), "n": finite random directions}: lists of N (None where n < 2)."""
    r = np.asarray(random_effects, float)
    out = {k: [] for k in ("mean", "sd", "lo", "hi", "min", "max", "q_lo", "q_hi", "n")}
    a = (1 - level) / 2
    for j in range(r.shape[1]):
        v = r[:, j][np.isfinite(r[:, j])]
        n = len(v)
        out["n"].append(n)
        if n < 2:
            for k in ("mean", "sd", "lo", "hi", "min", "max", "q_lo", "q_hi"):
                out[k].append(None)
            continue
        m, sd = float(v.mean()), float(v.std(ddof=1))
        half = t_quantile(1 - a, n - 1) * sd * np.sqrt(1 + 1 / n)
        out["mean"].append(m)
        out["sd"].append(sd)
        out["lo"].append(m - half)
        out["hi"].append(m + half)
        out["min"].append(float(v.min()))
        out["max"].append(float(v.max()))
        out["q_lo"].append(float(np.quantile(v, a)))
        out["q_hi"].append(float(np.quantile(v, 1 - a)))
    return out


def specificity(effect: np.ndarray, random_effects: np.ndarray, doses, level: float = 0.95) -> dict:
    """Is a direction's effect outside what norm-matched random directions do, dose by dose?

    effect: [N] the direction's mean effect per dose; random_effects: [R, N]. At each
    nonzero dose the direction is ``outside`` when its effect lies outside the random
    band's prediction interval *and* beyond every random direction. Under the null (the
    direction is one more random direction: exchangeable with them) the second condition
    alone has probability <= 2 / (R + 1) whatever the effects' distribution, the first
    ``1 - level`` when they are normal. -> {"outside": [bool or None (dose 0, or no finite
    effect)], "z": [(effect - random mean) / random sd], "rank_p": [(1 + #random at least
    as far from the random mean) / (R + 1), two-sided], "specific_doses": [the nonzero doses
    where outside]}."""
    e = np.asarray(effect, float)
    r = np.asarray(random_effects, float)
    band = random_band(r, level)
    doses = [float(x) for x in doses]
    out = {"outside": [], "z": [], "rank_p": [], "specific_doses": []}
    for j, dose in enumerate(doses):
        v = r[:, j][np.isfinite(r[:, j])]
        if dose == 0 or not np.isfinite(e[j]) or band["n"][j] < 2:
            out["outside"].append(None)
            out["z"].append(None)
            out["rank_p"].append(None)
            continue
        m, sd = band["mean"][j], band["sd"][j]
        beyond = e[j] > band["max"][j] or e[j] < band["min"][j]
        ok = bool(beyond and (e[j] > band["hi"][j] or e[j] < band["lo"][j]))
        out["outside"].append(ok)
        out["z"].append(float((e[j] - m) / sd) if sd > 0 else None)
        out["rank_p"].append(float((1 + np.sum(np.abs(v - m) >= abs(e[j] - m))) / (len(v) + 1)))
        if ok:
            out["specific_doses"].append(dose)
    return out


def random_false_positives(random_effects: np.ndarray, doses, level: float = 0.95) -> list:
    """The negative control on the data itself: each random direction tested against the
    other random directions' band (leave one out). random_effects: [R, N] -> per dose the
    rate of random directions called specific (``analysis.stats.proportion_ci``, Wilson,
    n = R), None at dose 0."""
    from analysis.stats import proportion_ci

    r = np.asarray(random_effects, float)
    calls = [specificity(r[i], np.delete(r, i, 0), doses, level)["outside"] for i in range(len(r))]
    return [None if float(d) == 0 else proportion_ci([bool(c[j]) for c in calls if c[j] is not None])
            for j, d in enumerate(doses)]


def fit_target(target, size: int) -> np.ndarray:
    """The target [h, w, 4] centred on a ``size`` grid (zero-padded or cropped); zeros when
    the model has no target."""
    out = np.zeros((size, size, 4), np.float32)
    if target is None:
        return out
    t = np.asarray(target, np.float32)
    h, w = t.shape[:2]
    r0, c0 = (size - h) // 2, (size - w) // 2
    rs, cs = max(0, -r0), max(0, -c0)
    rd, cd = max(0, r0), max(0, c0)
    hh, ww = min(h - rs, size - rd), min(w - cs, size - cd)
    out[rd:rd + hh, cd:cd + ww] = t[rs:rs + hh, cs:cs + ww]
    return out


REGIONS = ("all", "front", "back")


def region_mask(shape: tuple[int, int], frame, region: str, positions=None) -> np.ndarray:
    """[H, W] float32: 1 where cells may be steered. ``all``: everywhere; ``front`` /
    ``back``: the cells whose along-axis coordinate in ``frame`` is > 0 / < 0, cells at
    ``positions`` (as ``coordinate_grid``; on the hex grid the drawn image's: a straight cut)."""
    if region == "all":
        return np.ones(shape, np.float32)
    along = coordinate_grid(shape, frame, positions)[..., 0]
    return ((along > 0) if region == "front" else (along < 0)).astype(np.float32)


@dataclass(frozen=True)
class SteeringSettings:
    """steps: CA steps grown from the seed; t_start, t_stop: the steering window (t_stop
    None: to the end); doses: the total L2 norm of the push added to each steered cell over
    the window (state units; the same for every direction); replicates: rollouts per dose
    (fire masks; the n of the intervals); n_pcs: hidden-channel PCs steered; probe_coords:
    position probes whose directions are steered; n_random: random unit hidden directions
    (the control, >= 2; their band decides what is specific); level: of the random band's
    prediction interval; region: which cells are steered -- ``all`` alive cells, or only
    those in the ``front`` / ``back`` half of the intact body (along-axis coordinate > 0 /
    < 0 in its frame: a local push, as a bead soaked in a morphogen is placed on one side
    of an embryo)."""

    steps: int = 200
    t_start: int = 0
    t_stop: int | None = None
    doses: tuple[float, ...] = (-10.0, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0)
    replicates: int = 4
    n_pcs: int = 2
    probe_coords: tuple[str, ...] = ("along",)
    n_random: int = 16
    level: float = 0.95
    region: str = "all"

    def __post_init__(self):
        if self.region not in REGIONS:
            raise NCAError(f"unknown steering region {self.region!r}; choose from {', '.join(REGIONS)}")
        if self.steps < 1:
            raise NCAError(f"steps must be >= 1, got {self.steps}")
        stop = self.steps if self.t_stop is None else self.t_stop
        if not 0 <= self.t_start < stop <= self.steps:
            raise NCAError(f"the steering window [{self.t_start}, {stop}) must lie in [0, {self.steps}]")
        if 0.0 not in self.doses:
            raise NCAError("doses must include 0 (the unsteered reference)")
        if self.replicates < 2:
            raise NCAError("replicates must be >= 2 (intervals)")
        if self.n_random < 2:
            raise NCAError(f"n_random must be >= 2 (the random band), got {self.n_random}")
        if not 0 < self.level < 1:
            raise NCAError(f"level must be in (0, 1), got {self.level}")
        bad = set(self.probe_coords) - {"along", "across", "radius"}
        if bad:
            raise NCAError(f"unknown probe coordinates {sorted(bad)}")

    def as_dict(self) -> dict:
        return asdict(self)


STREAM_RANDOM = "steering_random_directions"


def steering_directions(states: np.ndarray, threshold: float, frame, settings: SteeringSettings,
                        key: jax.Array, positions=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unit state directions [D, C] to steer (PCs of the hidden channels, probe directions,
    random hidden directions: uniform on the sphere, stream ``STREAM_RANDOM``) and each
    one's spread sigma_d over the alive cells [D] (reported, no longer a dose unit).
    states: [B, H, W, C] intact final states."""
    from nca.rng import stream

    from analysis.representation.pca import fit_cell_pca

    C = states.shape[-1]
    alive = states[..., 3] > threshold
    hidden = states[..., 4:][alive].astype(np.float64)  # [n, C-4]
    names, dirs = [], []
    k = min(settings.n_pcs, C - 4)
    if k:
        pca = fit_cell_pca(states[..., 4:], alive, k)
        for j in range(k):
            names.append(f"pc{j + 1}")
            dirs.append(pca.components[j])
    grid = coordinate_grid(states.shape[1:3], frame, positions)
    coords = np.concatenate([grid[alive[b]] for b in range(len(states))])
    for c in settings.probe_coords:
        names.append(f"probe:{c}")
        dirs.append(probe_direction(hidden, coords[:, ("along", "across", "radius").index(c)]))
    rng = numpy_rng(stream(key, STREAM_RANDOM))
    for r in range(settings.n_random):
        v = rng.standard_normal(C - 4)
        names.append(f"random{r + 1}")
        dirs.append(v / np.linalg.norm(v))
    d = np.zeros((len(dirs), C), np.float32)
    d[:, 4:] = np.asarray(dirs)
    d /= np.linalg.norm(d, axis=1, keepdims=True)  # float32 unit norm
    sigma = (hidden @ d[:, 4:].T.astype(np.float64)).std(0)
    return names, d, sigma


def run_steering(model, settings: SteeringSettings, key: jax.Array, grid: int | None = None) -> dict:
    """Dose-response of steering along PC, probe and random directions, every direction
    pushed with the same norm at a dose.

    Returns JSON-ready {"settings", "grid", "frame", "direction_names", "push_norm_per_step"
    ([N]: |dose| / window, every direction), "directions": {name: {"sigma" (sd of the
    intact body's component along it, for reference), "doses", measure: [per dose interval
    over replicates], "effect": {measure: [per dose interval of the paired difference from
    dose 0]}, "slope": {measure: interval}, and for non-random directions "specificity":
    {measure: ``specificity``}}}, "random_band": {measure: ``random_band`` of the random
    directions' mean effects}, "random_false_positives": {measure: ``random_false_positives``},
    "random_slope_range": {measure: [min, max] over the random directions' mean slopes},
    "outside_count": ``outside_count``, "images": [D, N, H, W, 4] final RGBA of replicate 0 (NumPy, for figures)}.
    Slope: least squares of the measure on the dose per replicate (units per dose unit),
    interval over replicates."""
    cfg = model.model_config
    thr = cfg.alive_threshold
    size = grid or model.grid_size
    x0 = jnp.asarray(seed_state(size, size, cfg, batch=settings.replicates))
    t_stop = settings.steps if settings.t_stop is None else settings.t_stop
    one = np.zeros((1, cfg.channels), np.float32)
    one[0, -1] = 1.0
    intact = steered_states(model.params, cfg, x0, key, one, [0.0], 0, 1, np.ones((size, size)), settings.steps)[0, 0]
    if not (intact[..., 3] > thr).any():
        raise NCAError(f"{model.name} grows no body in {settings.steps} steps: nothing to steer")
    # on the hex grid the frame, the regions and every read-out are the drawn body's (cells
    # where the resampled image puts them); the push itself acts on the cells as stored
    pos = image_positions((size, size), cfg)
    frame = reference_frame(intact[..., 3], thr, pos)
    mask = region_mask((size, size), frame, settings.region, pos)
    target = fit_target(model.target_image() if model.target else None, size)
    names, dirs, sigma = steering_directions(intact, thr, frame, settings, key, pos)
    doses = np.asarray(settings.doses, np.float32)
    m_all = steering_measures(model.params, cfg, x0, key, dirs, doses, settings.t_start, t_stop, mask,
                              settings.steps, target, frame)
    images = m_all.pop("images")
    rnd = [i for i, n in enumerate(names) if n.startswith("random")]
    res, band, fps = {}, {}, {}
    eff = {k: effects(m_all[k], doses) for k in MEASURES}  # (mean [D, N], per replicate [D, N, B])
    for k in MEASURES:
        band[k] = random_band(eff[k][0][rnd], settings.level)
        fps[k] = random_false_positives(eff[k][0][rnd], doses, settings.level)
    for i, (name, sd) in enumerate(zip(names, sigma)):
        entry = {"sigma": float(sd), "doses": doses.tolist(), "slope": {}, "effect": {}}
        for k in MEASURES:
            m = m_all[k][i]  # [N, B]
            entry[k] = [interval(m[j]) for j in range(len(doses))]
            entry["effect"][k] = [interval(eff[k][1][i, j]) for j in range(len(doses))]
            slopes = [np.polyfit(doses, m[:, b], 1)[0] if np.isfinite(m[:, b]).all() else np.nan
                      for b in range(settings.replicates)]
            entry["slope"][k] = interval(slopes)
        if i not in rnd:
            entry["specificity"] = {k: specificity(eff[k][0][i], eff[k][0][rnd], doses, settings.level)
                                    for k in MEASURES}
        res[name] = entry
    out = {"settings": settings.as_dict(), "grid": size,
           "frame": {"centroid_rc": list(frame.centroid_rc), "axis_deg": frame.axis_deg, "elongation": frame.elongation},
           "direction_names": names, "push_norm_per_step": np.abs(push_per_step(doses, settings.t_start, t_stop)).tolist(),
           "directions": res, "random_band": band, "random_false_positives": fps, "images": images}
    out["random_slope_range"] = {k: [min(res[names[i]]["slope"][k]["mean"] for i in rnd),
                                     max(res[names[i]]["slope"][k]["mean"] for i in rnd)] for k in MEASURES}
    out["outside_count"] = outside_count(out)
    return out


# --------------------------------------------------------------------------- transplant


def disc(shape: tuple[int, int], centre_rc, radius: float, positions=None) -> np.ndarray:
    """bool [H, W]: cells within ``radius`` of ``centre_rc`` (row, col), cells at ``positions``
    (as ``coordinate_grid``; on the hex grid the drawn image's: a disc as drawn)."""
    r, c = positions if positions is not None else cell_rc(*shape)
    return (r - centre_rc[0]) ** 2 + (c - centre_rc[1]) ** 2 <= radius ** 2


def graft(states: np.ndarray, src_rc, dst_rc, radius: float, cfg: ModelConfig = ModelConfig()) -> np.ndarray:
    """Copy the cells of the disc at ``src_rc`` onto the disc at ``dst_rc`` (all channels),
    moved by the lattice translation nearest ``dst_rc - src_rc``. Positions are array indices,
    or on the hex grid (``cfg.topology``) the drawn image's pixels (``image_positions``).
    states: [..., H, W, C] -> a grafted copy."""
    out = np.array(states, copy=True)
    shape = states.shape[-3:-1]
    dr, dc = image_shift(dst_rc[0] - src_rc[0], dst_rc[1] - src_rc[1], cfg)
    src = disc(shape, src_rc, radius, image_positions(shape, cfg))
    rows, cols = np.nonzero(src)
    rr, cc = rows + dr, cols + dc
    ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    out[..., rr[ok], cc[ok], :] = states[..., rows[ok], cols[ok], :]
    return out


@dataclass(frozen=True)
class TransplantSettings:
    """t_graft: step of the graft (the body grown from the seed until then); after: steps
    grown on after it; every: record every N steps; radius: of the grafted disc (px);
    offset: the discs' centres at +-offset x the body's half-length along the long axis
    (donor at +, host at -); replicates: rollouts (the n of the intervals)."""

    t_graft: int = 100
    after: int = 100
    every: int = 10
    radius: float = 4.0
    offset: float = 0.5
    replicates: int = 4

    def __post_init__(self):
        if self.t_graft < 1 or self.after < self.every or self.every < 1 or self.after % self.every:
            raise NCAError("transplant: need t_graft >= 1 and after a positive multiple of every")
        if not 0 < self.offset < 1 or self.radius <= 0 or self.replicates < 2:
            raise NCAError("transplant: need 0 < offset < 1, radius > 0 and replicates >= 2")

    def as_dict(self) -> dict:
        return asdict(self)


def run_transplant(model, settings: TransplantSettings, key: jax.Array, grid: int | None = None,
                   probe: ProbeSettings = ProbeSettings()) -> dict:
    """Graft a disc of tissue from one end of the body to the other and decode its position.

    Returns JSON-ready {"settings", "donor_rc", "host_rc" (the discs' centres: array row/col,
    on the hex grid the drawn image's pixels, ``image_positions``), "steps" (after the graft),
    "identity_index": [interval over replicates per recorded step], "decoded": {"graft",
    "donor", "host": [mean decoded along-axis position per step] (replicate mean)},
    "images": {"intact", "grafted": [RGBA at the graft, at the end]} (NumPy, for figures)}."""
    cfg = model.model_config
    thr = cfg.alive_threshold
    S = settings
    grown = grow_states(model, S.t_graft, key, seeds=S.replicates, size=grid)[-1]  # [B, H, W, C]
    if not (grown[..., 3] > thr).any():
        raise NCAError(f"{model.name} grows no body in {S.t_graft} steps: nothing to graft")
    # on the hex grid the frame, the discs and the positions are the drawn body's
    pos = image_positions(grown.shape[1:3], cfg)
    frame = reference_frame(grown[..., 3], thr, pos)
    cgrid = coordinate_grid(grown.shape[1:3], frame, pos)
    alive0 = (grown[..., 3] > thr).any(0)
    half = np.abs(cgrid[..., 0][alive0]).max()
    ax = direction_vector(frame.axis_deg)  # (u, v): array (d_col, d_row) = (u, -v)

    def at(s):
        return (frame.centroid_rc[0] - s * ax[1], frame.centroid_rc[1] + s * ax[0])

    donor, host = at(S.offset * half), at(-S.offset * half)
    grafted0 = graft(grown, donor, host, S.radius, cfg)
    sub = jax.random.fold_in(key, 1)
    intact = grow_states(model, S.after, sub, x0=grown, t0=S.t_graft)[::S.every]  # [K, B, H, W, C]
    grafted = grow_states(model, S.after, sub, x0=grafted0, t0=S.t_graft)[::S.every]
    # position probe (kNN, hidden channels -> along) trained on the intact rollouts
    kp = jax.random.fold_in(key, STREAM_PROBE_CELLS)
    xs, ys = [], []
    for i, st in enumerate(intact):
        for b in range(S.replicates):
            f, y = cells_at(st[b, ..., 4:], st[b, ..., 3] > thr, cgrid, 400, jax.random.fold_in(kp, i * 1000 + b))
            xs.append(f)
            ys.append(y)
    xtr, ytr = np.concatenate(xs), np.concatenate(ys)
    dmask = {"host": disc(grown.shape[1:3], host, S.radius, pos),
             "donor": disc(grown.shape[1:3], donor, S.radius, pos)}

    def decoded(states, region) -> np.ndarray:  # [K, B] mean decoded along position of a disc's alive cells
        out = np.full(states.shape[:2], np.nan)
        for i in range(states.shape[0]):
            for b in range(states.shape[1]):
                live = (states[i, b, ..., 3] > thr) & dmask[region]
                if live.any():
                    out[i, b] = _fit_predict("knn", xtr, ytr, states[i, b][live][:, 4:], probe)[:, 0].mean()
        return out

    g, d, h = decoded(grafted, "host"), decoded(intact, "donor"), decoded(intact, "host")
    index = (g - h) / (d - h)
    steps = list(range(S.t_graft, S.t_graft + S.after + 1, S.every))
    return {"settings": S.as_dict(), "donor_rc": list(donor), "host_rc": list(host),
            "frame": {"centroid_rc": list(frame.centroid_rc), "axis_deg": frame.axis_deg},
            "steps": steps, "identity_index": [interval(index[i]) for i in range(len(steps))],
            "decoded": {"graft": np.nanmean(g, 1).tolist(), "donor": np.nanmean(d, 1).tolist(),
                        "host": np.nanmean(h, 1).tolist()},
            "images": {"intact": euclidean(np.asarray(to_rgba(intact[[0, -1], 0])), cfg),
                       "grafted": euclidean(np.asarray(to_rgba(grafted[[0, -1], 0])), cfg)}}


def outside_count(steer: dict) -> dict:
    """How many (direction, read-out, dose) tests of a ``run_steering`` report come out
    specific, beside how many random directions would (the multiple-comparison check: at a
    per-test false-positive rate f, about f x tests cells are outside by chance). -> {"tests",
    "outside", "expected_by_chance" (sum over the tests of the leave-one-out false-positive
    rate of the random directions at that read-out and dose), "cells": ["name read-out
    dose", ...] the ones outside}."""
    tests, cells, expected = 0, [], 0.0
    doses = steer["settings"]["doses"]
    for n in steer["direction_names"]:
        spec = steer["directions"][n].get("specificity")
        if spec is None:
            continue
        for k, sp in spec.items():
            for j, o in enumerate(sp["outside"]):
                if o is None:
                    continue
                tests += 1
                fp = steer["random_false_positives"][k][j]
                expected += fp["mean"] if fp and fp["mean"] is not None else 0.0
                if o:
                    cells.append(f"{n} {k} {doses[j]:g}")
    return {"tests": tests, "outside": len(cells), "expected_by_chance": expected, "cells": cells}


# --------------------------------------------------------------------------- across models


def across_models(reports: list[dict], measure: str = "length") -> dict:
    """A claim about models, not fire masks: each direction's specificity over independently
    trained models. reports: ``run_steering`` outputs (one per model, same doses and
    directions) -> {"doses", "n_models", direction: {"z": [per dose mean_ci over models of
    the direction's z against its own model's random band], "effect": [per dose mean_ci over
    models of its mean effect], "random_band_sd": [per dose mean over models], "outside":
    [per dose proportion_ci (Wilson) over models of being outside the band]}} (None at dose 0)."""
    from analysis.stats import mean_ci, proportion_ci

    if not reports:
        raise NCAError("across_models needs at least one steering report")
    doses = reports[0]["settings"]["doses"]
    names = [n for n in reports[0]["direction_names"] if not n.startswith("random")]
    out = {"doses": doses, "n_models": len(reports), "measure": measure}
    for n in names:
        sp = [r["directions"][n]["specificity"][measure] for r in reports]
        eff = [[r["directions"][n]["effect"][measure][j]["mean"] for r in reports] for j in range(len(doses))]
        out[n] = {
            "z": [None if d == 0 else mean_ci([np.nan if s["z"][j] is None else s["z"][j] for s in sp])
                  for j, d in enumerate(doses)],
            "effect": [None if d == 0 else mean_ci([np.nan if v is None else v for v in eff[j]])
                       for j, d in enumerate(doses)],
            "random_band_sd": [None if d == 0 else float(np.nanmean([np.nan if r["random_band"][measure]["sd"][j] is None
                                                                     else r["random_band"][measure]["sd"][j]
                                                                     for r in reports]))
                               for j, d in enumerate(doses)],
            "outside": [None if d == 0 else proportion_ci([bool(s["outside"][j]) for s in sp])
                        for j, d in enumerate(doses)],
        }
    return out
