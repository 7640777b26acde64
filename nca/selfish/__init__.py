"""Selfish cells: per-cell fitness and selfish variants of the Growing NCA.

- ``fitness``: ``cell_fitness(states, target)`` -> [T, H, W], the per-cell quantity;
- selfish credit: ``selfish_config(cfg)`` (the core's ``neighbour_gradients=False``);
- ``lineages``: K rules on one grid, lineage ids, inheritance, ``lineage_rollout``;
- ``training``: lineage and adversary train steps;
- ``invasion``: plant a mutant in a host body and measure spread, harm, suppression;
- ``credit``: selfish credit vs the gradient of a private copy of the rule (myopic, not selfish);
- ``somatic``: heritable per-clone genomes, mutation at birth, clone ids, the gradient game;
- ``experiments``: spontaneous cheaters, the mutant-invasion fitness landscape, policing assay;
- ``pipeline``: the settings, training loops and run of ``scripts/selfish.py``.

Pictures and the HTML report live in ``analysis/reports/selfish.py`` (nothing here imports
``analysis``).

User guide: docs/selfish.md.
"""

from .fitness import FITNESS_KINDS, cell_error, cell_fitness, fitness_loss
from .invasion import PLANT_MODES, invade, invasion_curves, perturb_params, plant_ids
from .lineages import (LineageTrajectory, controller, lineage_counts, lineage_rollout, lineage_seed,
                       lineage_shares, lineage_step, pad_hidden, parent_lineage, stack_params)
from .training import (AdversaryConfig, compiled_lineage_train_step, init_lineage_state,
                       lineage_train_step, selfish_config)
