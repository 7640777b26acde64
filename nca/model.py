"""The Growing Neural Cellular Automaton of Mordvintsev et al., Distill 2020.

Pure functions only. A state is ``[..., H, W, C]`` (any number of leading batch axes):
channels 0-2 are RGB premultiplied by alpha, channel 3 is alpha ("alive-ness"), the rest
are hidden. One CA step (the article's ``CAModel.call``):

1. ``pre = alive(x)``: 3x3 max-pool of alpha > 0.1;
2. perception ``[x, Kx * x, Ky * x]`` per channel (identity, Sobel-x, Sobel-y), 3C features;
3. per-cell MLP 3C -> hidden (ReLU) -> C gives the update ``dx``;
4. each cell fires independently with probability ``fire_rate`` (no rescaling):
   ``x + dx * fire``;
5. ``post = alive(x)``; cells alive neither before nor after are zeroed: ``x * (pre & post)``.

Lowering (measured on a 2-core CPU, see ``bench/``): XLA's CPU convolutions are slow for
this shape, so perception is a pad-and-slice stencil (separable Sobel: smooth, then
difference) followed by one matmul, and the 3x3 max-pool is a pad-and-slice max.

The fast path (``fast_step``: the same step computed only where an update can matter, with
its custom VJP and vmap rules) is in the private ``nca/_fast.py``, re-exported here.

Conventions: array axis -2 is x (image columns, W, +x to the right), axis -3 is y (image
rows, H, +y *down* as stored). ``Sobel-x`` is d/dx, ``Sobel-y`` is d/dy in those axes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .errors import NCAError

Array = jax.Array
Params = dict  # {"w1": [3C, hidden], "b1": [hidden], "w2": [hidden, C], "b2": [C]}

# Hook points, in the order a step visits them. A hook is ``fn(value, t) -> value`` with
# ``t`` the (traced) global step index; it may replace the value (zero a channel, patch
# in another rollout's activations, ...). See ``step``.
HOOK_POINTS = ("state", "perception", "hidden", "update", "fire", "alive")
RECORDABLE = ("state", "perception", "hidden", "update", "fire", "alive")


# Perception kinds: the filters each channel is read with, in feature (band) order. "sobel"
# is the article's [identity, d/dx, d/dy]; "laplacian" is the isotropic NCA's rotation-
# invariant [identity, Laplacian] (Mordvintsev, Randazzo & Fouts 2022, "Growing Isotropic NCA", arXiv 2205.01681);
# "sobel+laplacian" the texture NCA's [identity, d/dx, d/dy, Laplacian] (Niklasson et al.,
# Distill 2021, "Self-Organising Textures"). The steerable NCAs (Randazzo, Mordvintsev &
# Fouts 2023, "Growing Steerable Neural Cellular Automata", arXiv 2302.10197) read
# [identity, Laplacian, p_x, p_y]: the Sobel pair turned into each cell's own frame, whose
# angle is the last channel ("steerable-angle": s_theta, which the cell steers but does not
# perceive) or the direction of the last channel's gradient ("steerable-gradient": s_align,
# which the cell does perceive) -- ``perceive``.
PERCEPTIONS = {
    "sobel": ("identity", "dx", "dy"),
    "laplacian": ("identity", "laplacian"),
    "sobel+laplacian": ("identity", "dx", "dy", "laplacian"),
    "steerable-angle": ("identity", "laplacian", "px", "py"),
    "steerable-gradient": ("identity", "laplacian", "px", "py"),
}
STEERABLE = ("steerable-angle", "steerable-gradient")
# The ModelConfig fields that change the step itself: any of them away from its default (the
# article's) makes a variant (``ModelConfig.is_article`` False, ``variant_fields`` names them).
STEP_VARIANT_FIELDS = ("perception", "padding", "life", "topology", "clamp", "saturation")
# "zeros": cells outside the grid read 0 (the article); "circular": the grid is a torus
# (the texture NCAs).
PADDINGS = ("zeros", "circular")
# Life masking: "pre-post" (the article: cells alive neither before nor after a step are
# zeroed); "none" (texture NCAs: every cell lives); "fired-pre" (the isotropic NCA demo: a
# cell that fires with no live neighbourhood is zeroed, nothing else is masked).
LIFE_RULES = ("pre-post", "none", "fired-pre")
# "square": 8 neighbours; "hex": a hexagonal grid in axial coordinates stored on the square
# array -- cell (row i, col j) neighbours (i, j+-1), (i+-1, j), (i-1, j-1), (i+1, j+1) (the
# isotropic NCA demo's layout; its Laplacian is ``HEX_LAPLACIAN``).
TOPOLOGIES = ("square", "hex")
# "center": one cell at (H//2, W//2) with channels 3.. = 1 (the article); "zeros": an all-zero
# grid (texture NCAs, which have no alive masking and grow from their biases).
SEEDS = ("center", "zeros")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the update rule. Defaults are the article's.

    channels: 16 (RGBA + 12 hidden); hidden: 128 units of the per-cell MLP;
    fire_rate: 0.5, the probability a cell applies its update in a step;
    alive_threshold: 0.1 on the 3x3 max-pooled alpha;
    angle_deg: rotation of the Sobel pair (the article's rotation experiment), counter-
    clockwise as the image is viewed;
    neighbour_gradients: False stops gradients where a cell reads its neighbours
    (the Sobel terms), leaving only a cell's own state history differentiable --
    the "selfish credit" variant. The forward pass is unchanged.
    """

    channels: int = 16
    hidden: int = 128
    fire_rate: float = 0.5
    alive_threshold: float = 0.1
    angle_deg: float = 0.0
    neighbour_gradients: bool = True
    # Architecture variants (docs/importing.md); the defaults are the article's CA, and
    # every config written before these fields existed loads as that CA.
    perception: str = "sobel"
    padding: str = "zeros"
    life: str = "pre-post"
    seed_pattern: str = "center"
    topology: str = "square"
    clamp: float = 0.0
    # texture NCAs (Niklasson et al. 2021, ``nca.formats.texture``): perception clipped to
    # [-s, s] (the Laplacian band to [-s/2, s/2]: theirs is twice ours), hidden activations
    # to [0, s], the update to [-s, s] (their training's fake-quantisation ranges, without
    # its 8-bit rounding); 0: none
    saturation: float = 0.0

    def __post_init__(self):
        if self.channels < 4:
            raise NCAError(f"channels must be >= 4 (RGBA + hidden), got {self.channels}")
        if self.hidden < 1:
            raise NCAError(f"hidden must be >= 1, got {self.hidden}")
        if not 0.0 < self.fire_rate <= 1.0:
            raise NCAError(f"fire_rate must be in (0, 1], got {self.fire_rate}")
        for name, allowed in (("perception", PERCEPTIONS), ("padding", PADDINGS), ("life", LIFE_RULES),
                              ("seed_pattern", SEEDS), ("topology", TOPOLOGIES)):
            if getattr(self, name) not in allowed:
                raise NCAError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.perception in STEERABLE and self.channels < 5:
            raise NCAError(f"perception {self.perception!r} steers by the last channel, which must not be alpha: "
                           f"channels must be >= 5, got {self.channels}")
        if self.topology == "hex" and self.perception != "laplacian":
            raise NCAError(f"topology 'hex' has no Sobel pair: perception must be 'laplacian', got {self.perception!r}")
        if self.clamp < 0:
            raise NCAError(f"clamp must be >= 0 (0: none), got {self.clamp}")
        if self.saturation < 0:
            raise NCAError(f"saturation must be >= 0 (0: none), got {self.saturation}")

    @property
    def kernels(self) -> int:
        """Filters per channel in the perception vector (3 for the article's Sobel pair)."""
        return len(PERCEPTIONS[self.perception])

    @property
    def frame_channel(self) -> int | None:
        """The channel that turns every cell's Sobel pair (the steerable NCAs' s_theta or
        s_align: the last), or None. It acts on the other channels' perception slots, so an
        analysis may not remove it by zeroing its own rows of w1 alone."""
        return self.channels - 1 if self.perception in STEERABLE else None

    @property
    def perception_dim(self) -> int:
        return self.kernels * self.channels

    @property
    def variant_fields(self) -> dict:
        """{field: value} of the fields in ``STEP_VARIANT_FIELDS`` that differ from the
        article's (their defaults): empty for the article's step."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in STEP_VARIANT_FIELDS and getattr(self, f.name) != f.default}

    @property
    def is_article(self) -> bool:
        """The article's architecture (any width, angle, fire rate): the fast path's domain.
        A variant (other perception, circular padding, no alive masking) runs the reference
        step."""
        return not self.variant_fields

    @property
    def hidden_channels(self) -> int:
        return self.channels - 4

    @property
    def flop_per_cell_update(self) -> int:
        """Useful forward FLOP per cell and step: 3x3 depthwise filters + the MLP.

        17,248 for the article's model (the figure the issue and peers count with).
        """
        c, h, k = self.channels, self.hidden, self.kernels
        return 2 * (9 * k * c + k * c * h + h * c)


# --------------------------------------------------------------------------- parameters


def init_params(key: Array, cfg: ModelConfig = ModelConfig()) -> Params:
    """Article initialisation: Keras defaults for layer 1 (Glorot-uniform weights, zero
    bias) and all-zero layer 2, so an untrained CA does nothing ("do-nothing" start)."""
    fan_in, fan_out = cfg.perception_dim, cfg.hidden
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w1 = jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {
        "w1": w1,
        "b1": jnp.zeros((cfg.hidden,), jnp.float32),
        "w2": jnp.zeros((cfg.hidden, cfg.channels), jnp.float32),
        "b2": jnp.zeros((cfg.channels,), jnp.float32),
    }


# --------------------------------------------------------------------------- kernels


IDENTITY_KERNEL = np.outer([0, 1, 0], [0, 1, 0]).astype(np.float32)
# d/dx along W: outer([1,2,1], [-1,0,1]) / 8 (the article's ``dx``), applied as a
# cross-correlation like tf.nn.depthwise_conv2d; d/dy is its transpose.
SOBEL_X = np.outer([1, 2, 1], [-1, 0, 1]).astype(np.float32) / 8.0
SOBEL_Y = SOBEL_X.T.copy()
# The 9-point Laplacian [[1,2,1],[2,-12,2],[1,2,1]] (the isotropic and texture NCAs' kernel),
# scaled by 1/16 here; importers fold a source's own scale into its weights.
LAPLACIAN = np.array([[1, 2, 1], [2, -12, 2], [1, 2, 1]], np.float32) / 16.0
# The hexagonal Laplacian in axial coordinates (6 neighbours of weight 2, centre -12), same
# 1/16 scale: the isotropic NCA demo's kernel (Mordvintsev et al. 2022).
HEX_LAPLACIAN = np.array([[2, 2, 0], [2, -12, 2], [0, 2, 2]], np.float32) / 16.0
# Offsets (row, col) of the hex neighbours, matching HEX_LAPLACIAN's non-zero taps.
HEX_NEIGHBOURS = ((-1, -1), (-1, 0), (0, -1), (0, 1), (1, 0), (1, 1))


def lattice_points(rows, cols, topology: str = "square") -> np.ndarray:
    """Where cells sit, in cell spacings, image convention ((x, y), y down): (col, row) on the
    square grid; on the hex grid (axial coordinates) the lattice point ``(col - row / 2, row *
    sqrt(3) / 2)``, where each of a cell's 6 neighbours (``HEX_NEIGHBOURS``) is at distance 1
    (the isotropic NCA demo's ``cell2wld``, y down). rows, cols: [...] -> [..., 2] float64."""
    r, c = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    if topology == "hex":
        return np.stack([c - r / 2.0, r * np.sqrt(3.0) / 2.0], axis=-1)
    return np.stack([c, r], axis=-1)


def perception_kernels(angle_deg: float = 0.0) -> np.ndarray:
    """The three 3x3 filters ``[identity, kx, ky]``, ``[3, 3, 3]`` (filter, row, col).

    Rotation as in the article: ``kx = c*dx - s*dy``, ``ky = s*dx + c*dy``.
    """
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.stack([IDENTITY_KERNEL, c * SOBEL_X - s * SOBEL_Y, s * SOBEL_X + c * SOBEL_Y])


def _pad_hw(x: Array, value: float = 0.0, padding: str = "zeros") -> Array:
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    if padding == "circular":
        return jnp.pad(x, pad, mode="wrap")
    return jnp.pad(x, pad, constant_values=value)


def sobel(x: Array, padding: str = "zeros") -> tuple[Array, Array]:
    """Unrotated Sobel derivatives of every channel, zero (or circular) padding ('SAME').

    x: [..., H, W, C] -> (d/dx, d/dy), each [..., H, W, C]. Separable: smooth [1,2,1] one
    way, difference [-1,0,1] the other -- 4 adds per output instead of 9 MACs.
    """
    p = _pad_hw(x, padding=padding)
    d = p[..., :, 2:, :] - p[..., :, :-2, :]  # difference along x: [..., H+2, W, C]
    sx = (d[..., :-2, :, :] + 2.0 * d[..., 1:-1, :, :] + d[..., 2:, :, :]) * 0.125
    s = p[..., :, :-2, :] + 2.0 * p[..., :, 1:-1, :] + p[..., :, 2:, :]  # smooth along x
    sy = (s[..., 2:, :, :] - s[..., :-2, :, :]) * 0.125
    return sx, sy


def laplacian(x: Array, padding: str = "zeros") -> Array:
    """The 9-point Laplacian (``LAPLACIAN``) of every channel. x: [..., H, W, C] -> same.

    Separable: [1,2,1] (x) [1,2,1] - 16 * identity, so the same 4 adds as a Sobel term.
    """
    p = _pad_hw(x, padding=padding)
    s = p[..., :, :-2, :] + 2.0 * p[..., :, 1:-1, :] + p[..., :, 2:, :]  # smooth along x
    box = s[..., :-2, :, :] + 2.0 * s[..., 1:-1, :, :] + s[..., 2:, :, :]
    return (box - 16.0 * x) * 0.0625


def hex_laplacian(x: Array, padding: str = "zeros") -> Array:
    """``HEX_LAPLACIAN`` of every channel (6 taps). x: [..., H, W, C] -> same."""
    p = _pad_hw(x, padding=padding)
    h, w = x.shape[-3], x.shape[-2]
    ring = sum(p[..., 1 + di:1 + di + h, 1 + dj:1 + dj + w, :] for di, dj in HEX_NEIGHBOURS)
    return (ring - 6.0 * x) * 0.125


def hex_max(a: Array, padding: str = "zeros") -> Array:
    """Max of a cell and its 6 hex neighbours (padding never wins). a: [..., H, W, 1]."""
    p = _pad_hw(a, -jnp.inf, padding)
    h, w = a.shape[-3], a.shape[-2]
    out = a
    for di, dj in HEX_NEIGHBOURS:
        out = jnp.maximum(out, p[..., 1 + di:1 + di + h, 1 + dj:1 + dj + w, :])
    return out


def perceive(x: Array, angle_deg: float = 0.0, neighbour_gradients: bool = True,
             kind: str = "sobel", padding: str = "zeros", topology: str = "square") -> Array:
    """Perception vector of every cell. x: [..., H, W, C] -> [..., H, W, K*C].

    Feature order is *band* order: ``[identity (C), kx (C), ky (C)]`` (the published
    models' order; the TF notebook interleaved per channel instead). kind (``PERCEPTIONS``)
    adds or replaces bands: "laplacian" is ``[identity, lap]``, "sobel+laplacian" is
    ``[identity, kx, ky, lap]``; the steerable kinds are ``[identity, lap, p_x, p_y]`` with
    the Sobel pair turned into each cell's own frame (``_steered``). The Laplacian is
    rotation-invariant, so ``angle_deg`` turns only the Sobel pair.
    """
    neighbours = x if neighbour_gradients else jax.lax.stop_gradient(x)
    bands = [x]
    if kind in ("sobel", "sobel+laplacian"):
        sx, sy = sobel(neighbours, padding)
        if angle_deg:
            a = np.deg2rad(angle_deg)
            c, s = float(np.cos(a)), float(np.sin(a))
            sx, sy = c * sx - s * sy, s * sx + c * sy
        bands += [sx, sy]
    if kind in ("laplacian", "sobel+laplacian"):
        bands.append(hex_laplacian(neighbours, padding) if topology == "hex" else laplacian(neighbours, padding))
    if kind in STEERABLE:
        return _steered(x, neighbours, angle_deg, kind, padding)
    return jnp.concatenate(bands, axis=-1)


def _steered(x: Array, neighbours: Array, angle_deg: float, kind: str, padding: str) -> Array:
    """The steerable NCAs' perception (Randazzo et al. 2023, eqs. of "angle-based" and
    "gradient-based steering"): x [..., H, W, C] -> [..., H, W, 4C], bands
    ``[s, K_lap * s, p_x, p_y]`` with ``[p_x; p_y] = [[c, s], [-s, c]] [K_sobx * s; K_soby * s]``
    (our ``sobel``: x along columns, y along rows downward).

    "steerable-angle": (c, s) = (cos, sin) of the last channel s_theta (radians). The cell
    steers s_theta through its update but does not perceive it: its slot is 0 in every band.
    "steerable-gradient": (c, s) = g / max(|g|, 1), g the Sobel gradient of the last channel
    s_align (a lone cell or a flat field has no frame: its gradients read ~0); s_align is
    perceived in the identity and Laplacian bands, its own steered gradient slot is 0.
    Zeroed slots keep every band C wide (``ModelConfig.perception_dim``, band-indexed
    removals); their rows of w1 never act.
    """
    sx, sy = sobel(neighbours, padding)
    if angle_deg:  # the article's rotation experiment turns the sensors before they are steered
        a = np.deg2rad(angle_deg)
        c0, s0 = float(np.cos(a)), float(np.sin(a))
        sx, sy = c0 * sx - s0 * sy, s0 * sx + c0 * sy
    if kind == "steerable-angle":
        theta = x[..., -1:]
        c, s = jnp.cos(theta), jnp.sin(theta)
    else:
        gx, gy = sx[..., -1:], sy[..., -1:]
        n2 = gx * gx + gy * gy
        norm = jnp.where(n2 > 1.0, jnp.sqrt(jnp.where(n2 > 1.0, n2, 1.0)), 1.0)  # no NaN gradient at 0
        c, s = gx / norm, gy / norm
    keep = jnp.ones(x.shape[-1], x.dtype).at[-1].set(0.0)  # the frame channel's own slot
    lap = laplacian(neighbours, padding)
    ident = x * keep if kind == "steerable-angle" else x
    lap = lap * keep if kind == "steerable-angle" else lap
    return jnp.concatenate([ident, lap, (c * sx + s * sy) * keep, (c * sy - s * sx) * keep], axis=-1)


def _life_mask(x: Array, cfg: "ModelConfig") -> Array:
    """``alive_mask`` on the config's grid: the hex neighbourhood for ``topology="hex"``."""
    if cfg.topology == "hex":
        return hex_max(x[..., 3:4], cfg.padding) > cfg.alive_threshold
    return max_pool3(x[..., 3:4], cfg.padding) > cfg.alive_threshold


def max_pool3(a: Array, padding: str = "zeros") -> Array:
    """3x3 max-pool, stride 1, 'SAME' (padding never wins; "circular" wraps). a: [..., H, W, 1]."""
    p = _pad_hw(a, -jnp.inf, padding)
    rows = jnp.maximum(jnp.maximum(p[..., :-2, :, :], p[..., 1:-1, :, :]), p[..., 2:, :, :])
    return jnp.maximum(jnp.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def alive_mask(x: Array, threshold: float = 0.1) -> Array:
    """Cells that are alive or neighbour an alive cell. x: [..., H, W, C] -> bool [..., H, W, 1]."""
    return max_pool3(x[..., 3:4]) > threshold


# --------------------------------------------------------------------------- step


Hooks = Mapping[str, Callable[[Array, Array], Array]]


def check_hooks(hooks: Hooks | None) -> None:
    """Raise ``ValueError`` naming any key of ``hooks`` that is not a hook point.

    A misspelt point (``{"hiden": f}``) would otherwise never be called: the run would
    silently be the intact one. Runs at trace time, so it costs nothing per step.
    """
    unknown = sorted(set(hooks or ()) - set(HOOK_POINTS))
    if unknown:
        raise NCAError(f"unknown hook point(s) {unknown}; choose from {', '.join(HOOK_POINTS)}")


def _hook(hooks: Hooks | None, name: str, value: Array, t: Array) -> Array:
    if hooks and name in hooks:
        return hooks[name](value, t)
    return value


def fire_mask(key: Array, shape: tuple[int, ...], rate: float) -> Array:
    """Which cells update this step: bool [..., H, W, 1] for a state of ``shape`` [..., H, W, C].

    Each cell fires independently with probability ``rate`` (the article's stochastic
    update, ``uniform <= fire_rate``).
    """
    return jax.random.uniform(key, tuple(shape[:-1]) + (1,)) <= rate


def fire_masks(key: Array, ts: Array, shape: tuple[int, ...], rate: float) -> Array:
    """The fire masks of global steps ``ts`` [T] at once: bool [T, ..., H, W, 1].

    Equal to ``fire_mask(step_key(key, t), shape, rate)`` for each t (one vectorised call
    of the generator instead of T small ones; tested).
    """
    return jax.vmap(lambda t: fire_mask(step_key(key, t), shape, rate))(ts)


def saturation_limits(cfg: "ModelConfig") -> np.ndarray:
    """Per perception feature, the clip of ``cfg.saturation`` [K*C]: +-s on every band but the
    Laplacian, +-s/2 on it (the texture NCAs clip their Laplacian, twice ``LAPLACIAN``, at s)."""
    return np.repeat([cfg.saturation / 2 if k == "laplacian" else cfg.saturation for k in PERCEPTIONS[cfg.perception]],
                     cfg.channels).astype(np.float32)


def step(
    params: Params,
    x: Array,
    key: Array,
    cfg: ModelConfig = ModelConfig(),
    t: Array | int = 0,
    hooks: Hooks | None = None,
    fire: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
    """One CA step. x: [..., H, W, C]; key: a PRNG key for the fire mask.

    fire: the fire mask bool [..., H, W, 1] if already drawn (``fire_mask(key, x.shape,
    cfg.fire_rate)`` -- ``rollout`` draws many steps' masks at once); else drawn from key.

    Returns ``(x_next, cache)``; cache holds ``perception [..., 3C]``, ``hidden
    [..., hidden]``, ``update [..., C]`` (before the fire mask), ``fire [..., 1]`` (float
    0/1) and ``alive [..., 1]`` (the life mask applied, float 0/1). Under jit the entries
    nobody uses are dead code and cost nothing.

    hooks: optional ``{point: fn(value, t) -> value}`` applied at the points in
    ``HOOK_POINTS`` ("state" is the incoming state, before the alive mask is taken;
    "alive" is the life mask [..., 1] (float 0/1) applied at the end of the step, e.g.
    frozen at a clean run's values to measure a direct effect, ``analysis.causal.repair``).
    """
    t = jnp.asarray(t, jnp.int32)
    check_hooks(hooks)
    x = _hook(hooks, "state", x, t)
    pre = _life_mask(x, cfg) if cfg.life != "none" else None
    p = perceive(x, cfg.angle_deg, cfg.neighbour_gradients, cfg.perception, cfg.padding, cfg.topology)
    q = cfg.saturation
    if q:
        lim = saturation_limits(cfg)
        p = jnp.clip(p, -lim, lim)
    p = _hook(hooks, "perception", p, t)
    h = jax.nn.relu(p @ params["w1"] + params["b1"])
    h = _hook(hooks, "hidden", jnp.minimum(h, q) if q else h, t)
    dx = h @ params["w2"] + params["b2"]
    dx = _hook(hooks, "update", jnp.clip(dx, -q, q) if q else dx, t)
    fire = fire_mask(key, x.shape, cfg.fire_rate) if fire is None else fire
    fire = _hook(hooks, "fire", fire.astype(x.dtype), t)
    new = x + dx * fire
    if cfg.clamp:  # the isotropic NCA demo clips updated cells to [-clamp, clamp]
        new = x + fire * (jnp.clip(new, -cfg.clamp, cfg.clamp) - x)
    x = new
    if cfg.life == "pre-post":
        life = (pre & _life_mask(x, cfg)).astype(x.dtype)
    elif cfg.life == "fired-pre":  # only a cell that fires with no live neighbourhood dies
        life = 1.0 - fire * (1.0 - pre.astype(x.dtype))
    else:  # texture NCAs: every cell lives (Niklasson et al. 2021)
        life = jnp.ones(x.shape[:-1] + (1,), x.dtype)
    life = _hook(hooks, "alive", life, t)
    cache = {"perception": p, "hidden": h, "update": dx, "fire": fire, "alive": life}
    return x * life, cache


def step_key(key: Array, t: Array | int) -> Array:
    """The fire-mask key of global step ``t``: ``fold_in(key, t)``.

    Folding in the step index (rather than splitting a chain) makes rollouts prefix-
    consistent: growing 100 steps then 50 more from ``t0=100`` equals growing 150.
    """
    return jax.random.fold_in(key, t)


class Trajectory(NamedTuple):
    """What a rollout recorded, stacked over time: each field ``[T, ...]`` or None.

    states: the state *after* each step ``[T, ..., H, W, C]``; perception ``[..., 3C]``,
    hidden ``[..., hidden]``, update ``[..., C]``, fire/alive ``[..., 1]`` as in ``step``.
    """

    states: Array | None = None
    perception: Array | None = None
    hidden: Array | None = None
    update: Array | None = None
    fire: Array | None = None
    alive: Array | None = None


# Fire masks for up to this many cell-steps (bool: 4 MiB) are drawn in one vectorised call:
# drawn step by step, the generator's fixed cost per call (~20 us on CPU) dominates small
# grids -- 15% of a 72x72 rollout.
FIRE_BLOCK_CELLS = 1 << 22


def _fire_block(steps: int, every: int, cells: int) -> int:
    """Steps per block of pre-drawn fire masks: the largest multiple of ``every`` that
    divides ``steps`` and fits ``FIRE_BLOCK_CELLS``; 0 if even ``every`` steps do not fit."""
    fits = [d for d in range(every, steps + 1, every) if steps % d == 0 and d * cells <= FIRE_BLOCK_CELLS]
    return max(fits, default=0)


def wrap_step(one: Callable, t0: Array, remat: bool = False, active_steps: Array | None = None,
              policy: Callable | None = None) -> Callable:
    """A scan's step ``one(carry, t, *rest)`` made ready for training rollouts: the one
    wrapper of ``rollout`` and the ``nca.selfish`` lineage and somatic rollouts.

    remat: rematerialise the step in the backward pass (``jax.checkpoint`` with ``policy``;
    memory ~ one carry per step instead of every activation). active_steps (traced int):
    step ``t`` runs only while ``t - t0 < active_steps`` and is the identity after, so
    rollouts of every length share one compilation (variable-length training rollouts,
    chunked animations); ``one`` must then return the carry alone. The gate wraps the
    rematerialised step, so the identity branch stores nothing.
    """
    if remat:
        one = jax.checkpoint(one, policy=policy)
    if active_steps is None:
        return one
    full = one

    def gated(carry, t, *rest):
        return jax.lax.cond(t - t0 < active_steps, lambda c: full(c, t, *rest), lambda c: c, carry)

    return gated


def rollout(
    params: Params,
    x0: Array,
    key: Array,
    steps: int,
    cfg: ModelConfig = ModelConfig(),
    record: tuple[str, ...] = ("state",),
    hooks: Hooks | None = None,
    t0: int | Array = 0,
    every: int = 1,
    remat: bool = False,
    active_steps: Array | None = None,
    fast: bool = False,
    fire_rate: Array | float | None = None,
    fires: Array | None = None,
) -> tuple[Array, Trajectory]:
    """Run ``steps`` CA steps with ``lax.scan`` -- the functional ``run_with_cache``.

    x0: [..., H, W, C]. record: names from ``RECORDABLE`` to stack over time (every
    ``every``-th step, so ``T = steps // every``); () records nothing. t0: global index
    of the first step (keys and hooks see ``t0 + i``). remat: rematerialise each step in
    the backward pass (memory ~ one state per step instead of all activations).

    Returns ``(x_final, Trajectory)``. Pure; jit it with ``steps``, ``cfg``, ``record``,
    ``hooks``, ``every``, ``remat`` static (``nca.grow`` does).

    fast: use ``fast_step`` (the MLP only where a cell fires and is alive; equal to
    ``step`` to float rounding, several times faster on CPU) when nothing but states is
    recorded, there are no hooks and ``cfg.is_article``; otherwise the reference ``step``
    runs regardless.

    fire_rate: the fire probability, overriding ``cfg.fire_rate``; may be traced (a sweep
    trains runs that differ only in it as one program, ``nca.train.Hyper``).

    fires: the steps' fire masks, bool [steps, ..., H, W, 1], if drawn already; else drawn
    here, ``fire_masks(key, t0 + arange(steps), x0.shape, rate)``. Passing them lets a
    shard of a batch (``nca.parallel.split_value_and_grad``) use its rows of the whole
    batch's masks, so that a split rollout equals the rollout of the whole batch.
    """
    unknown = set(record) - set(RECORDABLE)
    if unknown:
        raise NCAError(f"cannot record {sorted(unknown)}; choose from {RECORDABLE}")
    if steps % every:
        raise NCAError(f"steps={steps} is not a multiple of every={every}")
    check_hooks(hooks)

    if active_steps is not None and record and record != ("state",):
        raise NCAError("active_steps supports recording states only")
    t0 = jnp.asarray(t0, jnp.int32)
    rate = cfg.fire_rate if fire_rate is None else fire_rate

    def drawn(fire, x, t):  # with the rate overridden, masks drawn step by step use it too
        return fire_mask(step_key(key, t), x.shape, rate) if fire is None and fire_rate is not None else fire

    if fast and not hooks and set(record) <= {"state"} and cfg.is_article:

        def fast_one(x, t, fire):  # gates inactive steps itself (its masks skip the MLP)
            active = None if active_steps is None else t - t0 < active_steps
            return fast_step(params, x, step_key(key, t), cfg, fire=drawn(fire, x, t), active=active), {}

        one = wrap_step(fast_one, t0, remat, policy=FAST_REMAT_POLICY)
    else:

        def ref_one(x, t, fire):
            return step(params, x, step_key(key, t), cfg, t, hooks, drawn(fire, x, t))

        if active_steps is None:
            one = wrap_step(ref_one, t0, remat)
        else:  # states only (checked above): the gate passes the state alone
            gated = wrap_step(lambda x, t, fire: ref_one(x, t, fire)[0], t0, remat, active_steps)

            def one(x, t, fire):
                return gated(x, t, fire), {}

    def record_of(x, cache):
        out = {}
        for name in record:
            out[name] = x if name == "state" else cache[name]
        return out

    def inner(x, t_fire):
        x, cache = one(x, *t_fire)
        return x, record_of(x, cache)

    def group(x, ts_fires):  # ``every`` steps, recording the last
        x, recs = jax.lax.scan(inner, x, ts_fires)
        return x, jax.tree.map(lambda r: r[-1], recs)

    body = inner if every == 1 else group

    def split(a):  # [n] -> [n // every, every]
        return a if every == 1 else a.reshape(a.shape[0] // every, every, *a.shape[1:])

    ts = t0 + jnp.arange(steps, dtype=jnp.int32)
    if fires is not None and fires.shape != (steps, *x0.shape[:-1], 1):
        raise NCAError(f"fires has shape {fires.shape}, expected {(steps, *x0.shape[:-1], 1)} for {steps} steps of {x0.shape}")
    block = steps if fires is not None else _fire_block(steps, every, math.prod(x0.shape[:-1]))
    if block == steps:  # every step's mask at once, one scan
        fires = fire_masks(key, ts, x0.shape, rate) if fires is None else fires
        x, rec = jax.lax.scan(body, x0, (split(ts), split(fires)))
    elif block:  # a scan over blocks of steps, each drawing its masks first

        def run_block(x, ts_block):
            fires = fire_masks(key, ts_block, x0.shape, rate)
            return jax.lax.scan(body, x, (split(ts_block), split(fires)))

        x, rec = jax.lax.scan(run_block, x0, ts.reshape(steps // block, block))
        rec = jax.tree.map(lambda r: r.reshape(-1, *r.shape[2:]), rec)
    else:  # too many cells to hold even ``every`` steps' masks: draw them step by step
        x, rec = jax.lax.scan(body, x0, (split(ts), None))
    rec = dict(rec)
    return x, Trajectory(
        states=rec.get("state"),
        perception=rec.get("perception"),
        hidden=rec.get("hidden"),
        update=rec.get("update"),
        fire=rec.get("fire"),
        alive=rec.get("alive"),
    )


# ``rollout`` jitted once for the package (``nca.api.grow``, ``nca.train.save_preview``): one
# program per (steps, cfg, record, every) and hooks' tree structure, kept across calls; the
# state, key, t0 and the hooks' arrays are traced. (A new jit of a partial at each call
# compiled the rollout again every time.)
jit_rollout = jax.jit(rollout, static_argnames=("steps", "cfg", "record", "every"))


# --------------------------------------------------------------------------- seeds


def seed_state(height: int, width: int, cfg: ModelConfig = ModelConfig(), batch: int | None = None) -> Array:
    """The article's seed: one cell at (H//2, W//2) with channels 3.. set to 1
    (``cfg.seed_pattern == "center"``); an all-zero grid for ``cfg.seed_pattern == "zeros"``.

    Returns [H, W, C], or [batch, H, W, C] when ``batch`` is given.
    """
    # Built in NumPy: eagerly, each jnp op here compiled its own program (seconds per report).
    one = np.zeros((height, width, cfg.channels), np.float32)
    if cfg.seed_pattern == "center":
        one[height // 2, width // 2, 3:] = 1.0
    x = jnp.asarray(one)
    return x if batch is None else jnp.broadcast_to(x, (batch, height, width, cfg.channels))


def to_device(x) -> Array:
    """A host state (or any float array) onto the device as float32. ``jax.device_put``, not
    ``jnp.asarray``: in JAX 0.10 the latter compiles an identity program for every new shape
    (~0.1 s each)."""
    return jax.device_put(np.asarray(x, np.float32))


def to_rgba(x: Array) -> Array:
    """[..., C] -> [..., 4]: premultiplied RGB and alpha, clipped to [0, 1]. A NumPy state
    gives a NumPy image (no XLA program compiled for a picture)."""
    return x[..., :4].clip(0.0, 1.0)


def to_rgb(x: Array, background: float = 1.0) -> Array:
    """Composite the premultiplied colour over a uniform background (white by default)."""
    rgba = to_rgba(x)
    return rgba[..., :3] + background * (1.0 - rgba[..., 3:4])


# The fast path lives in nca/_fast.py (private; it imports the pieces above). Imported last,
# when everything it needs from this module exists; ``rollout`` looks it up at call time.
from ._fast import FAST_CHUNK, FAST_REMAT_POLICY, compact, fast_step, prefix_count  # noqa: E402,F401
