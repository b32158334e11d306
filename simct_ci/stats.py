"""Model-wise tests: one decision for a whole stage from per-prompt statistics.

Student's t-tests over prompts (prompts are the independent units):
- PAIRED_T (the reference has >= 2 samples per prompt): per prompt, the classifier's cross-stage score minus
  its same-deployment score on held-back reference samples, combined with the same difference of the length
  ratio (see compare.py). Under a same-deployment candidate each has mean exactly 0, so the test is
  calibrated whatever the classifier does. With sets of >= 2 samples a two-sided t-test of the samples'
  diversity (how alike and how repetitive they are) joins it (union_test), alpha split between the two.
- ONE_SAMPLE_T (one reference sample per prompt, the paper's setting): the scores against the mean score of
  same-deployment pairs measured out-of-fold during training. That null comes from other prompts and
  deployments than yours, so this mode is less rigorous, and the result says so.

With `gate.test: mmd`, MMD (mmd.py) decides instead: a kernel two-sample test of the responses themselves,
with a permutation p-value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from simct_ci import mmd
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT, ComponentResult, ModelWiseResult

PAIRED_T = "paired-t"
ONE_SAMPLE_T = "one-sample-t"
MMD = "mmd"

ZERO_SPREAD = 1e-12  # below this, differences are float noise around one value, not variation

ONE_SAMPLE_CAVEAT = (
    "one sample per side: scores are tested against a null measured on other prompts during training, "
    "which is less rigorous than the paired test; use samples >= 2"
)


GREATER, TWO_SIDED = "greater", "two-sided"


def t_test_greater(differences: Sequence[float], alpha: float, test: str, min_prompts: int) -> ModelWiseResult:
    """One-sided one-sample t-test of H1: mean(differences) > 0, with the degenerate cases made explicit."""
    return t_test(differences, alpha, test, min_prompts, GREATER)


def t_test(
    differences: Sequence[float], alpha: float, test: str, min_prompts: int, alternative: str
) -> ModelWiseResult:
    """One-sample t-test of H1: mean(differences) > 0 (GREATER) or != 0 (TWO_SIDED), degenerate cases explicit."""
    values = np.asarray(differences, dtype=float)
    n = len(values)
    note = ONE_SAMPLE_CAVEAT if test == ONE_SAMPLE_T else ""
    if n < min_prompts:
        return too_few_prompts(test, n, alpha, min_prompts)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd <= ZERO_SPREAD * max(1.0, abs(mean)):
        # Greedy decoding gives identical statistics on every prompt: no variance, but not no information.
        mean = 0.0 if abs(mean) <= ZERO_SPREAD else mean
        statistic = effect = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p_value = 0.0 if mean > 0 or (mean < 0 and alternative == TWO_SIDED) else 1.0
        note = _join(note, "every prompt gave the same statistic (deterministic responses)")
    else:
        result = stats.ttest_1samp(values, 0.0, alternative=alternative)
        statistic, p_value, effect = float(result.statistic), float(result.pvalue), mean / sd
    verdict = INCONSISTENT if p_value < alpha else CONSISTENT
    return ModelWiseResult(test, statistic, p_value, effect, alpha, n, verdict, note)


def too_few_prompts(test: str, n: int, alpha: float, min_prompts: int) -> ModelWiseResult:
    reason = f"only {n} prompts have responses on both sides; at least {min_prompts} are needed to conclude"
    return ModelWiseResult(test, math.nan, math.nan, math.nan, alpha, n, INCOMPLETE, reason)


def combined_t_test(
    components: Mapping[str, Sequence[float]],
    weights: Mapping[str, float],
    alpha: float,
    test: str,
    min_prompts: int,
    nominal: float | None = None,
) -> ModelWiseResult:
    """One t-test on the weighted sum of the per-prompt components; each component's own test is reported too.

    Every component has mean exactly zero per prompt under a same-deployment candidate (compare.py), so any sum
    with fixed weights does too, and the test stays calibrated with no correction for multiplicity. The weights
    (1 / the component's same-deployment spread, measured in training) put the components on one scale, so a
    change that moves several adds up while one that moves a single component is still seen. `nominal`, lower
    than alpha, is the threshold of an interim look in the sequential mode.
    """
    names = list(components)
    combined = np.sum([np.asarray(components[n], dtype=float) * weights.get(n, 1.0) for n in names], axis=0)
    result = t_test_greater(combined, alpha, test, min_prompts)
    parts = tuple(
        ComponentResult(name, part.statistic, part.p_value, part.effect_size)
        for name in names
        for part in [t_test_greater(components[name], alpha, test, min_prompts)]
    )
    if result.verdict != INCOMPLETE and nominal is not None:
        result = replace(result, verdict=INCONSISTENT if result.p_value < nominal else CONSISTENT)
    return replace(result, components=parts)


def mmd_permutation_test(
    reference: Sequence[Sequence[str]], candidate: Sequence[Sequence[str]], alpha: float, min_prompts: int
) -> ModelWiseResult:
    """The MMD two-sample test (mmd.py) on each prompt's responses: inconsistent when p < alpha.

    Its effect size is the observed statistic's distance from the permutation mean, in permutation sds.
    """
    n = len(reference)
    if n < min_prompts:
        return too_few_prompts(MMD, n, alpha, min_prompts)
    result = mmd.mmd_test(reference, candidate, mmd.permutations_for(alpha))
    verdict = INCONSISTENT if result.p_value < alpha else CONSISTENT
    return ModelWiseResult(MMD, result.statistic, result.p_value, result.standardized, alpha, n, verdict)


def union_test(
    shift: ModelWiseResult,
    diversity: Sequence[float],
    share: float,
    thresholds: tuple[float, float],
    min_prompts: int,
) -> ModelWiseResult:
    """The shift test (one-sided, combined) or a two-sided t-test of the diversity, a weighted Bonferroni union.

    Inconsistent when the shift test's p is below thresholds[0] or the diversity test's below thresholds[1] (alpha
    split (1 - share) and share; at a sequential look, the spent thresholds of each). The p-value reported is the
    union's, min(1, p_shift / (1 - share), p_diversity / share); statistic and effect size stay the shift test's,
    and every part is listed. Why two-sided: a narrower sampler (lower top-p) makes samples more alike and more
    repetitive, a wider one (higher temperature) less, and neither need move the similarity to the reference on
    average.
    """
    if shift.verdict == INCOMPLETE:
        return shift
    part = t_test(diversity, shift.alpha, shift.test, min_prompts, TWO_SIDED)
    component = ComponentResult("diversity", part.statistic, part.p_value, part.effect_size, TWO_SIDED)
    p_value = min(1.0, shift.p_value / (1 - share), part.p_value / share)
    shift_found, diversity_found = shift.p_value < thresholds[0], part.p_value < thresholds[1]
    note = shift.note
    if diversity_found:
        narrower = "narrower" if part.statistic > 0 else "wider"
        more_or_less = "more" if part.statistic > 0 else "less"
        note = _join(
            note,
            f"the candidate samples {narrower} than the reference: its responses are {more_or_less} alike and "
            "repetitive (diversity)",
        )
    verdict = INCONSISTENT if shift_found or diversity_found else CONSISTENT
    return replace(shift, p_value=p_value, verdict=verdict, note=note, components=(*shift.components, component))


def equivalence_p_value(values: Sequence[float], margin: float) -> float:
    """One-sided t-test of H1: mean < margin: small when the shift is shown to be within the margin."""
    array = np.asarray(values, dtype=float)
    mean, sd = float(array.mean()), float(array.std(ddof=1))
    if sd <= ZERO_SPREAD * max(1.0, abs(mean)):
        return 0.0 if mean < margin else 1.0
    return float(stats.ttest_1samp(array, margin, alternative="less").pvalue)


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
