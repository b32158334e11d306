"""Model-wise tests: one decision for a whole stage from per-prompt statistics.

Both are one-sided Student's t-tests over prompts (prompts are the independent units):
- PAIRED_T (the reference has >= 2 samples per prompt): per prompt, the classifier's cross-stage score minus
  its same-deployment score on held-back reference samples (see compare.py). Under a same-deployment
  candidate this difference has mean exactly 0, so the test is calibrated whatever the classifier does.
- ONE_SAMPLE_T (one reference sample per prompt, the paper's setting): the scores against the mean score of
  same-deployment pairs measured out-of-fold during training. That null comes from other prompts and
  deployments than yours, so this mode is less rigorous, and the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT, ComponentResult, ModelWiseResult

PAIRED_T = "paired-t"
ONE_SAMPLE_T = "one-sample-t"

ZERO_SPREAD = 1e-12  # below this, differences are float noise around one value, not variation

ONE_SAMPLE_CAVEAT = (
    "one sample per side: scores are tested against a null measured on other prompts during training, "
    "which is less rigorous than the paired test; use samples >= 2"
)


def t_test_greater(differences: Sequence[float], alpha: float, test: str, min_prompts: int) -> ModelWiseResult:
    """One-sided one-sample t-test of H1: mean(differences) > 0, with the degenerate cases made explicit."""
    values = np.asarray(differences, dtype=float)
    n = len(values)
    note = ONE_SAMPLE_CAVEAT if test == ONE_SAMPLE_T else ""
    if n < min_prompts:
        reason = f"only {n} prompts have responses on both sides; at least {min_prompts} are needed to conclude"
        return ModelWiseResult(test, math.nan, math.nan, math.nan, alpha, n, INCOMPLETE, reason)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd <= ZERO_SPREAD * max(1.0, abs(mean)):
        # Greedy decoding gives identical statistics on every prompt: no variance, but not no information.
        mean = 0.0 if abs(mean) <= ZERO_SPREAD else mean
        statistic = effect = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p_value = 0.0 if mean > 0 else 1.0
        note = _join(note, "every prompt gave the same statistic (deterministic responses)")
    else:
        result = stats.ttest_1samp(values, 0.0, alternative="greater")
        statistic, p_value, effect = float(result.statistic), float(result.pvalue), mean / sd
    verdict = INCONSISTENT if p_value < alpha else CONSISTENT
    return ModelWiseResult(test, statistic, p_value, effect, alpha, n, verdict, note)


def union_t_test(
    components: Mapping[str, Sequence[float]],
    alpha: float,
    test: str,
    min_prompts: int,
    nominal: float | None = None,
) -> ModelWiseResult:
    """Inconsistent when any component's one-sided t-test rejects at `nominal` (alpha / m by default).

    A Bonferroni union: the false-positive rate stays at most alpha whatever the dependence between the
    components. The reported p-value is m x the smallest p; statistic and effect size are the decisive
    component's. `nominal` is lower than alpha / m at an interim look of the sequential mode.
    """
    results = {name: t_test_greater(values, alpha, test, min_prompts) for name, values in components.items()}
    parts = tuple(ComponentResult(n, r.statistic, r.p_value, r.effect_size) for n, r in results.items())
    name, decisive = min(results.items(), key=lambda item: _p_or_one(item[1].p_value))
    if decisive.verdict == INCOMPLETE:
        return replace(decisive, components=parts)
    threshold = alpha / len(results) if nominal is None else nominal
    rejected = decisive.p_value < threshold
    note = decisive.note if len(results) == 1 else _join(decisive.note, f"decided by {name}" if rejected else "")
    return replace(
        decisive,
        p_value=min(1.0, len(results) * decisive.p_value),
        verdict=INCONSISTENT if rejected else CONSISTENT,
        note=note,
        components=parts,
    )


def equivalence_p_value(values: Sequence[float], margin: float) -> float:
    """One-sided t-test of H1: mean < margin: small when the shift is shown to be within the margin."""
    array = np.asarray(values, dtype=float)
    mean, sd = float(array.mean()), float(array.std(ddof=1))
    if sd <= ZERO_SPREAD * max(1.0, abs(mean)):
        return 0.0 if mean < margin else 1.0
    return float(stats.ttest_1samp(array, margin, alternative="less").pvalue)


def _p_or_one(p_value: float) -> float:
    return 1.0 if math.isnan(p_value) else p_value


def _join(first: str, second: str) -> str:
    if not second:
        return first
    return f"{first}; {second}" if first else second
