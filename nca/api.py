"""The Python API other modules (animation, analysis, selfish cells) build on.

    import jax, nca
    model = nca.load_model("distill:lizard/persistent")      # or a run directory
    final, traj = nca.grow(model, steps=200, key=jax.random.key(0), record=("state", "hidden"))
    traj.states        # [200, H, W, 16]; traj.hidden: [200, H, W, 128]
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import numpy as np

from . import checkpoint as ckpt
from .config import Config, load_config
from .errors import NCAError, check_fits, out_of_memory_as_error
from .hooks import as_hook
from .model import HOOK_POINTS, Hooks, ModelConfig, Params, Trajectory, init_params, jit_rollout, seed_state
from .published import PREFIX, load_demo_json, load_published, target_of
from .formats.isonca import ASSET as ISONCA_ASSET, ISONCA_NAME, is_isonca, read_isonca
from .formats.texture import PREFIX as TEXTURE_PREFIX
from .formats.tfjs import is_tfjs, read_tfjs
from .targets import load_target

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".npz")  # nca.formats.TORCH_SUFFIXES (imported lazily)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to grow. name: the spec it was loaded from; target: the target spec it
    learned; grid_size: its training grid (the published models: 72); config: the full
    training Config of a run directory (None for published models); provenance: where an
    imported model came from and which conventions were applied (JSON-ready; None for our
    own runs and the bundled models)."""

    name: str
    model_config: ModelConfig
    params: Params
    target: str | None
    grid_size: int = 72
    target_size: int = 40
    target_padding: int = 16
    config: Config | None = None
    provenance: dict | None = None

    def rotated(self, angle_deg: float) -> "LoadedModel":
        """The same model with its perception rotated by ``angle_deg`` (counter-clockwise as
        viewed): the article's rotation experiment -- the body grows rotated by that angle."""
        cfg = dataclasses.replace(self.model_config, angle_deg=float(angle_deg))
        return dataclasses.replace(self, model_config=cfg)

    def target_image(self) -> np.ndarray:
        """[grid, grid, 4] premultiplied target as trained."""
        if self.target is None:
            raise NCAError(f"{self.name} has no bundled target image")
        return load_target(self.target, self.target_size, self.target_padding,
                           self.config.target_background if self.config is not None else "none")


def load_run(run_dir: str | Path) -> LoadedModel:
    """Load a run directory's config and the params of its latest checkpoint."""
    from .train import init_train_state

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / ckpt.CONFIG)
    template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
    state = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT, template)["train"]
    return LoadedModel(str(run_dir), cfg.model, state.params, cfg.target, cfg.grid_size,
                       cfg.target_size, cfg.target_padding, cfg)


_AT_STEP = re.compile(r"^(?P<run>.+)@step=(?P<step>\d+)$")


def load_kept_model(run_dir: str | Path, step: int) -> LoadedModel:
    """A run's kept training checkpoint (``Config.keep_checkpoints``) after ``step`` steps:
    the run's config with those params. Spec form: ``runs/x@step=1000``."""
    run_dir = Path(run_dir)
    if not (run_dir / ckpt.CONFIG).is_file():
        raise NCAError(f"{run_dir} is not a run directory (no {ckpt.CONFIG})")
    cfg = load_config(run_dir / ckpt.CONFIG)
    path = ckpt.kept_path(run_dir, step)
    if not path.is_file():
        kept = [s for s, _ in ckpt.list_kept(run_dir)]
        shown = ", ".join(map(str, kept[:12])) + (" ..." if len(kept) > 12 else "")
        raise NCAError(f"{run_dir} kept no checkpoint at step {step}; kept steps: {shown or 'none'}")
    template = jax.eval_shape(partial(init_params, jax.random.key(0), cfg.model))
    params = ckpt.load_kept(path, template)
    return LoadedModel(f"{run_dir}@step={step}", cfg.model, params, cfg.target, cfg.grid_size,
                       cfg.target_size, cfg.target_padding, cfg, {"format": "kept-checkpoint", "step": step})


def model_config_from_dict(d: dict, where: str) -> ModelConfig:
    """A ModelConfig from a JSON object, unknown fields and bad values as one NCAError."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise NCAError(f"{where}: unknown model fields {unknown}")
    try:
        return ModelConfig(**d)
    except (TypeError, ValueError) as e:
        raise NCAError(f"{where}: {e}") from None


def load_model_folder(folder: str | Path) -> LoadedModel:
    """A params-only model folder (``save_model``): config, params and provenance."""
    folder = Path(folder)
    meta = ckpt.read_model_meta(folder)
    cfg = model_config_from_dict(meta["model"], str(folder / ckpt.MODEL_FILE))
    template = jax.eval_shape(partial(init_params, jax.random.key(0), cfg))
    params = ckpt.load_checkpoint(folder / ckpt.PARAMS_FILE, {"params": template})["params"]
    return LoadedModel(meta.get("name") or str(folder), cfg, params, meta.get("target"),
                       int(meta.get("grid_size", 72)), int(meta.get("target_size", 40)),
                       int(meta.get("target_padding", 16)), None, meta.get("provenance"))


def save_model(model: LoadedModel, folder: str | Path) -> None:
    """Write ``model`` as a params-only folder (``model.json`` + ``params.msgpack``) that
    ``load_model(folder)`` -- and so every script -- reads back. Refuses a folder holding
    other files (a run directory, a source's own folder)."""
    meta = {"name": model.name, "model": dataclasses.asdict(model.model_config), "target": model.target,
            "grid_size": model.grid_size, "target_size": model.target_size,
            "target_padding": model.target_padding, "provenance": model.provenance or {}}
    params = {k: np.asarray(v, np.float32) for k, v in model.params.items()}
    ckpt.save_model_folder(Path(folder), meta, params)


def _is_cax_npz(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return any(k.replace("/", ".").endswith("perceive.conv.kernel") for k in z.files)
    except Exception:
        return False


def _json_kind(path: Path) -> str | None:
    """"isonca", "tfjs", "texture" or None (the Distill demo export) for a .json model file."""
    import json

    from .formats.texture import is_texture

    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return ("isonca" if is_isonca(obj) else "tfjs" if is_tfjs(obj) else "texture" if is_texture(obj)
            else None)


TORCH_OPTIONS = ("fire_rate", "fire", "transposed", "feature_order", "sobel_scale", "variant", "source_step",
                 "orientation")
CAX_OPTIONS = ("fire_rate_source", "dropout", "step_size", "alive_threshold")
TEXTURE_OPTIONS = ("model",)


def _check_options(spec: str, layout, options: dict, allowed: tuple, what: str) -> None:
    wrong = sorted(k for k in options if k not in allowed) + (["layout"] if layout is not None else [])
    if wrong:
        raise NCAError(f"option(s) {wrong} do not apply to {spec!r} ({what}); it takes: "
                       f"{', '.join(allowed) or 'none'}")


def _isonca(spec: str, path: Path, target: str | None) -> LoadedModel:
    cfg, params, provenance = read_isonca(path)
    params = {k: jax.device_put(v) for k, v in params.items()}
    # the demo's grid is 128 x 128; the lizard fits 96 x 96 (docs/importing.md)
    return LoadedModel(spec, cfg, params, target, 96, provenance=provenance)


def load_model(spec: str | Path, layout: str | None = None, target: str | None = None, **options) -> LoadedModel:
    """Load a model from any source (docs/importing.md):

    - ``distill:lizard/regenerating``: a bundled published model;
    - a run directory (its latest checkpoint), or ``runs/x@step=1000`` (a kept checkpoint);
    - a params-only model folder (``save_model``: ``model.json`` + ``params.msgpack``);
    - ``model.pth`` / ``.pt`` / ``.bin`` / ``.npz``: a PyTorch Growing-NCA state_dict
      (layout "torch-linear" or "torch-conv", detected from the keys when not given); an
      ``.npz`` holding ``perceive.conv.kernel`` is read as CAX Growing-NCA params
      (``nca.formats.cax``; options fire_rate_source, dropout, step_size);
    - ``model.json``: the Distill notebook's demo export (the bundled models' format), or
      the isotropic NCA demo's ``cadata.json`` (``isonca:lizard`` is the bundled copy: a
      hexagonal-grid, rotation-invariant rule), or a TF.js graph model of the Growing NCA
      (the Distill 2021 exports, e.g. the adversarial-reprogramming models), or the texture
      NCA models file (``models.json``, option ``model=``; ``texture:dots`` and
      ``texture:mondrian`` are bundled): no alive masking, grown from zeros on a torus.

    target: the target the model learned (a spec for ``nca.load_target``): kept with the
    model and, for a state_dict, used to *check* its orientation (``nca.formats.orient``);
    without it the layout's declared orientation is used, unchecked (provenance says so).
    options: passed to ``nca.formats.import_torch`` (fire_rate, fire, transposed,
    feature_order, sobel_scale, variant, source_step, orientation).

    The same options can ride on the spec itself (``nca.formats.spec``), so every script
    takes them: ``"lizard.pth@layout=torch-linear,target=lizard,transposed=true"``; the
    loaded model's name is the full spec and ``provenance["spec_options"]`` lists them.
    """
    from .formats.spec import format_options, split_spec

    full = str(spec)
    base, spec_opts = split_spec(full)
    if not spec_opts:
        return _load_model(full, layout, target, **options)
    given = {"layout": layout, "target": target, **options}
    both = sorted(k for k in spec_opts if given.get(k) is not None)
    if "alpha" in spec_opts and options.get("orientation") is not None:
        both.append("alpha (orientation)")
    if both:
        raise NCAError(f"option(s) {both} given both in the model spec {full!r} and as keywords")
    opts = dict(spec_opts)
    layout, target = opts.pop("layout", layout), opts.pop("target", target)
    if "alpha" in opts:
        from .formats.orient import OrientationSettings

        opts["orientation"] = OrientationSettings(alpha=opts.pop("alpha"))
    model = _load_model(base, layout, target, **options, **opts)
    provenance = {**(model.provenance or {}), "spec_options": format_options(spec_opts)}
    return dataclasses.replace(model, name=full, provenance=provenance)


def _load_model(spec: str, layout: str | None = None, target: str | None = None, **options) -> LoadedModel:
    spec = str(spec)
    path = Path(spec)
    is_torch = path.suffix in TORCH_SUFFIXES
    texture = spec.startswith(TEXTURE_PREFIX) or (path.suffix == ".json" and path.is_file()
                                                  and _json_kind(path) == "texture")
    if texture:
        _check_options(spec, layout, options, TEXTURE_OPTIONS, "a texture NCA model")
        from .formats.texture import ASSET as TEXTURE_ASSET, read_texture

        if spec.startswith(TEXTURE_PREFIX):
            if "model" in options:
                raise NCAError(f"{spec} names its model already: model= does not apply")
            cfg, params, provenance = read_texture(TEXTURE_ASSET, spec[len(TEXTURE_PREFIX):])
        else:
            cfg, params, provenance = read_texture(path, options.get("model"))
        # their training grid is 128 x 128 (cfg.texture_ca.img_size)
        return LoadedModel(spec, cfg, {k: jax.device_put(v) for k, v in params.items()}, target, 128,
                           provenance=provenance)
    if (layout is not None or options) and not is_torch:
        given = sorted(options) + (["layout"] if layout is not None else [])
        raise NCAError(f"options {given} apply to PyTorch state_dicts ({', '.join(TORCH_SUFFIXES)}), "
                       f"not to {spec!r}")
    if spec.startswith(PREFIX):
        cfg, params = load_published(spec)
        return LoadedModel(spec, cfg, params, target or target_of(spec))
    if spec == ISONCA_NAME:
        return _isonca(spec, ISONCA_ASSET, target or "lizard")
    at = _AT_STEP.match(spec)
    if at and not path.exists():
        return load_kept_model(at["run"], int(at["step"]))
    if path.is_dir():
        return load_model_folder(path) if ckpt.is_model_folder(path) else load_run(path)
    if path.suffix == ".npz" and path.is_file() and _is_cax_npz(path):
        from .formats.cax import read_cax

        _check_options(spec, layout, options, CAX_OPTIONS, "CAX Growing-NCA parameters")
        cfg, params, provenance = read_cax(path, **options)
        return LoadedModel(spec, cfg, {k: jax.device_put(v) for k, v in params.items()}, target,
                           provenance=provenance)
    if is_torch:
        from .formats import import_torch

        target_img = None if target is None else load_target(target)
        grid = 72 if target_img is None else target_img.shape[0]
        _check_options(spec, None, options, TORCH_OPTIONS, "a PyTorch state_dict")
        imported = import_torch(path, layout, target=target_img, **options)
        params = {k: jax.device_put(np.asarray(v, np.float32)) for k, v in imported.params.items()}
        return LoadedModel(spec, imported.model_config, params, target, grid, provenance=dict(imported.provenance))
    if path.suffix == ".json" and path.is_file():
        kind = _json_kind(path)
        if kind == "isonca":
            return _isonca(spec, path, target)
        if kind == "tfjs":
            cfg, params, provenance = read_tfjs(path)
            return LoadedModel(spec, cfg, {k: jax.device_put(v) for k, v in params.items()}, target,
                               provenance=provenance)
        cfg, params = load_demo_json(path)
        return LoadedModel(spec, cfg, params, target, provenance={"format": "distill-demo-json", "source": spec})
    if not path.exists() and (path.suffix or "/" in spec):
        raise NCAError(f"unknown model {spec!r}: no such file or folder")
    raise NCAError(f"unknown model {spec!r}: give a run directory (or run@step=N), a model folder, a "
                   f"PyTorch state_dict ({', '.join(TORCH_SUFFIXES)}), a Distill demo .json, or a "
                   "published name such as 'distill:lizard/regenerating' (nca.published_names() lists them)")


def grow(
    model: LoadedModel,
    steps: int,
    key: jax.Array,
    x0: jax.Array | None = None,
    size: int | None = None,
    record: tuple[str, ...] = ("state",),
    hooks: Hooks | None = None,
    t0: int = 0,
    every: int = 1,
    batch: int | None = None,
) -> tuple[jax.Array, Trajectory]:
    """Grow ``model`` for ``steps`` steps (jitted rollout) -> (final state, Trajectory).

    x0: start state ``[..., H, W, C]`` (default: the seed on a ``size`` grid, default the
    training grid; ``batch`` seeds if given). hooks: ``{point: fn(value, t) -> value}`` (or
    a tuple of pairs) at points of ``nca.model.HOOK_POINTS``. A ``nca.hooks.Hook`` (what
    ``analysis.causal.interventions`` builds) is traced: another hook of the same kind with new
    arrays of the same shapes reuses the compiled program. A plain function is compared by
    identity: each new one (a new closure, a new lambda) compiles a new program.
    """
    for name, value, least in (("steps", steps, 0), ("every", every, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise NCAError(f"{name} must be an integer >= {least}, got {value!r}")
    if isinstance(t0, (int, np.integer)) and t0 < 0:  # (t0 may also be a traced array)
        raise NCAError(f"t0 must be >= 0, got {t0}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
        raise NCAError(f"batch must be an integer >= 1, got {batch!r}")
    if x0 is None:
        size = model.grid_size if size is None else size  # 0 is an error, not "the default"
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 3:
            raise NCAError(f"grid size must be >= 3, got {size}")
        with out_of_memory_as_error(f"making a {size}x{size} seed state"):
            x0 = seed_state(size, size, model.model_config, batch=batch)
    if x0.shape[-1] != model.model_config.channels:
        raise NCAError(f"state has {x0.shape[-1]} channels, model expects {model.model_config.channels}")
    if hooks:
        hooks = dict(hooks)
        unknown = sorted(set(hooks) - set(HOOK_POINTS))
        if unknown:  # a misspelt hook point would otherwise do nothing, silently
            raise NCAError(f"unknown hook point(s) {unknown}; choose from {', '.join(HOOK_POINTS)}")
        hooks = {name: as_hook(fn) for name, fn in hooks.items()}
    widths = {"state": x0.shape[-1], "perception": model.model_config.perception_dim, "hidden": model.model_config.hidden,
              "update": x0.shape[-1], "fire": 1, "alive": 1}
    frame = math.prod(x0.shape[:-1]) * 4  # bytes of one channel of the state(s), float32
    check_fits(frame * (4 * x0.shape[-1] + 2 * model.model_config.hidden
                        + (steps // every) * sum(widths.get(r, 0) for r in record)),
               f"growing {tuple(x0.shape)} for {steps} steps, recording {tuple(record)}",
               "use a smaller grid, fewer steps, a larger every or fewer recordings")
    with out_of_memory_as_error(f"growing {tuple(x0.shape)} for {steps} steps, recording {tuple(record)}"):
        # hooks: {point: Hook} or None, a traced pytree: a Hook's fn and static settings are
        # part of its tree structure (so of the compiled program), its arrays are not
        return jit_rollout(model.params, x0, key, steps, model.model_config, record=tuple(record),
                           hooks=hooks or None, t0=t0, every=every)


__all__ = ["LoadedModel", "load_model", "load_run", "load_kept_model", "load_model_folder", "save_model",
           "grow", "init_params"]
