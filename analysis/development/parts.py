"""The development report's pipeline: positional information over development, steering
dose-responses and a transplant, on one model (``scripts/development_report.py``).

``run(model, DevelopmentSettings(...), key) -> dict`` (JSON-ready apart from the ``images``
arrays, which the script draws and drops). Keys are documented in docs/development.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import jax

from nca.errors import NCAError
from nca.rng import stream

from analysis.development import positional as P
from analysis.causal import steering as S

PARTS = ("positional", "steering", "transplant")
# Named PRNG streams: each part draws from fold_in(key, its constant).
STREAM_POSITIONAL = 1
STREAM_STEERING = 2
STREAM_TRANSPLANT = 3


@dataclass(frozen=True)
class DevelopmentSettings:
    """parts: which of PARTS to run; positional / steering / transplant: their settings;
    placement: the held-out-placement measurement of the positional part
    (``analysis.development.positional.PlacementSettings``; None: not run)."""

    parts: tuple[str, ...] = PARTS
    positional: P.PositionalSettings = field(default_factory=P.PositionalSettings)
    placement: P.PlacementSettings | None = field(default_factory=P.PlacementSettings)
    steering: S.SteeringSettings = field(default_factory=S.SteeringSettings)
    transplant: S.TransplantSettings = field(default_factory=S.TransplantSettings)
    grid: int | None = None

    def __post_init__(self):
        bad = set(self.parts) - set(PARTS)
        if bad or not self.parts:
            raise NCAError(f"parts must be a non-empty subset of {', '.join(PARTS)}, got {', '.join(self.parts)}")

    def as_dict(self) -> dict:
        return asdict(self)


def run(model, settings: DevelopmentSettings, key: jax.Array, progress=None) -> dict:
    """Every requested part on ``model``. progress(name): called as each part starts."""
    out = {"model": model.name, "settings": settings.as_dict()}
    if "positional" in settings.parts:
        progress and progress("positional")
        from analysis.rollouts import euclidean, grow_states

        if model.model_config.topology == "hex":
            _require_state_features(settings)
        k = jax.random.fold_in(key, STREAM_POSITIONAL)
        states = grow_states(model, settings.positional.steps, k, seeds=settings.positional.replicates,
                             size=settings.grid)
        # on the hex grid, positions are measured in the body's Euclidean frame: the states are
        # resampled first (the axial array is sheared; analysis.rollouts.euclidean)
        out["positional"] = P.positional_from_states(model, euclidean(states, model.model_config),
                                                     settings.positional, jax.random.fold_in(k, 1))
        if settings.placement is not None:
            # the split a lookup "grid cell -> state" cannot pass (issue 23): bodies placed
            # and rotated differently, probes scored on a held-out placement, beside a
            # fixed random field (the null) on the same cells
            progress and progress("positional: held-out placements")
            out["positional"]["placement"] = P.positional_by_placement(model, settings.placement,
                                                                       stream(key, "placement"))
    if "steering" in settings.parts:
        progress and progress("steering")
        out["steering"] = S.run_steering(model, settings.steering, jax.random.fold_in(key, STREAM_STEERING),
                                         settings.grid)
    if "transplant" in settings.parts:
        progress and progress("transplant")
        out["transplant"] = S.run_transplant(model, settings.transplant, jax.random.fold_in(key, STREAM_TRANSPLANT),
                                             settings.grid)
    return out


def _require_state_features(settings: DevelopmentSettings) -> None:
    """On the hex grid the positional part resamples the states to the body's frame, which
    keeps state channels meaningful but not activations (they would be recomputed by the hex
    rule on a square image): one clear line instead."""
    used = {settings.positional.features} | ({settings.placement.features} if settings.placement else set())
    bad = sorted(used - {"hidden", "state"})
    if bad:
        raise NCAError(f"on the hex grid the positional part measures state channels in the body's frame: "
                       f"--features {bad[0]} is not supported there; use hidden or state")
