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
from collections.abc import Sequence

import numpy as np
from scipy import stats

from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT, ModelWiseResult

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


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
