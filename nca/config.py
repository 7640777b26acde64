"""Training configuration: one frozen dataclass, presets, JSON and command-line overrides.

``Config`` is hashable (static under jit) and saved as ``config.json`` beside every
checkpoint. Every field can be overridden from the command line (``--lr 1e-3``,
``--hidden 64``); ``add_config_args``/``config_from_args`` generate those options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from .checkpoint import parse_keep
from .errors import NCAError, require_at_least
from .model import ModelConfig

EXPERIMENTS = ("growing", "persistent", "regenerating")


@dataclass(frozen=True)
class Config:
    """Everything a training run needs. Defaults reproduce the article's regenerating run.

    Constants from the article (Mordvintsev et al., Distill 2020, and its notebook):
    target 40 px padded by 16 (72x72 grid); pool 1024, batch 8; Adam at 2e-3 dropping to
    2e-4 at step 2000; per-variable gradient normalisation g/(|g|+1e-8); rollouts of
    ``randint(64, 96)`` steps (TF's maxval is exclusive: 64..95); damage of the 3 best
    samples with circles of radius U(0.1, 0.4) centred at U(-0.5, 0.5) (grid units [-1, 1]).
    """

    target: str = "lizard"
    target_size: int = 40
    target_padding: int = 16
    target_background: str = "none"  # "white": make the target image's white background transparent
    experiment: str = "regenerating"
    # "l2" (the article's), or the isotropic NCA's invariant losses "rotation" and
    # "rotation-reflection" (the smallest L2 over the target's poses; nca.losses).
    loss: str = "l2"
    train_steps: int = 8000
    batch_size: int = 8
    pool_size: int = 1024
    damage_n: int = 3  # samples damaged per batch in the regenerating experiment
    lr: float = 2e-3
    lr_decay_step: int = 2000
    lr_decay_factor: float = 0.1
    grad_norm_eps: float = 1e-8
    rollout_min: int = 64
    rollout_max: int = 96  # exclusive
    seed: int = 0
    checkpoint_every: int = 500
    remat: bool = True  # rematerialise CA steps in the backward pass (memory ~ states only)
    # Params kept along training in checkpoints/ (``nca.checkpoint.parse_keep``): "log"
    # (log-spaced steps), "none", "every:N" (every N steps) or "log+every:N" (both).
    keep_checkpoints: str = "log"
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        # Types first, so a wrong type is named instead of failing a comparison below
        # (a config.json edited by hand, or a wrong value passed from Python).
        _check_types(self, "")
        _check_types(self.model, "model.")
        from .targets import BACKGROUNDS

        if self.target_background not in BACKGROUNDS:
            raise NCAError(f"target_background must be one of {', '.join(BACKGROUNDS)}, got {self.target_background!r}")
        from .losses import check_loss

        check_loss(self.loss)
        if self.experiment not in EXPERIMENTS:
            raise NCAError(f"unknown experiment {self.experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
        require_at_least(self, ("train_steps", "batch_size", "pool_size", "checkpoint_every", "target_size",
                                "rollout_min"), 1)
        require_at_least(self, ("target_padding", "lr_decay_step", "seed", "damage_n"), 0)
        if self.seed >= 2**32:  # jax.random.key keeps 32 bits: larger seeds would repeat smaller ones
            raise NCAError(f"seed must be < 2**32, got {self.seed}")
        if not self.rollout_min < self.rollout_max:
            raise NCAError(f"need 1 <= rollout_min < rollout_max, got {self.rollout_min}, {self.rollout_max}")
        if self.uses_pool and self.batch_size > self.pool_size:
            raise NCAError(f"batch_size {self.batch_size} exceeds pool_size {self.pool_size}")
        if self.experiment == "regenerating" and not 0 <= self.damage_n < self.batch_size:
            raise NCAError(f"damage_n must be in [0, batch_size), got {self.damage_n}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise NCAError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.lr_decay_factor) and self.lr_decay_factor > 0):
            raise NCAError(f"lr_decay_factor must be a finite number > 0, got {self.lr_decay_factor}")
        if not (math.isfinite(self.grad_norm_eps) and self.grad_norm_eps >= 0):
            raise NCAError(f"grad_norm_eps must be a finite number >= 0, got {self.grad_norm_eps}")
        parse_keep(self.keep_checkpoints)  # raises NCAError naming keep_checkpoints
        m = self.model
        # ModelConfig checks these too (with ValueError); here they reach users as NCAError.
        if m.channels < 4:
            raise NCAError(f"model.channels must be >= 4 (RGBA + hidden), got {m.channels}")
        if m.hidden < 1:
            raise NCAError(f"model.hidden must be >= 1, got {m.hidden}")
        if not 0.0 < m.fire_rate <= 1.0:
            raise NCAError(f"model.fire_rate must be in (0, 1], got {m.fire_rate}")
        for name in ("alive_threshold", "angle_deg"):
            if not math.isfinite(getattr(m, name)):
                raise NCAError(f"model.{name} must be a finite number, got {getattr(m, name)}")

    # Derived values.
    @property
    def uses_pool(self) -> bool:
        return self.experiment != "growing"

    @property
    def damaged_per_batch(self) -> int:
        return self.damage_n if self.experiment == "regenerating" else 0

    @property
    def grid_size(self) -> int:
        return self.target_size + 2 * self.target_padding

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """A Config from a dict (``to_dict``'s layout; ``config.json``). Every problem --
        unknown field, wrong type, bad value -- is one NCAError naming the field."""
        if not isinstance(d, dict):
            raise NCAError(f"config must be a JSON object of fields, got {type(d).__name__}")
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise NCAError(f"config has unknown fields {sorted(unknown)}")
        model = d.pop("model", {})
        if not isinstance(model, dict):
            raise NCAError(f"config field model must be an object of fields, got {type(model).__name__}")
        model_known = {f.name for f in fields(ModelConfig)}
        if set(model) - model_known:
            raise NCAError(f"config has unknown model fields {sorted(set(model) - model_known)}")
        _check_dict_types(model, ModelConfig, "model.")
        try:
            mc = ModelConfig(**model)
        except (TypeError, ValueError) as e:
            raise NCAError(f"bad model config: {e}") from None
        _check_dict_types(d, cls, "")
        try:
            return cls(**d, model=mc)
        except (TypeError, ValueError) as e:
            raise NCAError(f"bad config: {e}") from None


_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _field_kind(f) -> str | None:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return t if t in _KINDS else None


def _type_problem(value, kind: str) -> bool:
    if kind != "bool" and isinstance(value, bool):
        return True  # True is an int to Python, never a count or a rate here
    return not isinstance(value, _KINDS[kind])


def _check_dict_types(d: dict, cls, prefix: str) -> None:
    for f in fields(cls):
        kind = _field_kind(f)
        if kind and f.name in d and _type_problem(d[f.name], kind):
            raise NCAError(f"config field {prefix}{f.name} must be {_KIND_WORDS[kind]}, "
                           f"got {d[f.name]!r} ({type(d[f.name]).__name__})")


def _check_types(obj, prefix: str) -> None:
    _check_dict_types({f.name: getattr(obj, f.name) for f in fields(obj)}, type(obj), prefix)


# Presets. `distill` is the article; `quick` is tuned for 2 CPU cores (README: how long it
# takes and how well it grows, measured with `python scripts/train.py --preset quick`).
PRESETS: dict[str, dict] = {
    "distill": {},
    "quick": dict(
        target_size=32,
        target_padding=8,
        train_steps=1500,
        batch_size=4,
        pool_size=256,
        damage_n=1,
        rollout_min=48,
        rollout_max=64,
        lr_decay_step=1000,
        checkpoint_every=250,
    ),
    # For tests: tiny and fast, no claim on quality.
    "tiny": dict(
        target_size=12,
        target_padding=4,
        train_steps=40,
        batch_size=2,
        pool_size=16,
        damage_n=1,
        rollout_min=8,
        rollout_max=12,
        lr_decay_step=30,
        checkpoint_every=20,
        model=dict(hidden=32),
    ),
}


def preset(name: str, **overrides) -> Config:
    """A preset with overrides (flat field names; model fields go to ``model``)."""
    if name not in PRESETS:
        raise NCAError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    d = dict(PRESETS[name])
    model = dict(d.pop("model", {}))
    model_fields = {f.name for f in fields(ModelConfig)}
    for k, v in overrides.items():
        (model if k in model_fields else d)[k] = v
    return Config.from_dict({**d, "model": model})


def save_config(cfg: Config, path: Path) -> None:
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())


def load_config(path: Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise NCAError(f"no config.json in {path.parent} (is it a run directory?)")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NCAError(f"cannot read {path}: {e}") from None
    return Config.from_dict(d)


# --------------------------------------------------------------------------- command line


def _all_fields():
    for f in fields(Config):
        if f.name != "model":
            yield f, False
    for f in fields(ModelConfig):
        yield f, True


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


FIELD_HELP = {
    "target": "target image: a bundled name, one emoji, or a path to a PNG",
    "target_size": "longer side of the target in cells",
    "target_padding": "empty cells around the target on every side",
    "target_background": "none: the image's own transparency; white: make its white background (near-white "
                         "pixels connected to the border) transparent",
    "experiment": f"one of {', '.join(EXPERIMENTS)}",
    "loss": "l2 (the article's), rotation or rotation-reflection (the isotropic NCA's: the "
            "smallest L2 over the target's rotations, and reflections)",
    "train_steps": "optimisation steps of the run (with --resume: extends or shortens it)",
    "batch_size": "samples per optimisation step",
    "pool_size": "samples in the pool (persistent, regenerating)",
    "damage_n": "best samples damaged per batch (regenerating)",
    "lr": "Adam learning rate",
    "lr_decay_step": "step after which the learning rate is multiplied by --lr-decay-factor",
    "lr_decay_factor": "learning-rate multiplier after --lr-decay-step",
    "grad_norm_eps": "epsilon of the per-variable gradient normalisation g/(|g|+eps)",
    "rollout_min": "shortest training rollout, in CA steps",
    "rollout_max": "longest training rollout + 1, in CA steps (exclusive)",
    "seed": "the run's PRNG seed (initial parameters, batches, fire masks, damage)",
    "checkpoint_every": "save the full checkpoint every N optimisation steps",
    "remat": "rematerialise CA steps in the backward pass (less memory)",
    "keep_checkpoints": "params kept in checkpoints/: log, none, every:N or log+every:N",
    "channels": "state channels (RGBA + hidden)",
    "hidden": "units of the per-cell MLP",
    "fire_rate": "probability that a cell updates in a step, in (0, 1]",
    "alive_threshold": "alpha above which a 3x3 neighbourhood is alive",
    "angle_deg": "rotation of the perception filters, degrees counter-clockwise",
    "neighbour_gradients": "false: stop gradients through the neighbours (selfish credit)",
    "perception": "filters each channel is read with: sobel (the article), laplacian, sobel+laplacian, "
                  "steerable-angle, steerable-gradient (docs/importing.md#architecture-variants)",
}


def field_flag(name: str) -> str:
    """The command-line flag of a config field: ``model.fire_rate`` -> ``--fire-rate``."""
    return "--" + name.rsplit(".", 1)[-1].replace("_", "-")


def fields_as_flags(message: str) -> str:
    """A config error message with its field names written as the flags that set them
    (``model.hidden must be >= 1`` -> ``--hidden must be >= 1``), for scripts."""
    import re

    names = sorted({f.name for f, _ in _all_fields()}, key=len, reverse=True)
    pattern = re.compile(r"(?<!unknown )(?<![\w./-])(?:model\.)?(" + "|".join(names) + r")(?![\w/-])")
    return pattern.sub(lambda m: field_flag(m.group(1)), message)


def add_config_args(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--field`` option per config field (default: not given -> preset's value)."""
    group = parser.add_argument_group("config overrides (default: the preset's value; the article's in brackets)")
    types = {"int": int, "float": float, "bool": _parse_bool, "str": str}
    defaults = Config()
    for f, is_model in _all_fields():
        if f.name in skip:
            continue
        default = getattr(defaults.model if is_model else defaults, f.name)
        kind = type(default).__name__
        group.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", type=types[kind], default=None,
            metavar=kind.upper(), help=f"{FIELD_HELP.get(f.name, f.name)} [distill: {default}]",
        )


def overrides_from_args(args: argparse.Namespace) -> dict:
    return {
        k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None
    }


def with_overrides(cfg: Config, overrides: dict) -> Config:
    """``cfg`` with flat field overrides (model fields go to ``model``), validated as a whole."""
    model_fields = {f.name for f in fields(ModelConfig)}
    m = {k: v for k, v in overrides.items() if k in model_fields}
    c = {k: v for k, v in overrides.items() if k not in model_fields}
    d = {**cfg.to_dict(), **c}
    d["model"] = {**d["model"], **m}
    return Config.from_dict(d)
