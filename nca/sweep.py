"""Hyperparameter sweeps: a grid (or a list) of configs times a list of seeds, trained as
populations on one machine or across processes (``nca.distributed``).

A sweep is a base config, axes (``lr=1e-3,2e-3``: a config field and its values; the grid
is their product) or a list of override dicts (``configs``), and seeds. Each (config, seed)
is one normal run folder ``OUT/<config name>/seed_<s>/``. The runs are handed to
``nca.multiseed.train_runs``: runs whose configs differ only in seed, target image, lr,
lr decay factor and fire rate train as one vmapped program split over the devices
(``nca.multiseed.group_key``; the last three are traced per-run values, ``nca.train.Hyper``);
a different hidden width, batch size or rollout length is a different compiled step, so
its own group.
Across processes each process trains every N-th run. ``OUT/job.json`` lists the runs
(``--resume OUT`` continues them), ``OUT/summary.csv`` their final losses.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

from .config import Config, ModelConfig, with_overrides
from .errors import NCAError


def _kinds() -> dict[str, type]:
    """Each sweepable field's type (every Config and ModelConfig field but ``model``)."""
    defaults = Config()
    out = {f.name: type(getattr(defaults, f.name)) for f in fields(Config) if f.name != "model"}
    out.update({f.name: type(getattr(defaults.model, f.name)) for f in fields(ModelConfig)})
    return out


def _value(field: str, text: str, kind: type):
    try:
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return text.lower() in ("true", "1", "yes", "on")
            raise ValueError
        return kind(text)
    except ValueError:
        raise NCAError(f"--vary {field}: {text!r} is not {kind.__name__}") from None


def parse_axis(text: str) -> tuple[str, tuple]:
    """``"lr=1e-3,2e-3"`` -> ``("lr", (0.001, 0.002))``; ``fire-rate`` or ``fire_rate``."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    kinds = _kinds()
    if not sep or not values.strip():
        raise NCAError(f"--vary takes FIELD=V1,V2,..., got {text!r}")
    if name == "seed":
        raise NCAError("give the seeds with --seeds, not --vary seed=...")
    if name not in kinds:
        raise NCAError(f"--vary {name}: not a config field (e.g. lr, hidden, fire_rate, target)")
    vals = tuple(_value(name, v.strip(), kinds[name]) for v in values.split(","))
    if len(set(vals)) != len(vals):
        raise NCAError(f"--vary {name}: values repeat in {text!r}")
    return name, vals


@dataclass(frozen=True)
class Sweep:
    """base: the config every run starts from; axes: ((field, values), ...), the grid;
    configs: override dicts, a list instead of (or after) the grid; seeds: each config's seeds."""

    base: Config
    axes: tuple[tuple[str, tuple], ...] = ()
    configs: tuple = ()
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self):
        if not self.seeds:
            raise NCAError("a sweep needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise NCAError(f"--seeds repeat in {list(self.seeds)}; each seed trains once")
        names = [a for a, _ in self.axes]
        if len(set(names)) != len(names):
            raise NCAError(f"--vary names a field twice ({names})")
        if self.axes and self.configs:
            raise NCAError("give a grid (--vary) or a list of configs (--configs), not both")


def _slug(v) -> str:
    s = f"{v:g}" if isinstance(v, float) else str(v)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", Path(s).stem if "/" in s else s).strip("-") or "x"


def expand(sweep: Sweep) -> tuple[list[str], list[Config], list[dict]]:
    """Every run of the sweep: (names ``<config>/seed_<s>``, configs, the varied values of
    each run, ``{field: value}``), configs in grid order, seeds innermost."""
    if sweep.configs:
        variants = [dict(c) for c in sweep.configs]
    elif sweep.axes:
        keys = [a for a, _ in sweep.axes]
        variants = [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in sweep.axes))]
    else:
        variants = [{}]
    kinds = _kinds()
    for v in variants:
        bad = sorted(set(v) - set(kinds)) + (["seed"] if "seed" in v else [])
        if bad:
            raise NCAError(f"a sweep config sets {bad}: not sweepable config fields (seeds go in --seeds)")
    labels = [("_".join(f"{k}{_slug(x)}" for k, x in v.items()) or "base") for v in variants]
    if len(set(labels)) != len(labels):  # e.g. two targets whose names slug alike
        labels = [f"c{i:03d}_{lab}" for i, lab in enumerate(labels)]
    names, cfgs, varied = [], [], []
    for label, v in zip(labels, variants):
        try:
            cfg = with_overrides(sweep.base, v)
        except NCAError as e:
            raise NCAError(f"config {label}: {e}") from None
        for s in sweep.seeds:
            names.append(f"{label}/seed_{s}")
            cfgs.append(with_overrides(cfg, {"seed": int(s)}))
            varied.append({**v, "seed": int(s)})
    return names, cfgs, varied


def train_sweep(sweep: Sweep, out_dir: Path, *, progress: bool = True, stop_at: int | None = None, log=print,
                devices=None, job=None):
    """Train every run of ``sweep`` into ``out_dir`` (this process's share of them; see the
    module docstring). Returns ``nca.multiseed.train_runs``' (states, results)."""
    from .distributed import SINGLE
    from .multiseed import train_runs

    names, cfgs, _ = expand(sweep)
    return train_runs(cfgs, out_dir, names, progress=progress, stop_at=stop_at, log=log, devices=devices,
                      job=SINGLE if job is None else job)


def groups(cfgs: Sequence[Config]) -> list[list[int]]:
    """The runs (indices) that train as one program, in order of first appearance."""
    from .multiseed import group_key

    out: dict = {}
    for i, c in enumerate(cfgs):
        out.setdefault(group_key(c), []).append(i)
    return list(out.values())
