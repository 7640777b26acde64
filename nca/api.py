"""The Python API other modules (animation, analysis, selfish cells) build on.

    import jax, nca
    model = nca.load_model("distill:lizard/persistent")      # or a run directory
    final, traj = nca.grow(model, steps=200, key=jax.random.key(0), record=("state", "hidden"))
    traj.states        # [200, H, W, 16]; traj.hidden: [200, H, W, 128]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import numpy as np

from . import checkpoint as ckpt
from .config import Config, load_config
from .errors import NCAError, check_fits, out_of_memory_as_error
from .hooks import as_hook
from .model import HOOK_POINTS, Hooks, ModelConfig, Params, Trajectory, init_params, rollout, seed_state
from .published import PREFIX, load_published, target_of
from .targets import load_target


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to grow. name: the spec it was loaded from; target: the target spec it
    learned; grid_size: its training grid (the published models: 72); config: the full
    training Config of a run directory (None for published models)."""

    name: str
    model_config: ModelConfig
    params: Params
    target: str | None
    grid_size: int = 72
    target_size: int = 40
    target_padding: int = 16
    config: Config | None = None

    def rotated(self, angle_deg: float) -> "LoadedModel":
        """The same model with its perception rotated by ``angle_deg`` (counter-clockwise as
        viewed): the article's rotation experiment -- the body grows rotated by that angle."""
        cfg = dataclasses.replace(self.model_config, angle_deg=float(angle_deg))
        return dataclasses.replace(self, model_config=cfg)

    def target_image(self) -> np.ndarray:
        """[grid, grid, 4] premultiplied target as trained."""
        if self.target is None:
            raise NCAError(f"{self.name} has no bundled target image")
        return load_target(self.target, self.target_size, self.target_padding,
                           self.config.target_background if self.config is not None else "none")


def load_run(run_dir: str | Path) -> LoadedModel:
    """Load a run directory's config and the params of its latest checkpoint."""
    from .train import init_train_state

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / ckpt.CONFIG)
    template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
    state = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT, template)["train"]
    return LoadedModel(str(run_dir), cfg.model, state.params, cfg.target, cfg.grid_size,
                       cfg.target_size, cfg.target_padding, cfg)


def load_model(spec: str | Path) -> LoadedModel:
    """A published model name (``distill:lizard/regenerating``) or a run directory."""
    spec = str(spec)
    if spec.startswith(PREFIX):
        cfg, params = load_published(spec)
        return LoadedModel(spec, cfg, params, target_of(spec))
    if Path(spec).is_dir():
        return load_run(spec)
    raise NCAError(f"unknown model {spec!r}: give a run directory or a published name such as "
                   "'distill:lizard/regenerating' (nca.published_names() lists them)")


@partial(jax.jit, static_argnames=("steps", "cfg", "record", "every"))
def _grow(params, x0, key, t0, hooks, steps, cfg, record, every):
    # hooks: {point: Hook} or None, a traced pytree: a Hook's fn and static settings are
    # part of its tree structure (so of the compiled program), its arrays are not
    return rollout(params, x0, key, steps, cfg, record=record, hooks=hooks, t0=t0, every=every)


def grow(
    model: LoadedModel,
    steps: int,
    key: jax.Array,
    x0: jax.Array | None = None,
    size: int | None = None,
    record: tuple[str, ...] = ("state",),
    hooks: Hooks | None = None,
    t0: int = 0,
    every: int = 1,
    batch: int | None = None,
) -> tuple[jax.Array, Trajectory]:
    """Grow ``model`` for ``steps`` steps (jitted rollout) -> (final state, Trajectory).

    x0: start state ``[..., H, W, C]`` (default: the seed on a ``size`` grid, default the
    training grid; ``batch`` seeds if given). hooks: ``{point: fn(value, t) -> value}`` (or
    a tuple of pairs) at points of ``nca.model.HOOK_POINTS``. A ``nca.hooks.Hook`` (what
    ``analysis.interventions`` builds) is traced: another hook of the same kind with new
    arrays of the same shapes reuses the compiled program. A plain function is compared by
    identity: each new one (a new closure, a new lambda) compiles a new program.
    """
    for name, value, least in (("steps", steps, 0), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise NCAError(f"{name} must be an integer >= {least}, got {value!r}")
    if isinstance(t0, (int, np.integer)) and t0 < 0:  # (t0 may also be a traced array)
        raise NCAError(f"t0 must be >= 0, got {t0}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
        raise NCAError(f"batch must be an integer >= 1, got {batch!r}")
    if x0 is None:
        size = model.grid_size if size is None else size  # 0 is an error, not "the default"
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 3:
            raise NCAError(f"grid size must be >= 3, got {size}")
        with out_of_memory_as_error(f"making a {size}x{size} seed state"):
            x0 = seed_state(size, size, model.model_config, batch=batch)
    if x0.shape[-1] != model.model_config.channels:
        raise NCAError(f"state has {x0.shape[-1]} channels, model expects {model.model_config.channels}")
    if hooks:
        hooks = dict(hooks)
        unknown = sorted(set(hooks) - set(HOOK_POINTS))
        if unknown:  # a misspelt hook point would otherwise do nothing, silently
            raise NCAError(f"unknown hook point(s) {unknown}; choose from {', '.join(HOOK_POINTS)}")
        hooks = {name: as_hook(fn) for name, fn in hooks.items()}
    widths = {"state": x0.shape[-1], "perception": 3 * x0.shape[-1], "hidden": model.model_config.hidden,
              "update": x0.shape[-1], "fire": 1, "alive": 1}
    frame = math.prod(x0.shape[:-1]) * 4  # bytes of one channel of the state(s), float32
    check_fits(frame * (4 * x0.shape[-1] + 2 * model.model_config.hidden
                        + (steps // every) * sum(widths.get(r, 0) for r in record)),
               f"growing {tuple(x0.shape)} for {steps} steps, recording {tuple(record)}",
               "use a smaller grid, fewer steps, a larger every or fewer recordings")
    with out_of_memory_as_error(f"growing {tuple(x0.shape)} for {steps} steps, recording {tuple(record)}"):
        return _grow(model.params, x0, key, t0, hooks or None, steps, model.model_config, tuple(record), every)


__all__ = ["LoadedModel", "load_model", "load_run", "grow", "init_params"]
