"""Somatic evolution (nca.selfish.somatic): genomes are heritable, clone ids are inherited
exactly, mutation happens at the configured rate, a genome that confers a growth advantage
is selected for (and none is without one), and the gradient game gives each clone exactly
its own gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.config import preset
from nca.errors import NCAError
from nca.model import ModelConfig, init_params, rollout, seed_state
from nca.selfish.lineages import controller
from nca.selfish.somatic import (SomaticConfig, SomaticTrainConfig, _batch_rollout, clone_counts, clone_territory,
                                 compiled_somatic_train_step, founders, init_somatic_state, seed_clones,
                                 somatic_rollout, somatic_step)
from nca.targets import load_target

C = 8
CFG = ModelConfig(channels=C, hidden=16)


def _rule(seed=5, scale=0.05):
    k1, k2 = jax.random.split(jax.random.key(seed))
    p = init_params(k1, CFG)
    p["w2"] = scale * jax.random.normal(k2, p["w2"].shape)
    return p


def _growing_rule(alpha=0.03):
    """A rule that only raises alpha (and a hidden channel) everywhere: a body that grows
    by one ring every few steps, the same for every clone."""
    p = {"w1": jnp.zeros((3 * C, 4)), "b1": jnp.zeros(4), "w2": jnp.zeros((4, C)), "b2": jnp.zeros(C)}
    p["b2"] = p["b2"].at[3].set(alpha).at[4].set(0.01)
    return p


def test_zero_genomes_without_mutation_are_the_core_rollout():
    p, x0, key = _rule(), seed_state(16, 16, CFG), jax.random.key(7)
    _, ref = rollout(p, x0, key, 24, CFG)
    ids0 = jnp.where(x0[..., 3] > 0.1, 0, -1)
    scfg = SomaticConfig(genome_size=4, mutation_rate=0.0, max_clones=4)
    _, _, cl, _, traj = somatic_rollout(p, x0, ids0, founders(jnp.zeros((1, 4)), 4), key, 24, CFG, scfg,
                                        record_states=True)
    np.testing.assert_array_equal(np.asarray(traj.states), np.asarray(ref.states))
    assert int(cl.n) == 1 and set(np.unique(np.asarray(traj.ids))) <= {-1, 0}


def test_mutation_rate_zero_keeps_one_clone_and_positive_rate_founds_clones():
    p, x0, key = _growing_rule(), seed_state(20, 20, CFG), jax.random.key(3)
    ids0 = jnp.where(x0[..., 3] > 0.1, 0, -1)
    def run(rate):
        return jax.jit(lambda: somatic_rollout(p, x0, ids0, founders(jnp.zeros((1, 4)), 512), key, 60, CFG,
                                               SomaticConfig(mutation_rate=rate, max_clones=512), every=60)[:3])()

    x, ids, cl = run(0.0)
    alive = int(jnp.sum(x[..., 3] > 0.1))
    assert alive > 100 and int(cl.n) == 1 and set(np.unique(np.asarray(ids))) == {-1, 0}
    x, ids, cl = run(0.2)
    births = alive - 1
    n_new = int(cl.n) - 1
    # mutations at birth ~ Binomial(births, 0.2): 99.9% interval
    sd = np.sqrt(births * 0.2 * 0.8)
    assert abs(n_new - 0.2 * births) < 3.3 * sd, (n_new, births)
    assert int(cl.dropped) == 0


def test_clone_ids_and_genomes_are_inherited_exactly():
    p = _rule(seed=9, scale=0.1)
    p["b2"] = p["b2"].at[3].set(0.04)  # keep growing
    x, key = seed_state(14, 14, CFG), jax.random.key(11)
    ids = jnp.where(x[..., 3] > 0.1, 0, -1).astype(jnp.int32)
    scfg = SomaticConfig(genome_size=4, mutation_rate=0.3, mutation_size=0.0, max_clones=256)
    cl = founders(jnp.asarray([[0.0, 0.01, -0.01, 0.02]]), 256)
    one = jax.jit(lambda x, ids, cl, t: somatic_step(p, x, ids, cl, key, CFG, scfg, t))
    seen_new = 0
    for t in range(30):
        ctrl = np.asarray(controller(x, ids))
        x1, ids1, cl1, _ = one(x, ids, cl, t)
        a0, a1 = np.asarray(x[..., 3] > 0.1), np.asarray(x1[..., 3] > 0.1)
        i0, i1 = np.asarray(ids), np.asarray(ids1)
        assert np.all((i1 >= 0) == a1)
        np.testing.assert_array_equal(i1[a0 & a1], i0[a0 & a1])  # survivors keep their clone
        newborn = ~a0 & a1
        inherited = newborn & (i1 < int(cl.n))
        np.testing.assert_array_equal(i1[inherited], ctrl[inherited])  # the parent's clone
        founded = newborn & (i1 >= int(cl.n))
        seen_new += int(founded.sum())
        par = np.asarray(cl1.parent)[i1[founded]]
        np.testing.assert_array_equal(par, ctrl[founded])  # recorded parent = the parent's clone
        np.testing.assert_array_equal(np.asarray(cl1.born)[i1[founded]], t)
        # mutation size 0: a new clone's genome is its parent's exactly
        np.testing.assert_array_equal(np.asarray(cl1.genomes)[i1[founded]], np.asarray(cl.genomes)[par])
        assert sorted(i1[founded].tolist()) == list(range(int(cl.n), int(cl1.n)))  # fresh ids, in order
        x, ids, cl = x1, ids1, cl1
    assert seen_new > 5


def _race(genome1):
    """Two founder clones seeded left and right of the centre under a rule that grows every
    clone alike; clone 1 carries ``genome1``. Returns alive cells per clone at the end,
    over 4 fire-mask seeds: [4, 2]."""
    p = _growing_rule(0.02)
    x, ids = seed_clones(24, 24, CFG, 2, radius=3)
    cl = founders(jnp.stack([jnp.zeros(4), jnp.asarray(genome1, jnp.float32)]), 2)
    run = jax.jit(lambda key: somatic_rollout(p, x, ids, cl, key, 40, CFG, SomaticConfig(max_clones=2),
                                              every=40)[1])
    return np.stack([np.asarray(clone_counts(run(jax.random.key(s)), 2)) for s in range(4)])


def test_a_genome_with_a_growth_advantage_is_selected_and_a_neutral_one_is_not():
    adv = _race([0.0, 0.0, 0.0, 0.02])  # gene 3: extra alpha in every update of the clone's cells
    neutral = _race([0.0, 0.0, 0.0, 0.0])
    share_adv = adv[:, 1] / adv.sum(1)
    share_neu = neutral[:, 1] / neutral.sum(1)
    assert np.all(share_adv > 0.6), share_adv
    assert np.all(np.abs(share_neu - 0.5) < 0.08), share_neu


def test_clone_isolated_genome_gradient_has_no_cross_terms():
    cfg = preset("tiny", rollout_min=6, rollout_max=9, remat=False, hidden=16, channels=C)
    k1, k2, k3 = jax.random.split(jax.random.key(40), 3)
    p = init_params(k1, cfg.model)
    p["w2"] = 0.5 * jax.random.normal(k2, p["w2"].shape)  # large updates (larger saturate alpha: no gradient)
    p["b1"] = 0.5 * jax.random.normal(k3, p["b1"].shape)
    kx, ki = jax.random.split(jax.random.key(41))
    x0 = jax.random.uniform(kx, (2, 12, 12, C), minval=-0.2, maxval=0.6)
    ids0 = jax.random.randint(ki, (2, 12, 12), 0, 3)
    genomes = 0.05 * jax.random.normal(jax.random.key(42), (3, 4))
    n = jnp.asarray(8)

    def terr(gen, iso):
        x, _, owner = _batch_rollout(p, gen, x0, ids0, jax.random.key(4), cfg, n, iso)
        return clone_territory(x, owner, 3)

    jac = jax.jit(jax.jacrev(lambda g: terr(g, True)))(genomes)  # [3, 3, 4]
    leaky = jax.jit(jax.jacrev(lambda g: terr(g, False)))(genomes)
    off = ~np.eye(3, dtype=bool)
    assert float(np.abs(np.asarray(leaky)[off]).max()) > 0  # the clones do interact
    assert float(np.abs(np.asarray(jac)[off]).max()) == 0.0
    assert all(float(np.abs(np.asarray(jac)[i, i]).max()) > 0 for i in range(3))


@pytest.mark.parametrize("kw, msg", [
    (dict(mutation_rate=1.5), "mutation rate must be in [0, 1]"),
    (dict(mutation_rate=-0.1), "mutation rate must be in [0, 1]"),
    (dict(genome_size=0), "genome size must be >= 1"),
    (dict(mutation_size=-1.0), "mutation size"),
])
def test_bad_somatic_settings_are_one_clear_error(kw, msg):
    with pytest.raises(NCAError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        SomaticConfig(**kw)
    SomaticConfig(genome_size=0, evolve=False)  # no genes is fine without evolution


def test_somatic_game_trains_genomes_only_when_selfish():
    cfg = preset("tiny", train_steps=2)
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    for selfish in (True, False):
        tcfg = SomaticTrainConfig(clones=2, selfish=selfish)
        state = init_somatic_state(cfg, tcfg)
        step = compiled_somatic_train_step(cfg, tcfg)
        for _ in range(2):
            state, m = step(state, target)
        assert np.isfinite(float(m["loss"])) and m["territory"].shape == (2,)
        moved = float(jnp.abs(state.genomes).max())
        assert (moved > 0) == selfish


def test_policing_assay_null_cheater_changes_nothing_and_a_growth_cheater_spreads():
    from nca.selfish.experiments import plant_cheater_clones

    p = _growing_rule(0.02)
    x, ids = seed_clones(20, 20, CFG, 2, radius=2)
    cl = founders(jnp.zeros((2, 4)), 2)
    x, ids, _, _, _ = somatic_rollout(p, x, ids, cl, jax.random.key(0), 20, CFG, SomaticConfig(max_clones=2), every=20)
    params = jax.tree.map(lambda a: jnp.stack([a, a]), p)
    args = (params, CFG, jnp.zeros((20, 20, 4)), jnp.stack([x, x]), jnp.stack([ids, ids]), jnp.zeros((2, 2, 4)))
    null = plant_cheater_clones(*args, 0.0, [0, 1], jax.random.key(1), 20, 20, 20)
    cheat = plant_cheater_clones(*args, 0.05, [0, 1], jax.random.key(1), 20, 20, 20)
    assert np.all(null["harm"] == 0.0)  # a cheater with its clone's own genome is its twin
    # it spreads where it can reach empty space (seed 0); an interior cell stays one cell
    assert np.all(cheat["share"][:, -1] >= null["share"][:, -1]) and cheat["share"][0, -1] > 3 * null["share"][0, -1]
