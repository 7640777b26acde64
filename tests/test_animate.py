"""Animations: the chunked frame stream, panels/layout, writers, the CLI (the damage
shapes and their specs: tests/test_damage.py).

End-to-end tests decode what scripts/animate.py wrote (imageio). The published
``distill:lizard/regenerating`` grows its lizard in ~100-200 steps on its 72x72 grid.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import jax
import numpy as np
import pytest

import nca
from nca.animate import Animation, GifStreamWriter, export, frames, make_sources, open_writer, sidecar_path
from nca.damage import Cut, Disc, damage_mask
from nca.render import ChannelPanel, RGBAPanel, colormap_lut, make_layout, to_uint8, upscale

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "animate.py"
REGEN = "distill:lizard/regenerating"


def run_script(args, monkeypatch):
    """Run scripts/animate.py in this process (JAX is imported once); -> exit code."""
    monkeypatch.setattr(sys, "argv", ["animate.py", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return e.value.code


@pytest.fixture(scope="module")
def lizard():
    return nca.load_model(REGEN)


@pytest.fixture(scope="module")
def target_rgb(lizard):
    """The emoji the model learned, composited on white: [72, 72, 3] in [0, 1]."""
    return np.asarray(nca.to_rgb(lizard.target_image()))


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


# --------------------------------------------------------------------------- frame stream


def test_chunked_stream_equals_one_rollout_with_damage(lizard):
    """Frames from chunks split at damage steps == one rollout whose 'state' hook applies
    the same damage (the core's mechanism, not ours), for any chunk size."""
    size, steps, every = 24, 40, 3
    # 20: between frames; 21: a frame step right after an unaligned chunk; 30: a frame step
    # ending a full chunk; 31: between frames again
    damage = (Disc(20, 12, 12, 5), Cut(21, "left"), Disc(30, 6, 18, 3), Disc(31, 0.5, 0.5, 0.2, fraction=True))
    src = make_sources([lizard], [3])
    runs = [list(frames(src, steps, size, every, damage, chunk_frames=c)) for c in (2, 50)]
    times = list(range(0, steps + 1, every))
    for run in runs:
        assert [t for t, _ in run] == times

    keep = {d.step: (~damage_mask([d], size, size)).astype(np.float32)[..., None] for d in damage}

    def hook(x, t):  # the state entering step t is the state after t steps
        for s, k in keep.items():
            x = jax.numpy.where(t == s, x * k, x)
        return x

    _, traj = nca.grow(lizard, steps, jax.random.key(3), size=size, hooks={"state": hook})
    ref = np.asarray(traj.states)  # ref[t - 1]: after t steps, before damage at t
    for (t, [a]), (_, [b]) in zip(*runs):
        want = np.asarray(nca.seed_state(size, size)) if t == 0 else ref[t - 1] * keep.get(t, 1.0)
        np.testing.assert_allclose(a, want, atol=1e-5)
        np.testing.assert_array_equal(a, b)
    # the frame of a damage step that is a frame step shows the wound
    frame21 = dict(runs[0])[21][0]
    assert not frame21[:, : size // 2].any() and (frame21[..., 3] > 0.1).any()


def test_rotated_sources_grow_rotated_lizards(lizard, target_rgb):
    """--angles: 90 degrees grows the lizard turned counter-clockwise (np.rot90)."""
    src = make_sources([lizard], [0], [0, 90])
    assert [s.model.model_config.angle_deg for s in src] == [0.0, 90.0] and src[1].label == "90°"
    (_, last) = list(frames(src, 160, 72, every=160))[-1]
    up, turned = (np.asarray(nca.to_rgb(x)) for x in last)
    assert mse(up, target_rgb) < 0.005
    ccw, cw = np.rot90(target_rgb, 1), np.rot90(target_rgb, -1)
    assert mse(turned, ccw) < 0.5 * min(mse(turned, target_rgb), mse(turned, cw))


# --------------------------------------------------------------------------- panels, layout


def test_channel_panel_colours_and_checker_background():
    state = np.zeros((4, 6, 16), np.float32)
    state[0, 0, 5], state[0, 1, 5], state[0, 2, 5] = -2.0, 2.0, 9.0  # 9 is clipped to vmax
    rgb = ChannelPanel(5, vmax=2.0)(state)
    lut = colormap_lut("RdBu_r")
    np.testing.assert_allclose(rgb[0, 0], lut[0]) and np.testing.assert_allclose(rgb[0, 1], lut[255])
    np.testing.assert_allclose(rgb[0, 2], lut[255])
    assert rgb[1, 1].min() > 0.9  # 0 (a dead cell) is near white in the diverging map
    empty = np.zeros((8, 8, 16), np.float32)
    checker = RGBAPanel("checker")(empty)
    assert len(np.unique(checker)) == 2 and checker[0, 0, 0] != checker[0, 4, 0]
    empty[0, 0, :4] = [0.2, 0.4, 0.6, 1.0]  # an opaque cell shows its own colour
    np.testing.assert_allclose(RGBAPanel("checker")(empty)[0, 0], [0.2, 0.4, 0.6], atol=1e-6)


def test_layout_places_every_tile(lizard):
    states = [x for x in list(frames(make_sources([lizard], [0, 1]), 30, 20, every=30))[-1][1]]
    panels = [RGBAPanel(), ChannelPanel(4, 1.5)]
    lay = make_layout(2, panels, ["seed 0", "seed 1"], (20, 20), scale=3, counter=True)
    frame = lay.render(30, states)
    assert frame.shape == (lay.height, lay.width, 3) and frame.dtype == np.uint8
    assert len(lay.tiles) == 4 and {(s, p) for s, p, _, _ in lay.tiles} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    rows = sorted({top for _, _, top, _ in lay.tiles})
    assert len(rows) == 2  # several panels: one row per source
    for s, p, top, left in lay.tiles:
        want = upscale(to_uint8(panels[p](states[s])), 3)
        np.testing.assert_array_equal(frame[top:top + 60, left:left + 60], want)
    assert not np.array_equal(lay.render(31, states)[: rows[0] - 15], frame[: rows[0] - 15])  # counter


# --------------------------------------------------------------------------- end to end (GIF)


@pytest.fixture(scope="module")
def regen_gif(tmp_path_factory):
    """The article's regeneration experiment in one command: grow 200 steps, cut the left
    half away, regrow until 400. Every 10th step, scale 1: 41 frames of 72x72."""
    out = tmp_path_factory.mktemp("gif") / "regen.gif"
    mp = pytest.MonkeyPatch()
    try:
        code = run_script([REGEN, "--steps", 400, "--every", 10, "--scale", 1, "--no-counter",
                           "--cut", "200:left", "--seed", 7, "--quiet", "--out", out], mp)
    finally:
        mp.undo()
    assert code == 0
    return out, iio.imread(out)


def test_gif_frames_count_size_and_seed(regen_gif):
    out, f = regen_gif
    assert f.shape == (41, 72, 72, 3)
    seed = np.full((72, 72, 3), 255, np.uint8)
    seed[36, 36] = 0  # the seed cell: alpha 1, colour 0 -> black on white
    np.testing.assert_array_equal(f[0], seed)


def test_gif_late_frame_resembles_the_emoji(regen_gif, target_rgb):
    _, f = regen_gif
    blank = mse(np.ones_like(target_rgb), target_rgb)
    assert mse(f[19] / 255.0, target_rgb) < 0.005 < blank / 5  # step 190, before the cut


def test_gif_damage_removes_cells_and_model_regrows_them(regen_gif, target_rgb):
    _, f = regen_gif

    def painted(frame):  # visibly coloured pixels (not background white)
        return (frame.min(-1) < 200).sum()

    before, cut, end = f[19], f[20], f[40]  # steps 190, 200 (after the cut), 400
    assert painted(before[:, :36]) > 200
    assert (cut[:, :36] == 255).all()  # the named half is gone ...
    assert painted(cut[:, 36:]) > 0.8 * painted(before[:, 36:])  # ... and only that half
    assert painted(end[:, :36]) > 0.9 * painted(before[:, :36])  # regrown within 200 steps
    assert mse(end / 255.0, target_rgb) < 0.005


def test_sidecar_records_settings_and_seed(regen_gif):
    out, _ = regen_gif
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["settings"]["seeds"] == [7] and meta["sources"][0]["seed"] == 7
    assert meta["settings"]["steps"] == 400 and meta["grid_size"] == 72
    assert meta["damage"] == [{"step": 200, "kind": "cut", "part": "left", "erased_cells": 36 * 72}]
    assert meta["output"]["frames"] == 41 and "--cut 200:left" in meta["command"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left


# --------------------------------------------------------------------------- MP4, PNG, determinism


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's reader starts ffmpeg
def test_mp4_export(tmp_path, monkeypatch):
    out = tmp_path / "grow.mp4"
    assert run_script([REGEN, "--steps", 40, "--every", 10, "--scale", 2, "--quiet", "--out", out], monkeypatch) == 0
    meta = json.loads(sidecar_path(out).read_text())
    with iio2.get_reader(out) as reader:
        decoded = list(reader.iter_data())
    assert len(decoded) == 5 == meta["output"]["frames"]
    h, w = meta["output"]["height"], meta["output"]["width"]
    assert decoded[0].shape == (h + h % 2, w + w % 2, 3) and w == 144
    band = h - 144  # the step counter's band on top
    seed = decoded[0][band:].astype(int)
    assert seed[72, 72].max() < 60 and seed[10, 10].min() > 230  # black seed cell on white


def test_png_frames_are_deterministic_for_a_seed(tmp_path, lizard):
    def render(seed, name):
        anim = Animation(models=(REGEN,), seeds=(seed,), steps=60, every=20, size=32, scale=1,
                         damage=(Disc(40, 16, 16, 4),))
        meta = export(anim, tmp_path / name)
        files = sorted((tmp_path / name).iterdir())
        return meta, np.stack([iio.imread(p) for p in files]), [p.name for p in files]

    meta_a, a, names = render(0, "a")
    meta_b, b, _ = render(0, "b")
    _, c, _ = render(1, "c")
    assert names == [f"frame_{i:05d}.png" for i in range(4)] and a.shape[0] == 4
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # another seed: other fire masks
    meta_a["output"].pop("path"), meta_b["output"].pop("path")
    assert meta_a == meta_b and (tmp_path / "a.json").is_file()


def test_channel_panels_range_is_the_measured_maximum(tmp_path, lizard):
    out = tmp_path / "panels.gif"
    meta = export(Animation(models=(REGEN,), seeds=(0, 1), steps=60, every=20, size=32, scale=2,
                            panels=("rgba", "4", "9")), out)
    want = {}
    for seed in (0, 1):
        _, traj = nca.grow(lizard, 60, jax.random.key(seed), size=32, every=20)
        for c in (4, 9):
            want[str(c)] = max(want.get(str(c), 0.0), float(np.abs(traj.states[..., c]).max()))
    assert meta["channel_range"] == pytest.approx(want, rel=1e-6)
    f = iio.imread(out)
    assert f.shape[0] == 4 and f.shape[2] > 3 * 64 and f.shape[1] > 2 * 64  # 2 rows x 3 panels


def test_run_directory_beside_a_published_model(tmp_path, monkeypatch):
    """A run directory (here: an untrained 'tiny' run, whose zero last layer makes the CA
    do nothing) and a published model side by side on one grid."""
    from nca.checkpoint import CHECKPOINT, CONFIG, save_checkpoint
    from nca.config import preset, save_config
    from nca.train import init_train_state

    run = tmp_path / "run"
    cfg = preset("tiny")
    save_config(cfg, run / CONFIG)
    save_checkpoint(run / CHECKPOINT, {"train": init_train_state(cfg), "elapsed": np.float64(0)})
    out = tmp_path / "pair.gif"
    args = [run, "distill:lizard/growing", "--size", 24, "--steps", 20, "--every", 10, "--scale", 1, "--quiet"]
    assert run_script(args + ["--out", out], monkeypatch) == 0
    meta = json.loads(sidecar_path(out).read_text())
    assert [s["model"] for s in meta["sources"]] == [str(run), "distill:lizard/growing"]
    assert meta["sources"][1]["label"] == "lizard/growing"
    f = iio.imread(out)
    (h, w), tiles = meta["output"]["tile_size"], meta["output"]["tiles"]
    assert f.shape == (3, meta["output"]["height"], meta["output"]["width"], 3) and (h, w) == (24, 24)
    left, right = ([fr[t["top"]:t["top"] + h, t["left"]:t["left"] + w] for fr in f] for t in tiles)
    seed = np.full((24, 24, 3), 255)
    seed[12, 12] = 0

    def off(tile):  # frames with > 256 colours are quantized (octree): allow a few levels
        return np.abs(tile.astype(int) - seed).max()

    assert all(off(tile) <= 16 for tile in left)  # the do-nothing CA keeps its seed
    assert off(right[0]) == 0 and off(right[2]) > 100  # the lizard grows


# --------------------------------------------------------------------------- writers, memory


def test_failed_export_keeps_the_old_file(tmp_path):
    out = tmp_path / "keep.gif"
    out.write_bytes(b"old animation")
    with pytest.raises(RuntimeError):
        with open_writer(out, fps=10) as w:
            w.append(np.zeros((8, 8, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old animation" and os.listdir(tmp_path) == ["keep.gif"]


def test_gif_writer_streams_to_disk(tmp_path):
    w = GifStreamWriter(tmp_path / "s.gif", fps=10)
    sizes = []
    for i in range(40):
        w.append(np.full((64, 64, 3), i * 6, np.uint8))
        w.file.flush()
        sizes.append(os.path.getsize(tmp_path / "s.gif"))
    w.close()
    assert all(b > a for a, b in zip(sizes, sizes[1:]))  # every frame reached the file at once
    assert iio.imread(tmp_path / "s.gif").shape == (40, 64, 64, 3)


def _vm(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def test_long_export_memory_is_bounded(tmp_path):
    """1001 frames whose pixels alone would take ~150 MB: peak RSS may grow by far less."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak-RSS counter (Linux)
    except OSError:
        pytest.skip("cannot reset peak RSS here")
    anim = Animation(models=(REGEN,), steps=1000, every=1, scale=3, chunk_frames=16)
    export(Animation(**{**anim.__dict__, "steps": 16}), tmp_path / "warm.gif")  # compile first
    base = _vm("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    meta = export(anim, tmp_path / "long.gif")
    growth = _vm("VmHWM") - base
    o = meta["output"]
    all_frames = o["frames"] * o["width"] * o["height"] * 3
    print(f"\npeak RSS growth {growth / 2**20:.0f} MiB for {o['frames']} frames of {o['width']}x{o['height']} "
          f"({all_frames / 2**20:.0f} MiB of pixels)")
    assert all_frames > 140e6
    # keeping the frames (as imageio's pillow plugin does) grows it by ~150 MB; we allow half
    assert growth < all_frames / 2, f"peak RSS grew by {growth / 1e6:.0f} MB"


# --------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize("args, says", [
    (["distill:unicorn/growing"], "unicorn"),
    (["no/such/run_dir"], "unknown model"),
    ([REGEN, "--damage", "10:1,2"], "--damage"),
    ([REGEN, "--cut", "10:middle"], "--cut"),
    ([REGEN, "--steps", 50, "--cut", "60:left"], "after the last step"),
    ([REGEN, "--panels", "rgba,99"], "channel 99"),
    ([REGEN, "--every", 0], "--every"),
    ([REGEN, "--seed", "a,b"], "--seed"),
    ([REGEN, "--seeds", "1,1"], "--seeds"),
    ([REGEN, "--every", "2", "--fps", "0"], "--fps"),
    ([REGEN, "--out-of-bounds"], "unrecognized"),
    ([REGEN, "OUT:clip.avi"], "unsupported output"),
    ([REGEN, "OUT:file.txt/clip.gif"], "cannot write"),
    ([REGEN, "OUT:busy"], "holds other files"),
    ([REGEN, "--panels", "rgba,,4"], "--panels"),
    ([REGEN, "--angles", "0,nan"], "--angles must be finite"),
    ([], "--out"),
])
def test_cli_errors_are_one_clear_line(args, says, tmp_path, monkeypatch, capsys):
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    outs = [a for a in args if str(a).startswith("OUT:")]
    out = tmp_path / (outs[0][4:] if outs else "x.gif")
    args = [a for a in args if a not in outs] + ["--quiet"] + (["--out", out] if args else [])
    assert run_script(args, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "x.gif").exists()
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
