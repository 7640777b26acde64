"""Model specs with options: ``lizard.pth@layout=torch-linear,target=lizard,transposed=true``.

Every script takes a model as one string and passes it to ``nca.load_model``; the options
after the last ``@`` are ``load_model``'s keyword options, so a state_dict given on the
command line can be read with checked (``target=``) or overridden conventions without any
script knowing about them (docs/importing.md).

Grammar: ``SPEC@KEY=VALUE[,KEY=VALUE...]``. Commas inside parentheses belong to the value
(``variant=swap(+1,+1)``). A spec naming an existing file or folder is never split (a path
may hold ``@``), and ``runs/x@step=1000`` (a kept checkpoint) is left to ``load_model``.
Values are parsed strictly: booleans are ``true``/``false``, numbers are finite decimals (or
``a/b``, e.g. ``sobel_scale=1/8``), names are passed on and checked by the reader.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import NCAError


def _bool(key: str, text: str) -> bool:
    low = text.lower()
    if low not in ("true", "false"):
        raise NCAError(f"{key} must be true or false, got {text!r}")
    return low == "true"


def _number(key: str, text: str) -> float:
    parts = text.split("/")
    try:
        if len(parts) > 2 or not all(p.strip() for p in parts):
            raise ValueError
        vals = [float(p) for p in parts]
        value = vals[0] / vals[1] if len(vals) == 2 else vals[0]
    except (ValueError, ZeroDivisionError):
        raise NCAError(f"{key} must be a number (e.g. 0.5 or 1/8), got {text!r}") from None
    if not math.isfinite(value):
        raise NCAError(f"{key} must be a finite number, got {text!r}")
    return value


def _name(key: str, text: str) -> str:
    if not text:
        raise NCAError(f"{key} needs a value ({key}=...)")
    return text


# key -> (parser, what it is for); the keys are nca.load_model's keyword options
OPTIONS = {
    "layout": (_name, "PyTorch layout: torch-linear or torch-conv"),
    "target": (_name, "the target the model learned (checks a state_dict's orientation)"),
    "transposed": (_bool, "PyTorch: the source's frame is the transpose of ours"),
    "feature_order": (_name, "PyTorch: band or interleaved"),
    "sobel_scale": (_number, "PyTorch: the source's Sobel kernel scale (1/8 or 1)"),
    "fire": (_name, "PyTorch: above (fires when rand > rate) or below"),
    "fire_rate": (_number, "PyTorch: the source's fire rate, in its convention"),
    "variant": (_name, "PyTorch: force an orientation, e.g. swap(+1,+1)"),
    "alpha": (_name, "orientation check on premultiplied or straight alpha"),
    "fire_rate_source": (_number, "CAX: its cell_dropout_rate"),
    "dropout": (_name, "CAX: train or eval"),
    "step_size": (_number, "CAX: the update's step_size"),
    "model": (_name, "texture NCA models.json: which model (e.g. dots)"),
}


def _items(text: str, spec: str) -> list[str]:
    """Split on commas outside parentheses."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    if depth != 0:
        raise NCAError(f"unbalanced parentheses in the options of model spec {spec!r}")
    return items


def split_spec(spec: str) -> tuple[str, dict]:
    """``"lizard.pth@layout=torch-linear,transposed=true"`` -> ``("lizard.pth", {"layout":
    "torch-linear", "transposed": True})``. A spec without options (or an existing path, or
    ``run@step=N``) comes back unchanged with ``{}``. Unknown keys, repeated keys and values
    that do not parse are one NCAError naming the known keys."""
    spec = str(spec)
    at = spec.rfind("@")
    if at < 0 or Path(spec).exists():
        return spec, {}
    base, tail = spec[:at], spec[at + 1:]
    if "=" not in tail:  # not options: let load_model say what is wrong with the spec
        return spec, {}
    items = _items(tail, spec)
    if len(items) == 1 and items[0].split("=", 1)[0] == "step":
        return spec, {}  # runs/x@step=1000: a kept checkpoint
    if not base:
        raise NCAError(f"model spec {spec!r} has options but no model before '@'")
    opts: dict = {}
    for item in items:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise NCAError(f"model spec option {item!r} is not KEY=VALUE (in {spec!r})")
        if key not in OPTIONS:
            raise NCAError(f"unknown model spec option {key!r} in {spec!r}; known: {', '.join(sorted(OPTIONS))}"
                           + ("; a kept checkpoint is run@step=N alone" if key == "step" else ""))
        if key in opts:
            raise NCAError(f"model spec option {key!r} given twice in {spec!r}")
        opts[key] = OPTIONS[key][0](key, value)
    return base, opts


def format_options(opts: dict) -> str:
    """The inverse of the options part of ``split_spec``: ``key=value,...`` (sorted keys)."""
    def fmt(v):
        return ("true" if v else "false") if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)

    return ",".join(f"{k}={fmt(opts[k])}" for k in sorted(opts))


__all__ = ["OPTIONS", "split_spec", "format_options"]
