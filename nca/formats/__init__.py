"""Readers of models trained elsewhere (docs/importing.md).

Each reader turns a source's files into our ``(ModelConfig, params)`` plus a provenance
record saying what was read and which conventions were applied. ``nca.load_model`` calls
them by file type; ``import_torch`` is the entry point with every option.

- ``pth``: our reader of ``torch.save`` zip archives (and ``.npz``), no PyTorch needed;
- ``torch_layouts``: the fc0/fc1 (``nn.Linear``) and w0/w1 (1x1 ``nn.Conv2d``) layouts;
- ``orient``: the orientation check (which band is d/dx, with which sign);
- ``spec``: options on a model spec (``model.pth@layout=torch-linear,target=lizard``);
- ``isonca``, ``tfjs``, ``cax``, ``texture``: the isotropic NCA demo, TF.js graph models,
  CAX's Growing NCA and the texture NCA models file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NCAError
from ..model import ModelConfig, Params
from . import orient, torch_layouts
from .orient import Orientation, OrientationSettings
from .pth import read_arrays
from .torch_layouts import LAYOUTS, VARIANTS, Layout, Variant

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".npz")


@dataclass(frozen=True)
class Imported:
    """What a reader returns: our model config and params, and a provenance record (JSON-
    ready: source path, layout, conventions, the orientation check's outcome)."""

    model_config: ModelConfig
    params: Params
    provenance: dict = field(default_factory=dict)


def torch_layout(name: str | None, sd: dict, transposed: bool | None = None, feature_order: str | None = None,
                 sobel_scale: float | None = None, fire: str | None = None) -> Layout:
    """The named layout (detected from the keys when None) with any convention overridden."""
    if name is None:
        name = torch_layouts.detect_layout(sd)
    if name not in LAYOUTS:
        raise NCAError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    base = LAYOUTS[name]
    return Layout(name,
                  base.transposed if transposed is None else bool(transposed),
                  base.feature_order if feature_order is None else feature_order,
                  base.sobel_scale if sobel_scale is None else float(sobel_scale),
                  base.fire if fire is None else fire)


def import_torch(source, layout: str | None = None, *, fire_rate: float = 0.5, fire: str | None = None,
                 transposed: bool | None = None, feature_order: str | None = None,
                 sobel_scale: float | None = None, variant: Variant | str | None = None,
                 target: np.ndarray | None = None, source_step: tuple | None = None,
                 orientation: OrientationSettings = OrientationSettings()) -> Imported:
    """A PyTorch Growing-NCA state_dict as our model.

    source: a path (``.pth``/``.pt``/``.bin`` saved by ``torch.save``, or ``.npz``) or a
    dict of arrays. layout: "torch-linear" or "torch-conv" (detected from the keys when
    None). fire_rate, fire: the source's rate and convention ("above": a cell fires when
    ``rand > rate``, the reproductions' default; "below": when ``rand <= rate``).
    transposed / feature_order / sobel_scale: override the layout's conventions.

    Orientation, in order of precedence: ``variant`` (one of ``VARIANTS`` or its name, e.g.
    "swap(+1,+1)"), taken as given; ``source_step = (x, fire_mask, x_next)`` from the
    source's own rollout (NHWC in *our* frame, fire_mask ``[..., H, W, 1]``): the variant
    that reproduces it; ``target`` ``[H, W, 4]`` premultiplied: the variant that grows it;
    else the layout's declared default (provenance says "declared", unchecked).
    """
    where = None
    if isinstance(source, (str, Path)):
        where = str(source)
        sd = read_arrays(Path(source))
    elif isinstance(source, dict):
        sd = {str(k): np.asarray(v) for k, v in source.items()}
    else:
        raise NCAError(f"source must be a path or a dict of arrays, got {type(source).__name__}")
    lay = torch_layout(layout, sd, transposed, feature_order, sobel_scale, fire)
    src = torch_layouts.source_weights(sd, lay)
    cfg = torch_layouts.model_config(src, lay, fire_rate)
    names = [str(v) for v in VARIANTS]
    candidates = [torch_layouts.to_params(src, lay, v) for v in VARIANTS]
    if variant is not None:
        name = str(variant)
        if name not in names:
            raise NCAError(f"unknown variant {name!r}; choose from {', '.join(names)}")
        result = Orientation(names.index(name), "given")
    elif source_step is not None:
        if len(source_step) != 3:
            raise NCAError("source_step must be (x, fire_mask, x_next)")
        result = orient.by_step(candidates, cfg, *source_step, names=names)
    elif target is not None:
        result = orient.by_target(candidates, cfg, np.asarray(target), names, orientation)
    else:
        result = Orientation(VARIANTS.index(torch_layouts.default_variant(lay)), "declared")
    params = {k: np.asarray(v) for k, v in candidates[result.chosen].items()}
    provenance = {
        "format": "pytorch-state-dict", "source": where, "layout": lay.name, "transposed": lay.transposed,
        "feature_order": lay.feature_order, "sobel_scale": lay.sobel_scale, "fire": lay.fire,
        "source_fire_rate": fire_rate, "output_bias": src.has_output_bias,
        "variant": names[result.chosen], "orientation_by": result.by,
        "orientation_scores": dict(zip(names, result.scores)) if result.scores else None,
    }
    return Imported(cfg, params, provenance)


__all__ = ["Imported", "import_torch", "torch_layout", "LAYOUTS", "VARIANTS", "Variant", "Layout",
           "OrientationSettings", "Orientation", "read_arrays", "TORCH_SUFFIXES"]
