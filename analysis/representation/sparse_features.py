"""Sparse dictionary features of NCA cells: a sparse autoencoder (SAE) on cell states.

Each living cell's hidden channels (12 for the published lizards) are a vector ``x [d]``.
The SAE writes it as a sparse, non-negative combination of learned unit directions:

    z = (x - mu) / s                               (mu: mean cell, s: RMS spread, one scalar)
    a = relu(z @ W_enc + b_enc)                    (top-k: all but the k largest set to 0)
    z_hat = a @ W_dec + b_dec,   ||W_dec[i]|| = 1  (the decoder's rows: the dictionary)

trained on the mean squared error (plus ``l1 * sum(a)`` in the L1 variant) with Adam; after
every step the decoder rows are renormalised to unit length, so that sparsity cannot be bought
by shrinking ``a`` and growing ``W_dec`` (Bricken et al. 2023, "Towards monosemanticity",
transformer-circuits.pub; Cunningham et al. 2023, "Sparse autoencoders find highly
interpretable features in language models", arXiv:2309.08600). The top-k activation is Gao
et al. 2024 ("Scaling and evaluating sparse autoencoders", arXiv:2406.04093); it fixes the
mean L0 at k without tuning an L1 coefficient, and is the default here. The encoder is
initialised as the decoder's transpose (Gao et al.; Conerly et al. 2024).

Measures, all on *held-out* cells (a replicate rollout the SAE never saw):

* ``fve``: fraction of variance explained, ``1 - sum |x - x_hat|^2 / sum |x - mean|^2``;
* ``l0``: mean number of active features per cell; ``dead``: fraction of features active on
  no held-out cell;
* ``pca_fve``: the FVE of the best rank-k linear reconstruction (PCA on the training cells,
  k = the SAE's L0 rounded up): a dictionary of sparse directions is only worth reading if it
  beats a k-dimensional subspace;
* ``gain``: the SAE's FVE minus the FVE of the same training on *shuffled* cells (each channel
  permuted across cells independently: the marginals kept, every joint structure gone).

Planted truth (tests): cells built from k known sparse directions -> the SAE's decoder rows
recover them (|cosine| > 0.9, ``match_directions``) and ``gain`` is large; dense Gaussian
cells -> ``gain`` ~ 0 and the SAE no better than PCA.

Causal effect of a feature (``feature_effects``): at the "state" hook of every step, every
living cell's feature activation times the feature's decoded direction is subtracted from
its hidden channels (``v -> v - s a_i(v) W_dec[i]``); the body is scored as the knockouts
score it (``analysis.causal.knockouts``: effect ``(L - L_ref) / (L_empty - L_ref)``, 0 = intact,
1 = as an empty grid). Control: the same subtraction along a random unit direction (one per
feature), so the removed vector has the same norm in every cell and every step; a feature is
*specific* when the 95 % interval of its paired (same fire masks) excess over its control
lies above 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nca.errors import NCAError
from nca.hooks import Hook

Array = jax.Array
SPARSITY = ("topk", "l1")
MAX_FEATURES_PER_DIM = 32   # a dictionary wider than 32 x the input has nothing left to find
MIN_CELLS_PER_FEATURE = 10  # fewer training cells than 10 per feature: features fit single cells


@dataclass(frozen=True)
class SAEConfig:
    """n_features: dictionary size; sparsity: "topk" (k active per cell) or "l1" (coefficient
    ``l1``); steps: Adam steps of ``batch`` cells; lr: Adam's learning rate."""

    n_features: int = 32
    sparsity: str = "topk"
    k: int = 3
    l1: float = 0.05
    steps: int = 2000
    batch: int = 512
    lr: float = 3e-3

    def __post_init__(self):
        if self.n_features < 1:
            raise NCAError(f"the dictionary needs at least 1 feature, got {self.n_features}")
        if self.sparsity not in SPARSITY:
            raise NCAError(f"sparsity must be one of {', '.join(SPARSITY)}, got {self.sparsity!r}")
        if self.sparsity == "topk" and not 1 <= self.k <= self.n_features:
            raise NCAError(f"top-k needs 1 <= k <= features ({self.n_features}), got k={self.k}")
        if self.l1 < 0 or self.steps < 1 or self.batch < 1 or not self.lr > 0:
            raise NCAError("l1 must be >= 0, steps and batch >= 1, lr > 0")

    def check_data(self, n_cells: int, dim: int) -> None:
        """One line if this dictionary does not make sense for ``n_cells`` cells of ``dim``."""
        if self.n_features > MAX_FEATURES_PER_DIM * dim:
            raise NCAError(f"{self.n_features} features for {dim}-dimensional cells is more than "
                           f"{MAX_FEATURES_PER_DIM} x the input: choose at most {MAX_FEATURES_PER_DIM * dim}")
        if n_cells < MIN_CELLS_PER_FEATURE * self.n_features:
            raise NCAError(f"{n_cells} training cells for {self.n_features} features: need at least "
                           f"{MIN_CELLS_PER_FEATURE} cells per feature")
        if self.sparsity == "topk" and self.k >= dim:
            raise NCAError(f"top-k with k={self.k} >= the input dimension {dim} reconstructs any cell "
                           f"without sparse structure: choose k < {dim}")


# --------------------------------------------------------------------------- the SAE (pure)


def init_sae(key: Array, dim: int, n_features: int) -> dict:
    """{W_enc [d, F], b_enc [F], W_dec [F, d] (unit rows), b_dec [d]}; W_enc = W_dec^T."""
    w = jax.random.normal(key, (n_features, dim), jnp.float32)
    w = w / jnp.linalg.norm(w, axis=1, keepdims=True)
    return {"W_enc": w.T, "b_enc": jnp.zeros(n_features, jnp.float32), "W_dec": w,
            "b_dec": jnp.zeros(dim, jnp.float32)}


def encode(p: dict, z: Array, sparsity: str = "topk", k: int = 3) -> Array:
    """Standardised cells z [..., d] -> activations a [..., F] (>= 0; top-k: k nonzero at most)."""
    a = jax.nn.relu((z - p["b_dec"]) @ p["W_enc"] + p["b_enc"])
    if sparsity == "topk":
        kth = jax.lax.top_k(a, k)[0][..., -1:]
        a = jnp.where(a >= kth, a, 0.0)
    return a


def decode(p: dict, a: Array) -> Array:
    """a [..., F] -> z_hat [..., d]."""
    return a @ p["W_dec"] + p["b_dec"]


def _loss(p, z, sparsity, k, l1):
    a = encode(p, z, sparsity, k)
    mse = jnp.mean(jnp.sum(jnp.square(decode(p, a) - z), -1))
    return mse + (l1 * jnp.mean(jnp.sum(a, -1)) if sparsity == "l1" else 0.0)


def _unit_rows(p):
    w = p["W_dec"]
    return {**p, "W_dec": w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-8)}


@partial(jax.jit, static_argnames=("cfg",))
def train_sae(z: Array, key: Array, cfg: SAEConfig) -> tuple[dict, Array]:
    """Train on standardised cells z [N, d] -> (params, loss per step [steps]).

    Pure and jitted: one ``lax.scan`` over the Adam steps; batches drawn with replacement
    from ``fold_in(key, step)``; decoder rows renormalised after every step."""
    k_init, k_batch = jax.random.split(key)
    p = init_sae(k_init, z.shape[1], cfg.n_features)
    opt = optax.adam(cfg.lr)

    def one(carry, t):
        p, s = carry
        idx = jax.random.randint(jax.random.fold_in(k_batch, t), (cfg.batch,), 0, z.shape[0])
        loss, g = jax.value_and_grad(_loss)(p, z[idx], cfg.sparsity, cfg.k, cfg.l1)
        upd, s = opt.update(g, s, p)
        return (_unit_rows(optax.apply_updates(p, upd)), s), loss

    (p, _), losses = jax.lax.scan(one, (p, opt.init(p)), jnp.arange(cfg.steps))
    return p, losses


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Standardiser:
    """z = (x - mean) / scale: mean [d], scale a scalar (the RMS distance to the mean per channel)."""

    mean: np.ndarray
    scale: float

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        x = np.asarray(x, np.float64)
        mu = x.mean(0)
        return cls(mu.astype(np.float32), float(max(np.sqrt(np.mean(np.square(x - mu))), 1e-8)))

    def __call__(self, x) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.scale).astype(np.float32)


def fve(z: np.ndarray, z_hat: np.ndarray) -> float:
    """Fraction of variance explained: 1 - sum |z - z_hat|^2 / sum |z - mean(z)|^2."""
    z, z_hat = np.asarray(z, np.float64), np.asarray(z_hat, np.float64)
    return float(1.0 - np.sum(np.square(z - z_hat)) / max(np.sum(np.square(z - z.mean(0))), 1e-30))


def pca_fve(train: np.ndarray, test: np.ndarray, k: int) -> float:
    """FVE on ``test`` of the rank-k PCA of ``train`` (both [N, d])."""
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(np.asarray(train, np.float64) - mu, full_matrices=False)
    v = vt[:k]
    c = test - mu
    return fve(test, mu + (c @ v.T) @ v)


def evaluate(p: dict, z: np.ndarray, cfg: SAEConfig) -> dict:
    """Held-out measures of a trained SAE on standardised cells z [N, d]: fve, l0 (mean active
    features per cell), dead (fraction of features active on no cell), frequency [F] (fraction
    of cells on which each feature is active)."""
    a = np.asarray(encode(p, jnp.asarray(z), cfg.sparsity, cfg.k))
    on = a > 0
    freq = on.mean(0)
    return {"fve": fve(z, np.asarray(decode(p, jnp.asarray(a)))), "l0": float(on.sum(1).mean()),
            "dead": float(np.mean(freq == 0)), "frequency": freq}


def match_directions(decoder: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each true direction (rows of ``truth`` [k, d]) the largest |cosine| with a decoder
    row ([F, d]) -> [k]."""
    d = np.asarray(decoder, np.float64)
    t = np.asarray(truth, np.float64)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return np.abs(t @ d.T).max(1)


def shuffle_channels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each channel (column) permuted across cells independently: marginals kept, joint
    structure destroyed. x [N, d] -> [N, d]."""
    x = np.asarray(x)
    return np.stack([x[rng.permutation(len(x)), j] for j in range(x.shape[1])], 1)


def fit_and_score(train: np.ndarray, test: np.ndarray, cfg: SAEConfig, seeds, shuffle_rng=None) -> dict:
    """Train one SAE per seed on cells ``train`` [N, d], score each on ``test`` [M, d].

    shuffle_rng: a ``np.random.Generator`` -> train and test are channel-shuffled first (a fresh
    shuffle per seed: the null). -> {"fve", "l0", "dead", "pca_fve": [per seed], "params":
    the first seed's SAE, "standardiser": its Standardiser, "frequency": first seed's [F]}."""
    cfg.check_data(len(train), train.shape[1])
    out = {"fve": [], "l0": [], "dead": [], "pca_fve": []}
    first = None
    for seed in seeds:
        tr, te = (train, test) if shuffle_rng is None else (shuffle_channels(train, shuffle_rng),
                                                             shuffle_channels(test, shuffle_rng))
        st = Standardiser.fit(tr)
        ztr, zte = st(tr), st(te)
        p, _ = train_sae(jnp.asarray(ztr), jax.random.key(int(seed)), cfg)
        ev = evaluate(p, zte, cfg)
        for name in ("fve", "l0", "dead"):
            out[name].append(ev[name])
        out["pca_fve"].append(pca_fve(ztr, zte, int(np.ceil(ev["l0"])) if ev["l0"] > 0 else 1))
        if first is None:
            first = {"params": jax.tree.map(np.asarray, p), "standardiser": st, "frequency": ev["frequency"]}
    return {**out, **first}


# --------------------------------------------------------------------------- cells of rollouts


def living_cells(states: np.ndarray, threshold: float = 0.1, offset: int = 4) -> np.ndarray:
    """Hidden channels of the living cells (alpha > threshold). states [..., H, W, C] -> [N, C - offset]."""
    states = np.asarray(states)
    return states[states[..., 3] > threshold][:, offset:]


# --------------------------------------------------------------------------- causal effects


def _subtract_feature(v, t, sae, mean, scale, sel, direction, sparsity, k, threshold, offset):
    """Hook: every living cell's features ``v[..., offset:]`` minus ``scale * a(v) . sel *
    direction`` (a: the SAE's activations of the cell; sel [F] picks the feature; direction
    [d]). threshold: cells with alpha (``v[..., 3]``) above it are living (the "state" point);
    None: every cell (the "hidden" point, which holds no alpha)."""
    h = v[..., offset:]
    a = encode(sae, (h - mean) / scale, sparsity, k) @ sel  # [...]
    alive = 1.0 if threshold is None else (v[..., 3] > threshold).astype(v.dtype)
    return v.at[..., offset:].add(-(scale * alive * a)[..., None] * direction)


def feature_hook(sae: dict, stand: Standardiser, sel, direction, cfg: SAEConfig, threshold: float = 0.1,
                 offset: int = 4) -> Hook:
    """The "state" hook that removes feature ``sel`` ([F] one-hot, traced) along ``direction``
    ([d]: the feature's decoder row, or a random unit vector for the control)."""
    return Hook(_subtract_feature, {"sae": {n: jnp.asarray(x) for n, x in sae.items()},
                                    "mean": jnp.asarray(stand.mean), "scale": jnp.float32(stand.scale),
                                    "sel": jnp.asarray(sel, jnp.float32), "direction": jnp.asarray(direction, jnp.float32)},
                sparsity=cfg.sparsity, k=cfg.k, threshold=float(threshold), offset=int(offset))


POINTS = {"channels": "state", "mlp": "hidden"}  # the features an SAE reads -> the hook point that holds them


@partial(jax.jit, static_argnames=("steps", "cfg", "sae_cfg", "layer"))
def _feature_rollouts(params, x0, key, t0, target, sae, mean, scale, sels, dirs, steps, cfg, sae_cfg, layer):
    from nca.model import rollout, to_rgba

    from analysis.causal.knockouts import _loss_or_nan

    on_state = layer == "channels"

    def one(sel, d):
        hook = Hook(_subtract_feature, {"sae": sae, "mean": mean, "scale": scale, "sel": sel, "direction": d},
                    sparsity=sae_cfg.sparsity, k=sae_cfg.k,
                    threshold=float(cfg.alive_threshold) if on_state else None, offset=4 if on_state else 0)
        x, _ = rollout(params, x0, key, steps, cfg, record=(), t0=t0, hooks={POINTS[layer]: hook})
        rgba = to_rgba(x)
        return _loss_or_nan(x, rgba, target), rgba[0]

    return jax.vmap(one)(sels, dirs)


def random_directions(key: Array, n: int, dim: int) -> np.ndarray:
    """n random unit vectors [n, dim] (uniform on the sphere)."""
    r = np.asarray(jax.random.normal(key, (n, dim), jnp.float32), np.float64)
    return (r / np.linalg.norm(r, axis=1, keepdims=True)).astype(np.float32)


def feature_effects(model, sae: dict, stand: Standardiser, sae_cfg: SAEConfig, start, key: Array, target,
                    control_key: Array, chunk: int = 16, progress=None, layer: str = "channels") -> dict:
    """Body effect of removing each feature, beside its norm-matched random-direction control.

    layer: "channels" (the SAE reads the hidden channels: removed at the "state" hook, living
    cells only) or "mlp" (it reads the MLP's hidden activations: removed at the "hidden" hook,
    every cell; what a dead cell computes is erased by the life mask unless it neighbours life).

    start: an ``analysis.causal.knockouts.Start`` (x0 [B, H, W, C], t0, steps: B replicates with
    independent fire masks). -> {"effect": [F, B], "control": [F, B] (effects as the knockouts',
    ``knockouts.replicate_effects``; diverged replicates at the maximal effect), "diverged":
    [2F, B], "directions": [F, d] the controls' random directions, "images": final RGBA of
    replicate 0, [1 + 2F, H, W, 4] (intact, features, controls)}."""
    from nca.model import to_device

    from analysis.causal.knockouts import clip_diverged, empty_loss, max_loss, replicate_effects

    cfg = model.model_config
    n = sae["W_dec"].shape[0]
    dim = sae["W_dec"].shape[1]
    rnd = random_directions(control_key, n, dim)
    sels = np.concatenate([np.zeros((1, n)), np.eye(n), np.eye(n)]).astype(np.float32)
    dirs = np.concatenate([np.zeros((1, dim)), np.asarray(sae["W_dec"]), rnd]).astype(np.float32)
    arrays = ({k: to_device(np.asarray(v)) for k, v in sae.items()}, to_device(stand.mean),
              jnp.float32(stand.scale))
    x0, tgt = to_device(np.asarray(start.x0, np.float32)), to_device(np.asarray(target, np.float32))
    losses, imgs = [], []
    chunk = -(-len(sels) // -(-len(sels) // chunk))  # as few chunks, as even as can be: little padding
    for i in range(0, len(sels), chunk):
        s, d = sels[i:i + chunk], dirs[i:i + chunk]
        m = len(s)
        if m < chunk:  # pad with intact runs: one compiled program
            s = np.concatenate([s, np.zeros((chunk - m, n), np.float32)])
            d = np.concatenate([d, np.zeros((chunk - m, dim), np.float32)])
        loss, img = _feature_rollouts(model.params, x0, key, start.t0, tgt, *arrays, to_device(s), to_device(d),
                                      start.steps, cfg, sae_cfg, layer)
        losses.append(np.asarray(loss)[:m])
        imgs.append(np.asarray(img)[:m])
        if progress is not None:
            progress(m)
    loss, bad = clip_diverged(np.concatenate(losses), max_loss(target))
    eff = replicate_effects(loss, empty_loss(target))
    return {"effect": eff[:n], "control": eff[n:], "diverged": bad[1:], "directions": rnd,
            "images": np.concatenate(imgs)}


def feature_maps(sae: dict, stand: Standardiser, sae_cfg: SAEConfig, inputs: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Each feature's activation on every living cell of one body. inputs [H, W, d] (what the
    SAE reads), alive bool [H, W] -> [F, H, W] (0 on dead cells)."""
    a = np.asarray(encode({k: jnp.asarray(v) for k, v in sae.items()}, jnp.asarray(stand(inputs)),
                          sae_cfg.sparsity, sae_cfg.k))
    return np.moveaxis(a * np.asarray(alive, bool)[..., None], -1, 0)
