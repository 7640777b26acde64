"""Damage shapes: what a wound erases, in one place for every layer.

- ``circle_masks``: the article's training damage (random discs, ``make_circle_masks``),
  drawn on device inside the jitted training step (``nca.train.sample_batch``) and by the
  analyses that damage as training did.
- ``Disc`` and ``Cut``: damage *events* at a step, for animations (``nca.animate``) and
  assays (``analysis.development.damage_assays``, ``knockouts``, ``dynamics``). ``Cut`` is the
  article's regeneration cuts (``CUTS``). ``parse_damage`` / ``parse_cut`` read their
  ``STEP:...`` text forms; ``damage_mask`` is the union of several events.

Every mask is True (or 1) where cells are erased; erasing sets all channels to 0, so a
state is damaged by ``x * (1 - mask)[..., None]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .errors import NCAError

Array = jax.Array

CUTS = ("left", "right", "top", "bottom", "square")


# Jitted so that an eager call (the analyses' wounds) is one compiled program instead of a
# dozen ops each compiled on first use (seconds on a CPU); inside a jitted caller (the
# training step) it is inlined as before. Eager and jitted masks are equal (tested).
@partial(jax.jit, static_argnums=(1, 2, 3))
def circle_masks(key: Array, n: int, height: int, width: int) -> Array:
    """The article's ``make_circle_masks``: n discs, 1 inside. -> [n, H, W] float32.

    Grid coordinates run over [-1, 1]; centres U(-0.5, 0.5), radii U(0.1, 0.4).
    """
    kc, kr = jax.random.split(key)
    x = jnp.linspace(-1.0, 1.0, width)[None, None, :]
    y = jnp.linspace(-1.0, 1.0, height)[None, :, None]
    centre = jax.random.uniform(kc, (2, n, 1, 1), minval=-0.5, maxval=0.5)
    r = jax.random.uniform(kr, (n, 1, 1), minval=0.1, maxval=0.4)
    x, y = (x - centre[0]) / r, (y - centre[1]) / r
    return (x * x + y * y < 1.0).astype(jnp.float32)


@dataclass(frozen=True)
class Disc:
    """Erase a disc: centre (x, y), radius r. x is the column (from the left), y the row
    (from the top), as the picture is viewed. ``fraction``: x, y in units of the grid's
    width / height and r of its smaller side; otherwise grid cells. A cell (row i,
    column j) is erased when ``(j - x)^2 + (i - y)^2 <= r^2``."""

    step: int
    x: float
    y: float
    r: float
    fraction: bool = False

    def in_cells(self, height: int, width: int) -> tuple[float, float, float]:
        if not self.fraction:
            return self.x, self.y, self.r
        return self.x * width, self.y * height, self.r * min(height, width)

    def mask(self, height: int, width: int) -> np.ndarray:
        """bool [H, W], True where cells are erased."""
        x, y, r = self.in_cells(height, width)
        ii, jj = np.mgrid[:height, :width]
        return (jj - x) ** 2 + (ii - y) ** 2 <= r * r

    def describe(self, height: int, width: int) -> dict:
        x, y, r = self.in_cells(height, width)
        return {"step": self.step, "kind": "disc", "x": self.x, "y": self.y, "r": self.r,
                "units": "fraction" if self.fraction else "cells",
                "cells": {"x": round(x, 4), "y": round(y, 4), "r": round(r, 4)},
                "erased_cells": int(self.mask(height, width).sum())}


@dataclass(frozen=True)
class Cut:
    """The article's regeneration cuts: erase the left/right/top/bottom half of the grid
    (split at the seed's row H//2 / column W//2), or a central square of side H//3 x W//3
    around the seed. ``part``: one of ``CUTS``."""

    step: int
    part: str

    def mask(self, height: int, width: int) -> np.ndarray:
        """bool [H, W], True where cells are erased."""
        ii, jj = np.mgrid[:height, :width]
        cy, cx = height // 2, width // 2
        if self.part == "left":
            return jj < cx
        if self.part == "right":
            return jj >= cx
        if self.part == "top":
            return ii < cy
        if self.part == "bottom":
            return ii >= cy
        # square: side H//3 x W//3, starting (side // 2) before the seed cell
        sh, sw = height // 3, width // 3
        top, left = cy - sh // 2, cx - sw // 2
        return (ii >= top) & (ii < top + sh) & (jj >= left) & (jj < left + sw)

    def describe(self, height: int, width: int) -> dict:
        return {"step": self.step, "kind": "cut", "part": self.part,
                "erased_cells": int(self.mask(height, width).sum())}


Damage = Disc | Cut


def _split_step(spec: str, what: str, form: str) -> tuple[int, str]:
    step, sep, rest = spec.partition(":")
    if not sep or not step.strip().isdigit():
        raise NCAError(f"bad {what} {spec!r}: expected {form}, e.g. '200:{'36,36,10' if what == 'damage' else 'left'}'")
    return int(step), rest.strip()


def parse_damage(spec: str) -> Disc:
    """``"STEP:x,y,r"`` -> Disc. Units rule: the three numbers are *fractions* of the grid
    when all are <= 1 and at least one is written with a decimal point (``0.5,0.5,0.2``);
    otherwise grid cells (``36,36,10``; ``1,1,1`` is cells). Mixing a decimal fraction below
    1 with a number above 1 is refused as ambiguous."""
    form = "STEP:x,y,r (cells, or fractions of the grid like 0.5,0.5,0.25)"
    step, rest = _split_step(spec, "damage", form)
    parts = [p.strip() for p in rest.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        x, y, r = (float(p) for p in parts)
    except ValueError:
        raise NCAError(f"bad damage {spec!r}: expected {form}") from None
    if not all(np.isfinite(v) for v in (x, y, r)) or r < 0:
        raise NCAError(f"bad damage {spec!r}: x, y must be finite and r >= 0")
    dotted = [("." in p) for p in parts]
    fraction = all(v <= 1 for v in (x, y, r)) and any(dotted)
    if not fraction and any(d and 0 < v < 1 for d, v in zip(dotted, (x, y, r))):
        raise NCAError(f"bad damage {spec!r}: mixes fractions (below 1 with a decimal point) and "
                       "cells (above 1); give all three as fractions of the grid or all in cells")
    return Disc(step, x, y, r, fraction)


def parse_cut(spec: str) -> Cut:
    """``"STEP:left|right|top|bottom|square"`` -> Cut."""
    step, part = _split_step(spec, "cut", f"STEP:{'|'.join(CUTS)}")
    if part not in CUTS:
        raise NCAError(f"bad cut {spec!r}: the cut must be one of {', '.join(CUTS)}")
    return Cut(step, part)


def damage_mask(events: Sequence[Damage], height: int, width: int) -> np.ndarray:
    """Union of the events' masks: bool [H, W]."""
    out = np.zeros((height, width), bool)
    for e in events:
        out |= e.mask(height, width)
    return out


__all__ = ["CUTS", "Cut", "Damage", "Disc", "circle_masks", "damage_mask", "parse_cut", "parse_damage"]
