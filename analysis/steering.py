"""Causal tests of positional codes: steering along a direction, and transplants.

Probes (``analysis.positional``) say what a state *encodes*; these ask what the rule *does*
with it, by intervening through the "state" hook of ``nca.model.rollout`` (see
``analysis.interventions`` for the hook conventions).

* **Steering** (activation addition, as in Turner et al. 2023, "Activation addition:
  steering language models without optimization", arXiv:2308.10248; here on a cellular
  automaton): at every step of a window ``[t_start, t_stop)`` every alive cell (or the
  cells of a region) gets ``dose * sigma_d * d / (t_stop - t_start)`` added to its state,
  with ``d`` a unit direction over the 16 channels (a PC loading or a position probe's
  direction embedded in the hidden channels) and ``sigma_d`` the spread (sd over the alive
  cells of the intact body) of the state's component along ``d``: a dose is the *total*
  push over the window in units of that spread (dose 1: one sd, if the rule did not
  respond).
  The dose-response curves are what the body does at the end: its centroid's shift along
  the intact body's long axis (px), its length along that axis (px), its area (alive
  cells) and its loss to the target. Control: the same doses along random unit directions
  in the hidden channels (named PRNG stream): a direction matters only where its curve
  leaves the random ones' band.
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

from .axes import direction_vector
from .interventions import in_window
from .positional import (ProbeSettings, _fit_predict, cells_at, coordinate_grid, interval, numpy_rng,
                         probe_direction, reference_frame)

STREAM_RANDOM_DIRECTIONS = 21
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


def body_measures(states: np.ndarray, target: np.ndarray, frame, threshold: float) -> dict:
    """What a body looks like in the intact body's frame. states: [..., H, W, C] ->
    {"shift_along", "shift_across", "length", "area", "loss"} each [...] (NaN where no cell
    lives; shift = the alive cells' centroid minus the frame's centroid, along / across the
    long axis, px; length = range of the alive cells' along-axis coordinates, px)."""
    s = np.asarray(states)
    lead = s.shape[:-3]
    flat = s.reshape((-1,) + s.shape[-3:])
    grid = coordinate_grid(s.shape[-3:-1], frame)
    out = {k: np.full(len(flat), np.nan) for k in ("shift_along", "shift_across", "length", "area", "loss")}
    rgba = np.clip(flat[..., :4], 0, 1)
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


def region_mask(shape: tuple[int, int], frame, region: str) -> np.ndarray:
    """[H, W] float32: 1 where cells may be steered. ``all``: everywhere; ``front`` /
    ``back``: the cells whose along-axis coordinate in ``frame`` is > 0 / < 0."""
    if region == "all":
        return np.ones(shape, np.float32)
    along = coordinate_grid(shape, frame)[..., 0]
    return ((along > 0) if region == "front" else (along < 0)).astype(np.float32)


@dataclass(frozen=True)
class SteeringSettings:
    """steps: CA steps grown from the seed; t_start, t_stop: the steering window (t_stop
    None: to the end); doses: total pushes over the window in units of the direction's
    spread (sigma_d); replicates: rollouts per dose (fire masks; the n of the intervals); n_pcs:
    hidden-channel PCs steered; probe_coords: position probes whose directions are steered;
    n_random: random hidden directions (the control); region: which cells are steered --
    ``all`` alive cells, or only those in the ``front`` / ``back`` half of the intact body
    (along-axis coordinate > 0 / < 0 in its frame: a local push, as a bead soaked in a
    morphogen is placed on one side of an embryo)."""

    steps: int = 200
    t_start: int = 0
    t_stop: int | None = None
    doses: tuple[float, ...] = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
    replicates: int = 4
    n_pcs: int = 2
    probe_coords: tuple[str, ...] = ("along",)
    n_random: int = 3
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
        bad = set(self.probe_coords) - {"along", "across", "radius"}
        if bad:
            raise NCAError(f"unknown probe coordinates {sorted(bad)}")

    def as_dict(self) -> dict:
        return asdict(self)


def steering_directions(states: np.ndarray, threshold: float, frame, settings: SteeringSettings,
                        key: jax.Array) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unit state directions [D, C] to steer (PCs of the hidden channels, probe directions,
    random hidden directions) and each one's spread sigma_d over the alive cells.
    states: [B, H, W, C] intact final states."""
    from .pca import fit_cell_pca

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
    grid = coordinate_grid(states.shape[1:3], frame)
    coords = np.concatenate([grid[alive[b]] for b in range(len(states))])
    for c in settings.probe_coords:
        names.append(f"probe:{c}")
        dirs.append(probe_direction(hidden, coords[:, ("along", "across", "radius").index(c)]))
    rng = numpy_rng(jax.random.fold_in(key, STREAM_RANDOM_DIRECTIONS))
    for r in range(settings.n_random):
        v = rng.standard_normal(C - 4)
        names.append(f"random{r + 1}")
        dirs.append(v / np.linalg.norm(v))
    d = np.zeros((len(dirs), C), np.float32)
    d[:, 4:] = np.asarray(dirs)
    sigma = (hidden @ d[:, 4:].T.astype(np.float64)).std(0)
    return names, d, sigma


def run_steering(model, settings: SteeringSettings, key: jax.Array, grid: int | None = None) -> dict:
    """Dose-response of steering along PC, probe and random directions.

    Returns JSON-ready {"settings", "frame", "directions": {name: {"sigma", "doses",
    measure: [per dose interval over replicates], "slope": {measure: interval}}},
    "random_slope_range": {measure: [min, max] over the random directions' mean slopes},
    "images": [D, N, H, W, 4] final RGBA of replicate 0 (NumPy, for figures)}.
    Slope: least squares of the measure on the dose per replicate (units per sigma per
    step), interval over replicates."""
    cfg = model.model_config
    thr = cfg.alive_threshold
    size = grid or model.grid_size
    x0 = jnp.asarray(seed_state(size, size, cfg, batch=settings.replicates))
    t_stop = settings.steps if settings.t_stop is None else settings.t_stop
    mask = jnp.ones((size, size), jnp.float32)
    one = jnp.zeros((1, cfg.channels), jnp.float32)
    intact = np.asarray(steered_finals(model.params, x0, key, one, jnp.zeros((1, 1)), 0, 1, mask, settings.steps,
                                       cfg))[0, 0]
    if not (intact[..., 3] > thr).any():
        raise NCAError(f"{model.name} grows no body in {settings.steps} steps: nothing to steer")
    frame = reference_frame(intact[..., 3], thr)
    mask = jnp.asarray(region_mask((size, size), frame, settings.region))
    target = fit_target(model.target_image() if model.target else None, size)
    names, dirs, sigma = steering_directions(intact, thr, frame, settings, key)
    doses = np.asarray(settings.doses, np.float32)
    per_step = (doses[None, :] * sigma[:, None] / (t_stop - settings.t_start)).astype(np.float32)  # [D, N]
    finals = np.asarray(steered_finals(model.params, x0, key, jnp.asarray(dirs), jnp.asarray(per_step),
                                       settings.t_start, t_stop, mask, settings.steps, cfg))
    m_all = body_measures(finals, target, frame, thr)  # each [D, N, B]
    measures = ("shift_along", "shift_across", "length", "area", "loss")
    res = {}
    for i, (name, sd) in enumerate(zip(names, sigma)):
        m = {k: v[i] for k, v in m_all.items()}  # [N, B]
        entry = {"sigma": float(sd), "doses": doses.tolist(), "slope": {}}
        for k in measures:
            entry[k] = [interval(m[k][j]) for j in range(len(doses))]
            slopes = [np.polyfit(doses, m[k][:, b], 1)[0] if np.isfinite(m[k][:, b]).all() else np.nan
                      for b in range(settings.replicates)]
            entry["slope"][k] = interval(slopes)
        res[name] = entry
    images = np.clip(finals[:, :, 0, ..., :4], 0, 1)  # [D, N, H, W, 4] replicate 0
    rnd = [n for n in names if n.startswith("random")]
    out = {"settings": settings.as_dict(), "grid": size,
           "frame": {"centroid_rc": list(frame.centroid_rc), "axis_deg": frame.axis_deg, "elongation": frame.elongation},
           "directions": res, "direction_names": names, "images": images}
    if rnd:
        out["random_slope_range"] = {k: [min(res[n]["slope"][k]["mean"] for n in rnd),
                                         max(res[n]["slope"][k]["mean"] for n in rnd)] for k in measures}
    return out


# --------------------------------------------------------------------------- transplant


def disc(shape: tuple[int, int], centre_rc, radius: float) -> np.ndarray:
    """bool [H, W]: cells within ``radius`` of ``centre_rc`` (row, col)."""
    r, c = np.indices(shape)
    return (r - centre_rc[0]) ** 2 + (c - centre_rc[1]) ** 2 <= radius ** 2


def graft(states: np.ndarray, src_rc, dst_rc, radius: float) -> np.ndarray:
    """Copy the cells of the disc at ``src_rc`` onto the disc at ``dst_rc`` (all channels),
    integer-shifted. states: [..., H, W, C] -> a grafted copy."""
    out = np.array(states, copy=True)
    shape = states.shape[-3:-1]
    dr = int(round(dst_rc[0] - src_rc[0]))
    dc = int(round(dst_rc[1] - src_rc[1]))
    src = disc(shape, src_rc, radius)
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

    Returns JSON-ready {"settings", "donor_rc", "host_rc", "steps" (after the graft),
    "identity_index": [interval over replicates per recorded step], "decoded": {"graft",
    "donor", "host": [mean decoded along-axis position per step] (replicate mean)},
    "images": {"intact", "grafted": [RGBA at the graft, at the end]} (NumPy, for figures)}."""
    from .rollouts import grow_states

    cfg = model.model_config
    thr = cfg.alive_threshold
    S = settings
    grown = grow_states(model, S.t_graft, key, seeds=S.replicates, size=grid)[-1]  # [B, H, W, C]
    if not (grown[..., 3] > thr).any():
        raise NCAError(f"{model.name} grows no body in {S.t_graft} steps: nothing to graft")
    frame = reference_frame(grown[..., 3], thr)
    cgrid = coordinate_grid(grown.shape[1:3], frame)
    alive0 = (grown[..., 3] > thr).any(0)
    half = np.abs(cgrid[..., 0][alive0]).max()
    ax = direction_vector(frame.axis_deg)  # (u, v): array (d_col, d_row) = (u, -v)

    def at(s):
        return (frame.centroid_rc[0] - s * ax[1], frame.centroid_rc[1] + s * ax[0])

    donor, host = at(S.offset * half), at(-S.offset * half)
    grafted0 = graft(grown, donor, host, S.radius)
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
    dmask = {"host": disc(grown.shape[1:3], host, S.radius), "donor": disc(grown.shape[1:3], donor, S.radius)}

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
            "images": {"intact": np.asarray(to_rgba(intact[[0, -1], 0])), "grafted": np.asarray(to_rgba(grafted[[0, -1], 0]))}}
