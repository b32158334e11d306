"""Group-sequential boundaries: test after each batch of prompts and stop once the stage is shown inconsistent.

Testing the same growing sample at every look with the full alpha would inflate the false-positive rate
(five one-sided looks at 0.05 reject a consistent stage about 13% of the time). Lan and DeMets'
alpha-spending instead spends a share alpha(t) of alpha by the time a fraction t of the planned prompts is
in. The boundary of each look is solved exactly from the joint normal law of the interim z-statistics
(corr(Z_i, Z_j) = sqrt(t_i / t_j) for i < j), so the looks actually made (fractions need not be planned
in advance) spend exactly alpha.

Only early rejection is allowed: "consistent" is never decided before every planned prompt is in, so a run
that stops early always stops on evidence of a difference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

OBRIEN_FLEMING, POCOCK = "obrien-fleming", "pocock"
SPENDING_FUNCTIONS = (OBRIEN_FLEMING, POCOCK)
_MVN_SEED = 20240725  # the multivariate normal CDF integrates by quasi-Monte Carlo: fixed for reproducible bounds


def spent(alpha: float, fraction: float, spending: str = OBRIEN_FLEMING) -> float:
    """Alpha spent once `fraction` of the planned prompts is in (Lan-DeMets forms; both reach alpha at 1)."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == OBRIEN_FLEMING:  # spends almost nothing early: interim looks only stop on large effects
        return float(2.0 * (1.0 - stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(t))))
    if spending == POCOCK:  # spends evenly: stops earlier on moderate effects, costs more power at the end
        return float(alpha * math.log(1.0 + (math.e - 1.0) * t))
    raise ValueError(f"unknown spending function {spending!r}; expected one of {SPENDING_FUNCTIONS}")


def boundaries(alpha: float, fractions: Sequence[float], spending: str = OBRIEN_FLEMING) -> tuple[float, ...]:
    """One-sided z boundaries c_1..c_K: reject at look k when Z_k >= c_k; the first crossing has probability
    spent(alpha, t_k) - spent(alpha, t_{k-1}) under the null."""
    return _boundaries(float(alpha), tuple(float(f) for f in fractions), spending)


def nominal_alphas(alpha: float, fractions: Sequence[float], spending: str = OBRIEN_FLEMING) -> tuple[float, ...]:
    """The same boundaries as one-sided p-value thresholds: reject at look k when p_k < nominal_k."""
    return tuple(float(stats.norm.sf(c)) for c in boundaries(alpha, fractions, spending))


@lru_cache(maxsize=1024)
def _boundaries(alpha: float, fractions: tuple[float, ...], spending: str) -> tuple[float, ...]:
    """Look k's boundary depends only on looks 1..k: each prefix is solved once and cached, so a run that
    asks at every look costs one new integral per look, not all of them again."""
    if (
        not fractions
        or any(b <= a for a, b in itertools.pairwise(fractions))
        or not 0 < fractions[0] <= fractions[-1] <= 1
    ):
        raise ValueError(f"look fractions must increase within (0, 1], got {fractions}")
    target = 1.0 - spent(alpha, fractions[-1], spending)  # P(no crossing up to and including this look)
    if len(fractions) == 1:
        return (float(stats.norm.ppf(target)),)
    earlier = _boundaries(alpha, fractions[:-1], spending)
    law = _interim_law(fractions)

    def gap(c: float) -> float:
        return float(law.cdf(np.array([*earlier, c]))) - target

    return (*earlier, float(optimize.brentq(gap, -1.0, 12.0, xtol=1e-7)))


def _interim_law(fractions: Sequence[float]) -> stats._multivariate.multivariate_normal_frozen:
    t = np.asarray(fractions)
    correlation = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    return stats.multivariate_normal(
        mean=np.zeros(len(t)), cov=correlation, abseps=1e-6, releps=1e-6, maxpts=20_000 * len(t), seed=_MVN_SEED
    )
