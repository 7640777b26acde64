"""Console-command entry points: ``nca-<name>`` runs ``scripts/<name>.py``'s ``main``.

``pyproject.toml``'s ``[project.scripts]`` points each command here; the script's own
``if __name__ == "__main__": run_cli(main)`` and this do the same thing, so
``python scripts/train.py ...`` and ``nca-train ...`` behave identically (one-line errors,
exit code 2 on bad input).
"""

from __future__ import annotations

import importlib

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
        from nca.cli import run_cli

        main = importlib.import_module(f"{__package__}.{module}").main
        run_cli(main)

    run.__name__ = module
    run.__doc__ = f"Run scripts/{module}.py's main as a console command."
    return run


for _name, _module in COMMANDS.items():
    globals()[_module] = _command(_module)
