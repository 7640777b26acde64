"""Train a Growing NCA (the article's growing / persistent / regenerating experiments).

    python scripts/train.py --target lizard --experiment regenerating --preset quick --out runs/lizard
    python scripts/train.py --resume runs/lizard          # continue a stopped run
    python scripts/train.py --preset quick --lr 1e-3 --hidden 64 --out runs/x   # any config field

The run directory gets config.json, checkpoint.msgpack (atomic, every --checkpoint-every
steps and on Ctrl-C), metrics.csv and preview.png ([target | grown from the seed]).
"""

import argparse
from pathlib import Path

from nca.cli import run_cli
from nca.config import EXPERIMENTS, PRESETS, add_config_args, overrides_from_args, preset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default: quick)")
    ap.add_argument("--out", type=Path, help="run directory to create")
    ap.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(ap)
    ap.set_defaults(cfg_experiment=None)
    a = ap.parse_args()
    from nca.errors import NCAError
    from nca.train import train

    overrides = overrides_from_args(a)
    if a.resume:
        if set(overrides) - {"train_steps"}:
            raise NCAError("--resume continues a run with its saved config; only --train-steps may change")
        cfg = preset(a.preset, **overrides) if overrides else None
        train(cfg, a.resume, resume=True, progress=not a.no_progress)
        return 0
    if a.out is None:
        raise NCAError("give --out DIR for a new run (or --resume DIR to continue one)")
    if overrides.get("experiment", "regenerating") not in EXPERIMENTS:
        raise NCAError(f"unknown experiment {overrides['experiment']!r}; choose one of {', '.join(EXPERIMENTS)}")
    cfg = preset(a.preset, **overrides)
    print(f"training {cfg.experiment} {cfg.target!r} on a {cfg.grid_size}x{cfg.grid_size} grid, "
          f"{cfg.train_steps} steps, seed {cfg.seed} -> {a.out}")
    train(cfg, a.out, progress=not a.no_progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
