"""Growth, damage and regeneration animations, streamed to GIF, MP4 or PNG frames.

    from nca.animate import Animation, export
    from nca.damage import parse_cut
    export(Animation(models=("distill:lizard/regenerating",), steps=400,
                     damage=(parse_cut("200:left"),)), "regen.gif")

Pipeline (memory stays bounded by one chunk, however long the animation):

1. ``frames`` advances every source (model x angle x seed) on device in jitted chunks of
   ``chunk_frames * every`` steps (``rollout`` with a dynamic ``active_steps``, so one
   compilation serves every chunk length), splitting chunks at damage steps and applying
   the damage between them. Step keys are ``fold_in(key, t)``, so the chunked rollout is
   exactly the one long rollout. It yields ``(t, [state [H, W, C] per source])``.
2. ``nca.render.Layout.render`` turns one such frame into an RGB image.
3. A writer (``open_writer``) sends it to disk at once: our streaming GIF encoder, the
   imageio-ffmpeg pipe for MP4, or one PNG per frame. Output goes to a temporary sibling
   that replaces the destination only when the export has finished.

Damage events: ``Disc`` (``--damage STEP:x,y,r``) and ``Cut`` (``--cut STEP:left``), defined
in ``nca.damage`` and re-exported here. An event at step ``s`` erases cells (all channels
set to 0) in the state after ``s`` steps, before step ``s + 1``; the frame of step ``s``
already shows the wound.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from .api import LoadedModel, load_model
from .checkpoint import atomic_write_bytes, file_mode
from .damage import CUTS, Cut, Damage, Disc, damage_mask, parse_cut, parse_damage
from .errors import NCAError, check_fits
from .model import rollout, seed_state
from .render import (
    BACKGROUNDS,
    Layout,
    channel_items,
    make_layout,
    make_panels,
    parse_panels,
)

FORMATS = {".gif": "gif", ".mp4": "mp4", "": "png"}
CHUNK_BYTES = 32 * 2**20  # host + device budget for one chunk of recorded states

# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One animated organism (one tile per panel): a model (its rotation already in
    ``model.model_config.angle_deg``), the PRNG seed of its stochastic updates, a label."""

    model: LoadedModel
    seed: int
    label: str = ""


def make_sources(models: Sequence[LoadedModel], seeds: Sequence[int], angles: Sequence[float] = ()) -> list[Source]:
    """Every (model, angle, seed) combination, in that nesting order. An empty ``angles``
    keeps each model's own angle. Labels name only what varies between sources."""
    angle_list: Sequence[float | None] = list(angles) or [None]
    out = []
    for m in models:
        for a in angle_list:
            mm = m if a is None else m.rotated(a)
            for s in seeds:
                parts = []
                if len(models) > 1:
                    parts.append(m.name.removeprefix("distill:"))
                if len(angle_list) > 1:
                    parts.append(f"{a:g}°")
                if len(seeds) > 1:
                    parts.append(f"seed {s}")
                out.append(Source(mm, int(s), " · ".join(parts)))
    return out


# --------------------------------------------------------------------------- frames


@partial(jax.jit, static_argnames=("steps", "every", "cfg"))
def _advance(params, x, key, t0, active, steps, every, cfg):
    """``steps``-step rollout of which only the first ``active`` steps run (the rest are
    the identity), recording every ``every``-th state: one compilation for every chunk."""
    return rollout(params, x, key, steps, cfg, record=("state",), t0=t0, every=every, active_steps=active)


def default_chunk_frames(n_sources: int, height: int, width: int, channels: int, n_frames: int) -> int:
    """Frames per chunk such that one chunk of float32 states of all sources fits ``CHUNK_BYTES``."""
    per_frame = n_sources * height * width * channels * 4
    return int(max(1, min(n_frames, CHUNK_BYTES // per_frame, 256)))


def frames(
    sources: Sequence[Source],
    steps: int,
    size: int,
    every: int = 1,
    damage: Sequence[Damage] = (),
    chunk_frames: int | None = None,
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Yield ``(t, [state [H, W, C] float32 per source])`` for t = 0, every, 2*every, ...
    up to ``steps`` (t = 0 is the seed). Damage at step s is applied after step s.

    At most ``chunk_frames`` recorded frames per source exist at a time (on device and
    on host); the caller should consume each frame before asking for the next chunk.
    """
    if not sources:
        raise NCAError("no models to animate")
    cfg0 = sources[0].model.model_config
    n_frames = steps // every + 1
    chunk = chunk_frames or default_chunk_frames(len(sources), size, size, cfg0.channels, n_frames)
    by_step: dict[int, list[Damage]] = {}
    for d in damage:
        by_step.setdefault(d.step, []).append(d)
    keep = {s: jnp.asarray(~damage_mask(ev, size, size), jnp.float32)[..., None] for s, ev in by_step.items()}
    keep_np = {s: np.asarray(k) for s, k in keep.items()}

    xs = [seed_state(size, size, src.model.model_config) for src in sources]
    keys = [jax.random.key(src.seed) for src in sources]
    if 0 in keep:
        xs = [x * keep[0] for x in xs]
    yield 0, [np.asarray(x) for x in xs]

    t = 0
    cut_steps = sorted(s for s in keep if 0 < s <= steps)
    while t < steps:
        boundary = min([s for s in cut_steps if s > t] + [steps])
        aligned = t % every == 0
        end = min(boundary, t + chunk * every if aligned else t + every - t % every)
        outs = [
            _advance(src.model.params, x, k, t, end - t, chunk * every, every, src.model.model_config)
            for src, x, k in zip(sources, xs, keys)
        ]
        xs = [o[0] for o in outs]
        if aligned:  # frames recorded at t + every, t + 2 every, ... <= end
            times = list(range(t + every, end + 1, every))
            recorded = [np.asarray(o[1].states)[: len(times)] for o in outs]
        else:  # only the chunk's end can be a frame time
            times = [end] if end % every == 0 else []
            recorded = [np.asarray(x)[None] for x in xs] if times else []
        del outs
        if end in keep:
            xs = [x * keep[end] for x in xs]
            if times and times[-1] == end:  # the frame at the damage step shows the wound
                recorded = [r.copy() for r in recorded]
                for r in recorded:
                    r[-1] *= keep_np[end]
        for i, time in enumerate(times):
            yield time, [r[i] for r in recorded]
        recorded = None
        t = end


def channel_ranges(stream: Iterator[tuple[int, list[np.ndarray]]], channels: Sequence[int], on_step=None) -> dict[int, float]:
    """Largest |value| of each channel over a whole frame stream (all sources): the fixed
    symmetric range of a channel panel. 1.0 for a channel that is 0 throughout."""
    vmax = {c: 0.0 for c in channels}
    last = 0
    for t, states in stream:
        for s in states:
            for c in channels:
                vmax[c] = max(vmax[c], float(np.abs(s[..., c]).max()))
        if on_step:
            on_step(t - last)
        last = t
    return {c: (v if v > 0 else 1.0) for c, v in vmax.items()}


# --------------------------------------------------------------------------- writers


def output_format(path: Path) -> str:
    """'gif', 'mp4' or 'png' (a folder: a path without extension)."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise NCAError(f"unsupported output {Path(path).name!r}: use a .gif or .mp4 file, or a folder "
                       "name without extension for PNG frames")
    return fmt


def sidecar_path(path: Path) -> Path:
    """Where the settings JSON goes: ``growth.gif`` -> ``growth.gif.json``, folder ``frames`` -> ``frames.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _shareable(path: Path) -> None:
    """Give a file made by mkstemp/mkdtemp (private, 0600/0700) the usual umask permissions."""
    os.chmod(path, file_mode(path.is_dir()))


def _temp_sibling(path: Path, folder: bool) -> Path:
    """A fresh temporary file/folder next to ``path`` keeping its extension (ffmpeg and
    Pillow pick the format from it); a clear error if the folder is not writable."""
    parent = path.parent
    for p in path.parents:
        if p.exists():
            if not p.is_dir():
                raise NCAError(f"cannot write {path}: {p} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}."))
        else:
            fd, name = tempfile.mkstemp(dir=parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
            os.close(fd)
            tmp = Path(name)
        _shareable(tmp)
        return tmp
    except OSError as e:
        raise NCAError(f"cannot write {path}: {e.strerror or e}") from None


def _palette_image(frame: np.ndarray) -> Image.Image:
    """uint8 [h, w, 3] -> a 'P' image. Exact when the frame has <= 256 colours; otherwise
    pure white (the background) keeps an exact entry and the other pixels go through
    Pillow's octree quantizer (~10x faster than median cut, within a few levels)."""
    flat = frame.reshape(-1, 3)
    if Image.fromarray(frame).getcolors(256) is not None:
        rgb = flat.astype(np.int32)
        colours, index = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_inverse=True)
        palette = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], -1)
    else:
        white = (flat == 255).all(1)
        q = Image.fromarray(np.ascontiguousarray(flat[~white])[None]).quantize(255, method=Image.Quantize.FASTOCTREE)
        index = np.zeros(len(flat), np.int32)
        index[~white] = np.asarray(q)[0].astype(np.int32) + 1
        palette = np.concatenate([[[255, 255, 255]], np.reshape(q.getpalette()[: 255 * 3], (-1, 3))])
    img = Image.fromarray(index.reshape(frame.shape[:2]).astype(np.uint8), "P")
    img.putpalette(palette.astype(np.uint8).tobytes())
    return img


class GifStreamWriter:
    """Animated GIF written frame by frame (Pillow's GIF encoder, one local palette per
    frame). Pillow's ``save_all`` and imageio's pillow plugin keep every frame in memory
    until the file is closed; this writer keeps none."""

    def __init__(self, path: Path, fps: float, comment: str = ""):
        self.file = open(path, "wb")
        self.duration_ms = max(10, int(round(1000.0 / fps / 10.0)) * 10)  # GIF stores 1/100 s
        self.comment = comment
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        """frame: uint8 [h, w, 3]."""
        from PIL import GifImagePlugin

        q = _palette_image(frame)
        if self.count == 0:
            info = {"loop": 0, "duration": self.duration_ms}
            if self.comment:
                info["comment"] = self.comment
            header, _ = GifImagePlugin.getheader(q.copy(), info=info)
            self.file.write(b"".join(header))
        for chunk in GifImagePlugin.getdata(q, (0, 0), duration=self.duration_ms, disposal=1,
                                            include_color_table=True):
            self.file.write(chunk)
        self.count += 1

    def close(self) -> None:
        if not self.file.closed:
            if self.count:
                self.file.write(b";")  # trailer
            self.file.close()


class Mp4Writer:
    """H.264 MP4 through imageio-ffmpeg's bundled binary: frames are piped to ffmpeg as
    they come. Odd sizes are padded with white to even (yuv420p needs even sides)."""

    def __init__(self, path: Path, fps: float, comment: str = ""):
        import imageio.v2 as iio

        self.writer = iio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                     pixelformat="yuv420p", macro_block_size=1, quality=None,
                                     output_params=["-crf", "18", "-movflags", "+faststart",
                                                    "-metadata", f"comment={comment}"],
                                     ffmpeg_log_level="error")
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
        if self.count == 0:  # the first frame starts ffmpeg
            import warnings

            with warnings.catch_warnings():
                # subprocess.Popen fork+execs ffmpeg at once (no Python runs in the child),
                # so Python's "fork() with JAX threads" RuntimeWarning does not apply here
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                self.writer.append_data(frame)
        else:
            self.writer.append_data(frame)
        self.count += 1

    def close(self) -> None:
        self.writer.close()


class PngFolderWriter:
    """One ``frame_00000.png`` per frame in a folder (a temporary folder that
    ``open_writer`` swaps in at the end, which is what makes the set of frames atomic)."""

    def __init__(self, path: Path, fps: float, comment: str = ""):
        self.path = path
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self.path / f"frame_{self.count:05d}.png", format="PNG")
        self.count += 1

    def close(self) -> None:
        pass


WRITERS = {"gif": GifStreamWriter, "mp4": Mp4Writer, "png": PngFolderWriter}


class open_writer:
    """Context manager: ``with open_writer(path, fps) as w: w.append(frame)``.

    Writes to a temporary sibling and moves it over ``path`` only when the block ends
    without an error, so an interrupted export never leaves a torn file nor loses the old
    one. A PNG folder replaces an existing folder only if that holds nothing but frames.
    """

    def __init__(self, path: Path, fps: float, comment: str = ""):
        self.path = Path(path)
        self.format = output_format(self.path)
        if self.format == "png" and self.path.exists():
            if not self.path.is_dir():
                raise NCAError(f"output {self.path} is a file; PNG frames need a folder path")
            others = [p.name for p in self.path.iterdir() if not (p.name.startswith("frame_") and p.suffix == ".png")]
            if others:
                raise NCAError(f"output folder {self.path} holds other files ({others[0]}, ...); "
                               "choose a new or empty folder")
        elif self.path.is_dir():
            raise NCAError(f"output {self.path} is a folder; give a file name ending in .gif or .mp4")
        self.tmp = _temp_sibling(self.path, folder=self.format == "png")
        try:
            self.writer = WRITERS[self.format](self.tmp, fps, comment)
        except BaseException:
            self._discard()
            raise

    def __enter__(self):
        return self.writer

    def _discard(self):
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()

    def __exit__(self, exc_type, exc, tb):
        try:
            self.writer.close()
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return False
        if self.format == "png":
            old = None
            if self.path.exists():
                old = self.path.with_name(f".{self.path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)
        return False


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Animation:
    """Everything that determines an animation (recorded in the sidecar JSON).

    models: run directories or published names; seeds, angles (degrees; () = each model's
    own): every combination is one tile group; steps, every: frames at t = 0, every, ...,
    steps; size: grid side (None = the largest training grid); scale: integer nearest
    upscaling; panels: "rgba" and/or channel numbers; channel_range: vmax of channel
    panels (None = measured over the whole animation in a first pass); cols: tiles per row.
    """

    models: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    angles: tuple[float, ...] = ()
    steps: int = 300
    every: int = 2
    fps: float = 20.0
    scale: int = 4
    size: int | None = None
    background: str = "white"
    damage: tuple[Damage, ...] = ()
    panels: tuple[str, ...] = ("rgba",)
    channel_range: float | None = None
    counter: bool = True
    cols: int | None = None
    chunk_frames: int | None = None

    def validate(self) -> None:
        checks = [
            (self.models, "give at least one MODEL"),
            (self.seeds, "give at least one seed"),
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (self.every >= 1, f"every must be >= 1, got {self.every}"),
            (self.fps > 0, f"fps must be > 0, got {self.fps}"),
            (1 <= self.scale <= 64, f"scale must be an integer 1..64, got {self.scale}"),
            (self.size is None or self.size >= 3, f"size must be >= 3, got {self.size}"),
            (self.background in BACKGROUNDS, f"background must be one of {', '.join(BACKGROUNDS)}"),
            (self.channel_range is None or self.channel_range > 0, "channel_range must be > 0"),
            (self.cols is None or self.cols >= 1, "cols must be >= 1"),
            (self.chunk_frames is None or self.chunk_frames >= 1, "chunk_frames must be >= 1"),
            (len(set(self.seeds)) == len(self.seeds), "seeds: a seed is listed twice"),
            (all(0 <= s < 2**32 for s in self.seeds), f"seeds must be in [0, 2**32), got {list(self.seeds)}"),
            (all(np.isfinite(a) for a in self.angles), f"angles must be finite numbers, got {list(self.angles)}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise NCAError(msg)
        for d in self.damage:
            if d.step > self.steps:
                raise NCAError(f"damage at step {d.step} is after the last step ({self.steps}); "
                               "raise the number of steps or move the damage")


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def export(anim: Animation, out: str | Path, progress=None, command: str | None = None,
           panel_context: dict | None = None) -> dict:
    """Render ``anim`` to ``out`` (.gif, .mp4, or a folder for PNG frames) and write the
    sidecar JSON next to it. Returns the sidecar's content.

    progress: optional ``(description, total_steps) -> bar`` with ``update(n)`` and
    ``close()`` (a tqdm), called once per pass over the rollout. panel_context: extra
    entries for the panel factories (``nca.render.make_panels``), e.g. a PCA fitted
    elsewhere (``analysis.representation.panels.fitted``); their names are recorded in the sidecar.
    """
    anim.validate()
    out = Path(out)
    output_format(out)
    progress = progress or (lambda desc, total: _NoBar())
    models = [load_model(m) for m in anim.models]
    channels = {m.model_config.channels for m in models}
    if len(channels) > 1:
        raise NCAError(f"the models have different channel counts {sorted(channels)}; animate them separately")
    n_channels = channels.pop()
    items = parse_panels(",".join(anim.panels), n_channels)
    size = anim.size or max(m.grid_size for m in models)
    sources = make_sources(models, anim.seeds, anim.angles)
    # Before any allocation: XLA can abort on a failed one. The rollout holds each source's
    # state and one step's activations; a rendered frame holds every tile, upscaled.
    hidden = max(m.model_config.hidden for m in models)
    frame_px = len(sources) * len(items) * (size * anim.scale) ** 2
    check_fits(len(sources) * size * size * 4 * (4 * n_channels + 2 * hidden) + 8 * frame_px,
               f"animating {len(sources)} source(s) on a {size}x{size} grid at scale {anim.scale}",
               "use a smaller size or scale, or fewer models, seeds or angles")
    stream = partial(frames, sources, anim.steps, size, anim.every, anim.damage, anim.chunk_frames)
    n_frames = anim.steps // anim.every + 1
    comment = json.dumps({"seeds": list(anim.seeds), "models": list(anim.models), "steps": anim.steps})

    # open the output first: an unwritable path fails before any compute
    with open_writer(out, anim.fps, comment) as writer:
        wanted = channel_items(items)
        if anim.channel_range is not None or not wanted:
            ranges = {c: anim.channel_range or 1.0 for c in wanted}
        else:  # first pass: the same (deterministic) rollout, keeping each channel's max |value|
            bar = progress("measuring channel ranges", anim.steps)
            try:
                ranges = channel_ranges(stream(), wanted, bar.update)
            finally:
                bar.close()
        context = {"models": models, "size": size, "steps": anim.steps, "seed": anim.seeds[0], **(panel_context or {})}
        panels = make_panels(items, anim.background, ranges, context)
        layout: Layout = make_layout(len(sources), panels, [s.label for s in sources], (size, size),
                                     anim.scale, anim.cols, anim.counter)
        bar = progress("rendering", anim.steps)
        try:
            last = 0
            for t, states in stream():
                writer.append(layout.render(t, states))
                bar.update(t - last)
                last = t
        finally:
            bar.close()
        if writer.count != n_frames:
            raise RuntimeError(f"wrote {writer.count} frames, expected {n_frames}")

    meta = {
        "command": command,
        "settings": settings_dict(anim),
        "grid_size": size,
        "sources": [{"model": s.model.name, "seed": s.seed, "angle_deg": s.model.model_config.angle_deg,
                     "label": s.label} for s in sources],
        "damage": [d.describe(size, size) for d in anim.damage],
        "channel_range": {str(c): v for c, v in ranges.items()},
        "panel_context": sorted(panel_context or ()),
        "chunk_frames": anim.chunk_frames or default_chunk_frames(len(sources), size, size, n_channels, n_frames),
        "output": {"path": str(out), "format": output_format(out), "frames": n_frames,
                   "width": layout.width, "height": layout.height,
                   "every": anim.every, "last_frame_step": anim.every * (n_frames - 1),
                   "tile_size": [size * anim.scale, size * anim.scale],
                   "tiles": [{"source": s, "panel": panels[p].title, "top": top, "left": left}
                             for s, p, top, left in layout.tiles]},
        "versions": versions(),
    }
    atomic_write_bytes(sidecar_path(out), (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def settings_dict(anim: Animation) -> dict:
    """The Animation as JSON-ready data (damage events tagged with their kind)."""
    d = asdict(anim)
    d["damage"] = [{"kind": "disc" if isinstance(e, Disc) else "cut", **asdict(e)} for e in anim.damage]
    for k in ("models", "seeds", "angles", "panels"):
        d[k] = list(d[k])
    return d


def versions() -> dict:
    import PIL

    from . import __version__

    return {"nca": __version__, "jax": jax.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


__all__ = ["Animation", "CUTS", "Cut", "Disc", "Source", "damage_mask", "export", "frames", "make_sources",
           "open_writer", "parse_cut", "parse_damage", "sidecar_path"]
