"""The reports' intervals. Their one home is ``nca.stats`` (the bottom layer, since
``nca.selfish`` prints intervals too and nca may not import analysis); re-exported here,
where the analysis modules and users look for them."""

from nca.stats import (BOOTSTRAP_DRAWS, LEVEL, binomial_interval, bootstrap_ci, fmt_ci, mean_ci, mean_ci_axis,
                       mean_ci_band, proportion_ci, t_quantile, wilson)

__all__ = ["BOOTSTRAP_DRAWS", "LEVEL", "binomial_interval", "bootstrap_ci", "fmt_ci", "mean_ci", "mean_ci_axis",
           "mean_ci_band", "proportion_ci", "t_quantile", "wilson"]
