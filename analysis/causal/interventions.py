"""Interventions on rollouts: hook constructors for ``nca.model.step``/``rollout`` hooks.

A hook is ``fn(value, t) -> value`` at a point of ``nca.model.HOOK_POINTS`` ("state",
"perception", "hidden", "update", "fire", "alive"); ``t`` is the global step index (traced
under jit). Every constructor here returns such a callable: an ``nca.hooks.Hook``, a pytree
whose function and settings (mode, integer step window, channel count...) are static and
whose arrays (directions, values, recordings, masks, channels) are traced. So
``nca.grow`` compiles one program per *kind* of intervention: ablating channel 5 after
channel 4, or another recording of the same shape, reuses it. The arguments may also be
traced arrays (build the hooks *inside* a jitted/vmapped function, so that one compiled
program serves a whole batch of channels or directions: see ``analysis.causal.knockouts``).

Vocabulary (as in transformer interpretability):

* **zero ablation** of a direction ``d`` (unit vector over the point's features, e.g. a
  channel ``e_c`` or a PCA loading): ``v -> v - (v.d) d``;
* **mean ablation**: the component along ``d`` is set to a fixed value ``m`` (e.g. its mean
  over the alive cells of an intact rollout): ``v -> v - (v.d - m) d``;
* **resample ablation**: the component is taken from another rollout at the same step
  (``source``, a recording indexed by step): ``v -> v - (v.d - s_t.d) d``;
* **activation patching**: the whole value (or chosen channels) replaced by ``source`` at
  the same step, within a space-time window.

Several orthonormal directions at once: ``directions [k, F]`` (rows orthonormal; the rows of
a PCA's ``components`` are). A **window** restricts the intervention to steps
``t_start <= t < t_stop`` and, optionally, to cells where ``mask [H, W]`` is nonzero
(fractional masks blend).

Step convention of recordings: ``Trajectory`` fields recorded at step ``t`` (perception,
hidden, update, fire) are what step ``t`` computed; ``Trajectory.states[i]`` is the state
*after* step ``t0 + i``, so the *incoming* state that the "state" hook of step ``t`` sees is
``states[t - t0 - 1]`` (the start state for ``t = t0``): ``incoming_states`` builds that
stack.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nca.errors import NCAError
from nca.hooks import Hook, as_hook
from nca.model import HOOK_POINTS

Array = jax.Array
MODES = ("zero", "mean", "resample")


def channel_directions(channels, n_features: int) -> np.ndarray:
    """Unit vectors of ``channels`` (ints) in a feature space of ``n_features``: [k, F]."""
    channels = np.atleast_1d(np.asarray(channels, int))
    if channels.size and (channels.min() < 0 or channels.max() >= n_features):
        raise NCAError(f"channels {channels.tolist()} outside 0..{n_features - 1}")
    return np.eye(n_features, dtype=np.float32)[channels]


def embed_directions(directions, offset: int, n_features: int) -> np.ndarray:
    """Place directions over a channel subset into the full feature space.

    E.g. PCA loadings over the 12 hidden channels (``[k, 12]``) -> state directions
    ``[k, 16]`` with ``offset=4``.
    """
    d = np.atleast_2d(np.asarray(directions, np.float32))
    out = np.zeros((d.shape[0], n_features), np.float32)
    out[:, offset:offset + d.shape[1]] = d
    return out


def perception_directions(channels, n_channels: int, bands: int = 3) -> np.ndarray:
    """The perception features of each channel, one per band: [bands k, bands C]; the
    article's 3 (identity, Sobel-x, Sobel-y), or ``ModelConfig.kernels`` of a variant.

    Ablating these at the "perception" point removes what a channel contributes to the
    update (the channel itself stays in the state)."""
    channels = np.atleast_1d(np.asarray(channels, int))
    idx = np.concatenate([channels + b * n_channels for b in range(bands)])
    return channel_directions(idx, bands * n_channels)


def in_window(t: Array, t_start=0, t_stop=None) -> Array:
    """1.0 when ``t_start <= t < t_stop`` (``t_stop`` None: no end), else 0.0 (traced-safe)."""
    on = t >= t_start
    if t_stop is not None:
        on = on & (t < t_stop)
    return on.astype(jnp.float32)


def _blend(old: Array, new: Array, t: Array, t_start, t_stop, mask) -> Array:
    """``new`` inside the space-time window, ``old`` outside. mask: [H, W] or None."""
    w = in_window(t, t_start, t_stop)
    if mask is not None:
        w = w * jnp.asarray(mask, old.dtype)[..., None]
    return old + w * (new - old)


def ablate(directions, mode: str = "zero", value=None, source=None, source_t0: int = 0,
           t_start=0, t_stop=None, mask=None) -> Hook:
    """Ablate the components of a value along ``directions`` within a window.

    directions: [k, F] orthonormal rows over the hooked value's last axis (F = 16 for
    "state", 48 for "perception", ``hidden`` units for "hidden"); a single [F] vector is
    allowed.
    mode: "zero" (component -> 0); "mean" (component -> ``value`` [k], e.g. from
    ``component_means``); "resample" (component -> that of ``source`` at the same step:
    ``source`` [T, ..., F] indexed by ``t - source_t0``, clipped to its range).
    t_start, t_stop: step window (``t_stop`` None: to the end); mask: [H, W] cells.
    """
    if mode not in MODES:
        raise NCAError(f"unknown ablation mode {mode!r}; choose one of {MODES}")
    if mode == "mean" and value is None:
        raise NCAError("mean ablation needs value= (the component means, [k])")
    if mode == "resample" and source is None:
        raise NCAError("resample ablation needs source= (a recording [T, ..., F])")
    arrays = {"d": jnp.atleast_2d(jnp.asarray(directions, jnp.float32))}
    if mode == "mean":  # (a value or source that the mode does not read is not carried)
        arrays["value"] = jnp.atleast_1d(jnp.asarray(value, jnp.float32))
    if mode == "resample":
        arrays["source"] = jnp.asarray(source)
    return _hook(_ablate, arrays, {"mode": mode}, source_t0=source_t0, t_start=t_start, t_stop=t_stop,
                 mask=mask)


def _ablate(v: Array, t: Array, d, mode, value=None, source=None, source_t0=0, t_start=0, t_stop=None,
            mask=None) -> Array:
    coef = v @ d.T  # [..., k]
    if mode == "zero":
        repl = jnp.zeros_like(coef)
    elif mode == "mean":
        repl = jnp.broadcast_to(value, coef.shape)
    else:
        repl = recorded_at(source, t, source_t0) @ d.T
    return _blend(v, v + (repl - coef) @ d, t, t_start, t_stop, mask)


def _hook(fn, arrays: dict, static: dict, **either) -> Hook:
    """A ``Hook`` of ``fn``; each of ``either`` (step window, offsets, mask) is static when it
    is None or a Python / numpy scalar (an int window is part of the program, as it was of a
    closure's), else a traced array (e.g. a window built from traced values inside jit)."""
    for name, x in either.items():
        if x is None or isinstance(x, (bool, int, float, np.integer, np.floating)):
            static[name] = x.item() if isinstance(x, np.generic) else x
        else:
            arrays[name] = jnp.asarray(x)
    return Hook(fn, arrays, **static)


def recorded_at(source: Array, t: Array, source_t0=0) -> Array:
    """``source[t - source_t0]`` for a traced ``t`` (clipped to the recording's range).

    source: [T, ...] -> [...]. Uses a dynamic index, so it works inside jit and scan."""
    i = jnp.clip(jnp.asarray(t, jnp.int32) - source_t0, 0, source.shape[0] - 1)
    return jax.lax.dynamic_index_in_dim(source, i, axis=0, keepdims=False)


def patch(source, source_t0: int = 0, channels=None, t_start=0, t_stop=None, mask=None) -> Hook:
    """Activation patching: replace the value by ``source`` at the same step, in a window.

    source: [T, ..., F] recording indexed by ``t - source_t0`` (for the "state" point use
    ``incoming_states``); channels: feature indices to patch (None: all; traced, so patching
    other channels of the same count reuses the compiled program); mask [H, W]: patch only
    these cells (e.g. a region of a damaged run into an intact one).
    """
    arrays = {"source": jnp.asarray(source)}
    if channels is not None:
        arrays["channels"] = jnp.asarray(channels)
    return _hook(_patch, arrays, {}, source_t0=source_t0, t_start=t_start, t_stop=t_stop, mask=mask)


def _patch(v: Array, t: Array, source, channels=None, source_t0=0, t_start=0, t_stop=None, mask=None) -> Array:
    new = recorded_at(source, t, source_t0).astype(v.dtype)
    if channels is not None:
        sel = jnp.zeros(v.shape[-1], v.dtype).at[channels].set(1.0)
        new = v + sel * (new - v)
    return _blend(v, new, t, t_start, t_stop, mask)


def incoming_states(x0, states) -> np.ndarray:
    """The state each step *receives*: ``[x0, states[0], ..., states[T-2]]`` -> [T, ...].

    x0: [..., H, W, C] (the rollout's start state); states: ``Trajectory.states`` [T, ...].
    Index i is what the "state" hook of step ``t0 + i`` sees."""
    states = np.asarray(states)
    return np.concatenate([np.asarray(x0, states.dtype)[None], states[:-1]], 0)


def component_means(values, alive, directions) -> np.ndarray:
    """Mean component along each direction over alive cells (for mean ablation).

    values: [..., H, W, F]; alive: bool [..., H, W]; directions: [k, F] -> [k]."""
    v = np.asarray(values)[np.asarray(alive, bool)]
    return (v @ np.atleast_2d(np.asarray(directions)).T).mean(0)


def hooks(**by_point: Hook) -> dict[str, Hook]:
    """``hooks(state=h1, perception=h2)`` with the point names checked."""
    bad = set(by_point) - set(HOOK_POINTS)
    if bad:
        raise NCAError(f"unknown hook points {sorted(bad)}; choose from {HOOK_POINTS}")
    return dict(by_point)


def compose(*fns) -> Hook:
    """Several interventions at one point, applied left to right (``Hook``s, or plain
    ``fn(value, t)`` callables, which are compared by identity under jit)."""
    return Hook(_compose, {"hooks": tuple(as_hook(f) for f in fns)})


def _compose(v: Array, t: Array, hooks) -> Array:
    for f in hooks:
        v = f(v, t)
    return v
