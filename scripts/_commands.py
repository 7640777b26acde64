"""Console-command entry points: ``nca-<name>`` runs ``scripts/<name>.py`` as its main module.

``pyproject.toml``'s ``[project.scripts]`` points each command here; the command runs the
script's module as ``__main__``, so ``python scripts/train.py ...`` and ``nca-train ...`` are
the same code path (one-line errors, exit code 2 on bad input, a training script's restart
with huge pages before JAX starts).
"""

from __future__ import annotations

import runpy

# command name -> script module (the file scripts/<module>.py)
COMMANDS = {
    "nca-train": "train",
    "nca-sweep": "sweep",
    "nca-grow": "grow",
    "nca-animate": "animate",
    "nca-dissect": "dissect",
    "nca-pca-report": "pca_report",
    "nca-knockout-report": "knockout_report",
    "nca-damage-report": "damage_report",
    "nca-dynamics-report": "dynamics_report",
    "nca-development-report": "development_report",
    "nca-selfish": "selfish",
    "nca-viewer": "viewer",
    "nca-render-targets": "render_targets",
    "nca-degradation-report": "degradation_report",
    "nca-atlas-report": "atlas_report",
    "nca-export-h5ad": "export_h5ad",
    "nca-features-report": "features_report",
}


def _command(module: str):
    def run() -> None:
        runpy.run_module(f"{__package__}.{module}", run_name="__main__")

    run.__name__ = module
    run.__doc__ = f"Run scripts/{module}.py as the program, as `python scripts/{module}.py` does."
    return run


for _name, _module in COMMANDS.items():
    globals()[_module] = _command(_module)
