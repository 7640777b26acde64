"""nca: Growing Neural Cellular Automata in JAX, built to be dissected.

Model (pure functions): ``ModelConfig``, ``init_params``, ``step``, ``rollout``,
``seed_state``; training: ``Config``, ``preset``, ``train``; models: ``load_model``, ``save_model``
(run directory or ``distill:<emoji>/<experiment>``), ``grow``; targets: ``load_target``.

The names below load on first use (PEP 562), so that ``nca.cli`` and ``nca.errors`` import
without JAX: a training script restarts itself before JAX starts (``nca.cli``, huge pages).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    **dict.fromkeys(("LoadedModel", "grow", "load_model", "load_run", "save_model"), "api"),
    **dict.fromkeys(("Config", "preset"), "config"),
    "NCAError": "errors",
    **dict.fromkeys(("HOOK_POINTS", "RECORDABLE", "ModelConfig", "Trajectory", "alive_mask", "init_params",
                     "perceive", "rollout", "seed_state", "step", "to_rgb", "to_rgba"), "model"),
    "published_names": "published",
    "load_target": "targets",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    """A public name from its submodule, or a submodule (``nca.model``) on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":  # the submodule exists and failed: say what it lacks
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

