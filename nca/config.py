"""Training configuration: one frozen dataclass, presets, JSON and command-line overrides.

``Config`` is hashable (static under jit) and saved as ``config.json`` beside every
checkpoint. Every field can be overridden from the command line (``--lr 1e-3``,
``--hidden 64``); ``add_config_args``/``config_from_args`` generate those options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import NCAError
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
    experiment: str = "regenerating"
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
    keep_checkpoints: str = "log"  # "log": params at log-spaced steps in checkpoints/; "none"
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if self.experiment not in EXPERIMENTS:
            raise NCAError(f"unknown experiment {self.experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
        if not 1 <= self.rollout_min < self.rollout_max:
            raise NCAError(f"need 1 <= rollout_min < rollout_max, got {self.rollout_min}, {self.rollout_max}")
        if self.uses_pool and self.batch_size > self.pool_size:
            raise NCAError(f"batch_size {self.batch_size} exceeds pool_size {self.pool_size}")
        if self.experiment == "regenerating" and not 0 <= self.damage_n < self.batch_size:
            raise NCAError(f"damage_n must be in [0, batch_size), got {self.damage_n}")
        if self.keep_checkpoints not in ("log", "none"):
            raise NCAError(f"keep_checkpoints must be 'log' or 'none', got {self.keep_checkpoints!r}")
        for name in ("train_steps", "batch_size", "pool_size", "checkpoint_every", "target_size"):
            if getattr(self, name) < 1:
                raise NCAError(f"{name} must be >= 1, got {getattr(self, name)}")

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
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise NCAError(f"config has unknown fields {sorted(unknown)}")
        model = d.pop("model", {})
        try:
            return cls(**d, model=ModelConfig(**model))
        except TypeError as e:
            raise NCAError(f"bad config: {e}") from None


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


def add_config_args(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--field`` option per config field (default: not given -> preset's value)."""
    group = parser.add_argument_group("config overrides (default: the preset's value)")
    types = {"int": int, "float": float, "bool": _parse_bool, "str": str}
    defaults = Config()
    for f, is_model in _all_fields():
        if f.name in skip:
            continue
        default = getattr(defaults.model if is_model else defaults, f.name)
        kind = type(default).__name__
        group.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", type=types[kind], default=None,
            metavar=kind.upper(), help=f"(distill: {default})",
        )


def overrides_from_args(args: argparse.Namespace) -> dict:
    return {
        k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None
    }


def with_overrides(cfg: Config, overrides: dict) -> Config:
    model_fields = {f.name for f in fields(ModelConfig)}
    m = {k: v for k, v in overrides.items() if k in model_fields}
    c = {k: v for k, v in overrides.items() if k not in model_fields}
    return replace(cfg, **c, model=replace(cfg.model, **m))
