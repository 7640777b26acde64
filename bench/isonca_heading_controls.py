"""Controls of bench/isonca_heading.py's direction test (docs/importing.md, "Where the head goes").

Negative: uniform directions on the 5-degree pose grid, n = 16: how often the Rayleigh test
says p < 0.05 (its false-positive rate), for the angles and for 6 x the angles. Power: von
Mises directions of concentration kappa, n = 16. Positive: the article's published lizard
(a rule with a fixed orientation) measured the same way (match_pose against the Noto lizard).

    python bench/isonca_heading_controls.py
"""
import time, jax, numpy as np, nca
from analysis.representation.pose import match_pose, rayleigh
from nca.rng import stream
t0 = time.process_time()
# negative control: uniform directions quantised to the 5-degree grid, n = 16
rng = np.random.default_rng(0)
ps = np.array([rayleigh(rng.integers(0, 72, 16) * 5.0)[1] for _ in range(20000)])
ps6 = np.array([rayleigh(6 * rng.integers(0, 72, 16) * 5.0)[1] for _ in range(20000)])
print("uniform: P(p<0.05) =", (ps < 0.05).mean(), " 6-fold:", (ps6 < 0.05).mean())
# power: von Mises directions with concentration kappa=1 (R ~ 0.45), n = 16
for kappa in (0.5, 1.0, 2.0):
    pw = np.array([rayleigh(np.rad2deg(rng.vonmises(0, kappa, 16)))[1] for _ in range(5000)])
    print(f"von Mises kappa={kappa}: power P(p<0.05) =", (pw < 0.05).mean())
# positive control: the article's published lizard (fixed orientation), same measure, n = 16
m = nca.load_model("distill:lizard/persistent")
_, traj = nca.grow(m, 200, stream(jax.random.key(0), "heading"), every=200, batch=16)
t = nca.load_target("lizard")[..., 3]
ang = []
for st in np.asarray(traj.states)[-1]:
    p = match_pose(st[..., 3], t)
    ang.append((p.angle_deg, p.mirrored, round(p.iou, 3)))
a = np.array([x[0] for x in ang])
print("published lizard poses:", ang)
print("published lizard Rayleigh R, p:", rayleigh(a))
print("cpu", time.process_time() - t0)
