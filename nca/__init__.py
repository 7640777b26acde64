"""nca: Growing Neural Cellular Automata in JAX, built to be dissected.

Model (pure functions): ``ModelConfig``, ``init_params``, ``step``, ``rollout``,
``seed_state``; training: ``Config``, ``preset``, ``train``; models: ``load_model``, ``save_model``
(run directory or ``distill:<emoji>/<experiment>``), ``grow``; targets: ``load_target``.
"""

from .api import LoadedModel, grow, load_model, load_run, save_model
from .config import Config, preset
from .errors import NCAError
from .model import (
    HOOK_POINTS,
    RECORDABLE,
    ModelConfig,
    Trajectory,
    alive_mask,
    init_params,
    perceive,
    rollout,
    seed_state,
    step,
    to_rgb,
    to_rgba,
)
from .published import published_names
from .targets import load_target

__version__ = "0.1.0"
