"""Where does the isotropic lizard's head go? (docs/importing.md, "The isotropic lizard")

Grows the isotropic NCA demo model (nca/assets/isonca, a rotation-invariant rule on a hex
grid from a symmetric one-cell seed) with N independent replicates (one batched rollout: each draws its own fire masks), and measures the
body's pose (analysis.representation.pose.match_pose against the Noto lizard target, 5-degree steps, both
reflections) every ``every`` steps. Reports: the final head angles, their uniformity
(Rayleigh test on the angles, and on 6 x the angles: a preference for the hex lattice's 6
axes), the chirality split (Wilson interval), and when the direction is settled (the first
recorded step after which the pose stays within 15 degrees of the final one; bootstrap
interval of the median over keys).

    python bench/isonca_heading.py --n 16 --steps 1200 --every 100 > heading.json
"""

import argparse
import json
import sys
import time

import jax
import numpy as np

import nca
from analysis.representation.pose import match_pose
from analysis.stats import bootstrap_ci, proportion_ci
from nca.formats.isonca import body_center, hex_to_square, read_isonca
from nca.rng import stream


def rayleigh(theta_deg: np.ndarray) -> tuple[float, float]:
    """Mean resultant length R and the Rayleigh test's p-value (Zar 1999, eq. 27.4)."""
    t = np.deg2rad(theta_deg)
    n = len(t)
    r = float(np.hypot(np.cos(t).sum(), np.sin(t).sum()))
    p = float(np.exp(np.sqrt(1 + 4 * n + 4 * (n * n - r * r)) - (1 + 2 * n)))
    return r / n, min(p, 1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.process_time()
    cfg, params, _ = read_isonca()
    model = nca.LoadedModel("isonca:lizard", cfg, params, "lizard", a.size)
    target = nca.load_target("lizard")[..., 3]
    # one batched rollout: every replicate draws its own fire masks from the one key
    _, traj = nca.grow(model, a.steps, stream(jax.random.key(a.seed), "heading"), size=a.size,
                       every=a.every, batch=a.n)
    states = np.asarray(traj.states)  # [T, n, H, W, C]
    poses = []  # [n][T] (angle, mirrored, iou)
    for i in range(a.n):
        row = []
        for st in states[:, i]:
            if (st[..., 3] > 0.1).sum() < 10:
                row.append((float("nan"), False, 0.0))
                continue
            img = hex_to_square(st, target.shape[0], center=body_center(st))
            p = match_pose(img[..., 3], target)
            row.append((p.angle_deg, p.mirrored, p.iou))
        poses.append(row)
        print(f"replicate {i}: final angle {row[-1][0]:.0f} mirrored {row[-1][1]} iou {row[-1][2]:.3f}", file=sys.stderr)
    final = np.array([r[-1][0] for r in poses])
    mirrored = np.array([r[-1][1] for r in poses])
    ious = np.array([r[-1][2] for r in poses])
    steps = [(j + 1) * a.every for j in range(a.steps // a.every)]

    def settled(row):
        ang = np.array([x[0] for x in row])
        d = np.abs((ang - ang[-1] + 180) % 360 - 180)
        ok = (d <= 15) & np.array([x[1] == row[-1][1] for x in row])
        for j in range(len(row)):
            if ok[j:].all():
                return steps[j]
        return steps[-1]

    settle = np.array([settled(r) for r in poses], float)
    R, p = rayleigh(final)
    R6, p6 = rayleigh(6 * final)
    out = {
        "n": a.n, "steps": a.steps, "every": a.every, "size": a.size, "seed": a.seed,
        "final_angle_deg": final.tolist(), "iou": ious.tolist(),
        "iou_min": float(ious.min()), "rayleigh_R": R, "rayleigh_p": p, "rayleigh6_R": R6, "rayleigh6_p": p6,
        "mirrored": proportion_ci(mirrored), "mirrored_per_key": mirrored.tolist(),
        "settled_step": settle.tolist(),
        "settled_median": bootstrap_ci(settle, np.median, np.random.default_rng(a.seed)),
        "poses": poses, "cpu_s": time.process_time() - t0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
