"""Where does an isotropic lizard's head go? (docs/importing.md, "Where the head goes")

Grows rotation-invariant models from a symmetric one-cell seed -- by default the isotropic
NCA demo model (nca/assets/isonca, a hex grid), or run folders trained here with
``--perception laplacian --loss rotation-reflection`` -- with N independent replicates each
(one batched rollout: each draws its own fire masks), and measures the body's pose
(analysis.representation.pose.match_pose against the model's lizard target, 5-degree steps,
both reflections) every ``every`` steps. Reports, per model: the final head angles, their
uniformity (Rayleigh test on the angles, and on k x the angles: a preference for the
lattice's k axes, 6 on the hex grid, 4 on the square one), the chirality split (Wilson
interval), and when the direction is settled (the first recorded step after which the pose
stays within 15 degrees of the final one; bootstrap interval of the median over keys); and
the same for the body's long axis (mod 180, from the second moments of its alpha), which is
defined for a body that is elongated but not yet target-shaped, with its elongation. Given several models (independently trained: the claim is then about models), also their
mean directions' Rayleigh test over models (independent only with ``--independent-masks``),
Holm over the per-model tests, and whether the
models choose the same axis when they draw the same fire masks (every model grows from the
same key; a permutation test, ``axis_agreement``).

    python bench/isonca_heading.py --n 16 --steps 1200 --every 100 > heading.json
    python bench/isonca_heading.py runs/iso/seed_0 runs/iso/seed_1 --n 16 --steps 400 --every 25
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np

import nca
from analysis.representation.axes import axis_angle_between, body_frame, wrap180
from analysis.representation.axis_null import holm
from analysis.representation.pose import axis_agreement, match_pose, rayleigh
from analysis.plots import rgba_on_white
from analysis.stats import bootstrap_ci, proportion_ci
from nca.checkpoint import atomic_write_bytes
from nca.formats.isonca import body_center, hex_to_square
from nca.render import to_uint8, upscale
from nca.rng import stream


def poses_of(model, n: int, steps: int, every: int, size: int, key) -> tuple[list[list[tuple]], np.ndarray]:
    """[n][steps // every] (angle_deg, mirrored, iou, axis_deg, elongation) of ``n`` replicates
    grown on ``size``: the pose that best matches the target, and the body's long axis (mod 180,
    from its second moments, ``analysis.representation.axes.body_frame``) with its elongation;
    and the final bodies as drawn, [n, h, w, 3] RGB on white."""
    hexagonal = model.model_config.topology == "hex"
    target = (nca.load_target("lizard") if hexagonal else model.target_image())[..., 3]
    _, traj = nca.grow(model, steps, key, size=size, every=every, batch=n)
    states = np.asarray(traj.states)  # [T, n, H, W, C]
    poses, finals = [], []
    for i in range(n):
        row = []
        for st in states[:, i]:
            if (st[..., 3] > 0.1).sum() < 10:
                row.append((float("nan"), False, 0.0, float("nan"), float("nan")))
                continue
            img = hex_to_square(st, target.shape[0], center=body_center(st)) if hexagonal else st
            p = match_pose(img[..., 3], target)
            frame = body_frame(img[..., 3])
            row.append((p.angle_deg, p.mirrored, p.iou, frame.axis_deg, frame.elongation))
        poses.append(row)
        finals.append(rgba_on_white(img))
        print(f"{model.name} replicate {i}: final angle {row[-1][0]:.0f} mirrored {row[-1][1]} "
              f"iou {row[-1][2]:.3f}", file=sys.stderr)
    return poses, np.stack(finals)


def write_figure(path: str, finals: list[np.ndarray], columns: int = 8, scale: int = 3) -> None:
    """One row per model, one column per replicate (the same fire masks down a column)."""
    rows = []
    for f in finals:
        tiles = [np.pad(upscale(to_uint8(t), scale), ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in f[:columns]]
        rows.append(np.concatenate(tiles, axis=1))
    buf = io.BytesIO()
    iio.imwrite(buf, np.concatenate(rows, axis=0), extension=".png")
    atomic_write_bytes(Path(path), buf.getvalue())


def summary(poses, steps: int, every: int, lattice: int, seed: int) -> dict:
    final = np.array([r[-1][0] for r in poses])
    mirrored = np.array([r[-1][1] for r in poses])
    ious = np.array([r[-1][2] for r in poses])
    recorded = [(j + 1) * every for j in range(steps // every)]

    def first_settled(ok):
        for j in range(len(ok)):
            if ok[j:].all():
                return recorded[j]
        return recorded[-1]

    def settled(row):  # the pose: within 15 degrees of the final one, same handedness
        ang = np.array([x[0] for x in row])
        d = np.abs(wrap180(ang - ang[-1]))
        return first_settled((d <= 15) & np.array([x[1] == row[-1][1] for x in row]))

    def axis_settled(row):  # the long axis: within 15 degrees (mod 180) of the final one
        ax = np.array([x[3] for x in row])
        return first_settled(axis_angle_between(ax, ax[-1]) <= 15)

    settle = np.array([settled(r) for r in poses], float)
    axes = np.array([r[-1][3] for r in poses])
    axis_settle = np.array([axis_settled(r) for r in poses], float)
    Ra, pa = rayleigh(2 * axes)  # axes are mod 180: doubled, a preferred axis is a preferred direction
    Rak, pak = rayleigh(lattice * axes)
    R, p = rayleigh(final)
    Rk, pk = rayleigh(lattice * final)
    t = np.deg2rad(final)
    return {
        "final_angle_deg": final.tolist(), "iou": ious.tolist(), "iou_min": float(ious.min()),
        "iou_median": float(np.median(ious)),
        "mean_angle_deg": float(np.rad2deg(np.arctan2(np.sin(t).sum(), np.cos(t).sum())) % 360),
        "rayleigh_R": R, "rayleigh_p": p, "lattice_axes": lattice, "rayleigh_lattice_R": Rk, "rayleigh_lattice_p": pk,
        "mirrored": proportion_ci(mirrored), "mirrored_per_key": mirrored.tolist(),
        "settled_step": settle.tolist(),
        "settled_median": bootstrap_ci(settle, np.median, np.random.default_rng(seed)),
        "final_axis_deg": axes.tolist(), "elongation": [r[-1][4] for r in poses],
        "axis_rayleigh_R": Ra, "axis_rayleigh_p": pa, "axis_rayleigh_lattice_R": Rak, "axis_rayleigh_lattice_p": pak,
        "axis_settled_step": axis_settle.tolist(),
        "axis_settled_median": bootstrap_ci(axis_settle, np.median, np.random.default_rng(seed)),
        "poses": poses,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["isonca:lizard"], help="models (default: isonca:lizard)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--size", type=int, default=None, help="grid (default: 96 for the hex demo, else the training grid)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--independent-masks", action="store_true",
                    help="model k draws its own fire masks (fold_in(key, k)) instead of every model the same: "
                         "the axis agreement's negative control, and independent draws for the direction tests")
    ap.add_argument("--figure", default=None, help="PNG of the final bodies: a row per model, a column per replicate")
    a = ap.parse_args()
    t0 = time.process_time()
    per_model, finals = {}, []
    for k, spec in enumerate(a.models):
        model = nca.load_model(spec)
        hexagonal = model.model_config.topology == "hex"
        size = a.size or (96 if hexagonal else model.grid_size)
        # by default every model grows from the same key: what differs between models is the model
        key = stream(jax.random.key(a.seed), "heading")
        poses, final = poses_of(model, a.n, a.steps, a.every, size,
                                jax.random.fold_in(key, k) if a.independent_masks else key)
        finals.append(final)
        per_model[spec] = {"size": size, **summary(poses, a.steps, a.every, 6 if hexagonal else 4, a.seed)}
    out = {"n": a.n, "steps": a.steps, "every": a.every, "seed": a.seed, "independent_masks": a.independent_masks,
           "models": per_model}
    if len(a.models) == 1:  # the one-model layout of earlier rounds
        out = {"n": a.n, "steps": a.steps, "every": a.every, "size": per_model[a.models[0]]["size"], "seed": a.seed,
               **per_model[a.models[0]]}
    else:
        means = np.array([m["mean_angle_deg"] for m in per_model.values()])
        R, p = rayleigh(means)
        axis_ps = [m["axis_rayleigh_p"] for m in per_model.values()]
        lattice_ps = [m["axis_rayleigh_lattice_p"] for m in per_model.values()]
        ps = [m["rayleigh_p"] for m in per_model.values()]
        out["across_models"] = {
            "n_models": len(means), "mean_angle_deg": means.tolist(), "rayleigh_R": R, "rayleigh_p": p,
            "per_model_rayleigh_p": ps, "per_model_rayleigh_p_holm": holm(ps).tolist(),
            "mirrored_fraction": [m["mirrored"]["mean"] for m in per_model.values()],
            "axis_agreement": axis_agreement(
                np.array([m["final_axis_deg"] for m in per_model.values()]), np.random.default_rng(a.seed)),
            "per_model_axis_rayleigh_p": axis_ps, "per_model_axis_rayleigh_p_holm": holm(axis_ps).tolist(),
            "per_model_axis_lattice_p": lattice_ps, "per_model_axis_lattice_p_holm": holm(lattice_ps).tolist(),
        }
    if a.figure:
        write_figure(a.figure, finals)
    out["cpu_s"] = time.process_time() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
