"""The texture NCA models against their authors' thumbnails (docs/importing.md, "Texture NCAs").

Grows each bundled model from zeros (``--n`` fire-mask replicates of one batched rollout,
key ``--seed``) and compares the RGB colour mean and covariance of the final grid with the
model's 48 x 48 thumbnail in the demo's atlas (nca/assets/texture/icon_*.png): max absolute
gap of the mean and of the covariance, each model against both thumbnails. Also the
broken variants the test uses as negatives (Laplacian read as ours; no clipping).

    python bench/texture_icon.py --n 8 --size 96 --steps 400
"""
import argparse, dataclasses, json, time
import jax, numpy as np
from PIL import Image
import nca
from nca.formats import texture as T

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=8)
ap.add_argument("--size", type=int, default=96)
ap.add_argument("--steps", type=int, default=400)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
t0 = time.process_time()


def stats(rgb):
    r = np.asarray(rgb, np.float64).reshape(-1, 3)
    return r.mean(0), np.cov(r.T)


icons = {n: stats(np.asarray(Image.open(T.ASSET.parent / f"icon_{n}.png").convert("RGB"), np.float64) / 255)
         for n in ("dots", "mondrian")}
dots = nca.load_model("texture:dots")
w1 = np.asarray(dots.params["w1"]).copy()
w1[36:] /= 2
models = {"dots": dots, "mondrian": nca.load_model("texture:mondrian"),
          "dots, Laplacian / 16": dataclasses.replace(dots, params={**dots.params, "w1": jax.device_put(w1)}),
          "dots, no clipping": dataclasses.replace(dots, model_config=dataclasses.replace(
              dots.model_config, saturation=0.0, clamp=0.0))}
out = {"settings": vars(a), "results": {}}
for name, m in models.items():
    x, _ = nca.grow(m, a.steps, jax.random.key(a.seed), size=a.size, batch=a.n, record=())
    rgbs = T.texture_rgb(np.asarray(x))
    res = {}
    for icon, ref in icons.items():
        gaps = np.array([[np.abs(s[0] - ref[0]).max(), np.abs(s[1] - ref[1]).max()] for s in map(stats, rgbs)])
        res[icon] = {"mean_gap": [float(gaps[:, 0].min()), float(np.median(gaps[:, 0])), float(gaps[:, 0].max())],
                     "cov_gap": [float(gaps[:, 1].min()), float(np.median(gaps[:, 1])), float(gaps[:, 1].max())]}
    res["rgb_std_min"] = float(rgbs.std((1, 2)).min())
    out["results"][name] = res
    print(name, json.dumps(res))
out["cpu_s"] = round(time.process_time() - t0, 1)
print(json.dumps(out))
