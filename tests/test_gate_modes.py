"""Promise: the model-wise test is ONE one-sided t-test on a weighted sum of the per-prompt components (classifier +
length), so it keeps false positives at alpha whatever their dependence, with no correction for multiplicity; and
equivalence mode calls a stage consistent only when every shift is shown within the margin.

Statistics are built to an exact t where a test needs one: a sample standardised to mean 0 and sd 1, times a
spread, plus a shift.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from simct_ci.compare import (
    CLASSIFIER,
    DIFFERENCE,
    DIVERSITY,
    DIVERSITY_SHARE,
    EQUIVALENCE,
    LENGTH,
    GateSettings,
    compare,
    model_wise,
)
from simct_ci.model import BundledModel
from simct_ci.responses import Prompt
from simct_ci.sequential import nominal_alphas
from simct_ci.stats import (
    ONE_SAMPLE_T,
    PAIRED_T,
    TWO_SIDED,
    combined_t_test,
    equivalence_p_value,
    t_test,
    t_test_greater,
)
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT

ALPHA = 0.05
# Same-deployment spreads of the order of the bundled card's: the weights are 1 / spread.
SCALES = {CLASSIFIER: 0.17, LENGTH: 0.067}
WEIGHTS = {name: 1.0 / scale for name, scale in SCALES.items()}


def standardised(n: int, seed: int) -> np.ndarray:
    """n values with mean exactly 0 and sample sd exactly 1."""
    values = np.random.default_rng(seed).standard_normal(n)
    return (values - values.mean()) / values.std(ddof=1)


def with_p(p: float, n: int, seed: int) -> np.ndarray:
    """n values whose one-sided t-test of mean > 0 has p-value exactly `p`."""
    t = stats.t.isf(p, n - 1)
    return standardised(n, seed) + t / math.sqrt(n)


def one_sided(values: np.ndarray):
    return stats.ttest_1samp(values, 0.0, alternative="greater")


def weighted_sum(components: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(weights[name] * np.asarray(values, dtype=float) for name, values in components.items())


def summing_to_p(p: float, n: int, seed: int, weights: dict[str, float] = WEIGHTS) -> dict[str, np.ndarray]:
    """Two noisy components whose weighted sum has a one-sided p-value of exactly `p`."""
    target = with_p(p, n, seed)
    length = SCALES[LENGTH] * standardised(n, seed + 1000)
    return {CLASSIFIER: (target - weights[LENGTH] * length) / weights[CLASSIFIER], LENGTH: length}


# --- the combined t-test ---------------------------------------------------------------------------------------


def test_the_combined_test_is_scipys_one_sided_t_test_on_the_weighted_sum() -> None:
    rng = np.random.default_rng(3)
    components = {CLASSIFIER: rng.normal(0.02, 0.17, 30), LENGTH: rng.normal(0.01, 0.067, 30)}
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    combined = weighted_sum(components, WEIGHTS)
    expected = one_sided(combined)
    assert result.test == PAIRED_T and result.alpha == ALPHA and result.n_prompts == 30
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.effect_size == pytest.approx(combined.mean() / combined.std(ddof=1), rel=1e-9)
    assert result.verdict == (INCONSISTENT if expected.pvalue < ALPHA else CONSISTENT)
    assert result.note == ""


def test_each_components_own_unadjusted_test_is_reported() -> None:
    rng = np.random.default_rng(4)
    components = {CLASSIFIER: rng.normal(0.0, 0.17, 25), LENGTH: rng.normal(0.05, 0.067, 25)}
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert [c.name for c in result.components] == [CLASSIFIER, LENGTH]
    for part in result.components:
        values = components[part.name]
        expected = one_sided(values)  # unweighted and unadjusted: the component's own test
        assert part.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert part.statistic == pytest.approx(expected.statistic, rel=1e-9)
        assert part.effect_size == pytest.approx(values.mean() / values.std(ddof=1), rel=1e-9)
    # The stage's p-value is the sum's, not a function of the components' (no min, no Bonferroni factor).
    assert result.p_value == pytest.approx(one_sided(weighted_sum(components, WEIGHTS)).pvalue, rel=1e-9)


def test_the_weights_decide_how_the_components_add_up() -> None:
    n = 40
    shifted, null = 0.5 + standardised(n, 5), standardised(n, 6)  # a shift of half a spread, and none
    components = {CLASSIFIER: shifted, LENGTH: null}

    def p(weights: dict[str, float]) -> float:
        result = combined_t_test(components, weights, ALPHA, PAIRED_T, min_prompts=10)
        assert result.p_value == pytest.approx(one_sided(weighted_sum(components, weights)).pvalue, rel=1e-9)
        return result.p_value

    equal = p({CLASSIFIER: 1.0, LENGTH: 1.0})
    # Weighting up the component without a shift drowns the shift in its noise; weighting it down uncovers it.
    assert p({CLASSIFIER: 1.0, LENGTH: 5.0}) > ALPHA > equal > p({CLASSIFIER: 1.0, LENGTH: 0.2})
    # Only the ratio of the weights matters: the t-test is invariant to a common positive factor.
    assert p({CLASSIFIER: 7.0, LENGTH: 7.0}) == pytest.approx(equal, rel=1e-9)
    # Rescaling a component's values is undone by dividing its weight by the same factor (what 1 / spread does):
    rescaled = {CLASSIFIER: shifted, LENGTH: 10.0 * null}
    result = combined_t_test(rescaled, {CLASSIFIER: 1.0, LENGTH: 0.1}, ALPHA, PAIRED_T, min_prompts=10)
    assert result.p_value == pytest.approx(equal, rel=1e-9)
    # ...while the same rescaling with unchanged weights is a different test.
    unweighted = combined_t_test(rescaled, {CLASSIFIER: 1.0, LENGTH: 1.0}, ALPHA, PAIRED_T, min_prompts=10)
    assert unweighted.p_value > 2 * equal


def test_a_component_with_zero_weight_is_ignored() -> None:
    classifier = with_p(0.01, 20, seed=6)
    weights = {CLASSIFIER: 3.0, LENGTH: 0.0}
    alone = t_test_greater(classifier, ALPHA, PAIRED_T, min_prompts=10)
    for length in (standardised(20, 7), -100.0 + standardised(20, 8), np.linspace(-1e6, 1e6, 20)):
        result = combined_t_test({CLASSIFIER: classifier, LENGTH: length}, weights, ALPHA, PAIRED_T, 10)
        assert result.p_value == pytest.approx(0.01, rel=1e-9) == alone.p_value
        assert result.statistic == pytest.approx(alone.statistic) and result.effect_size == pytest.approx(
            alone.effect_size
        )
        assert result.verdict == INCONSISTENT
        assert [c.name for c in result.components] == [CLASSIFIER, LENGTH]  # still reported


def test_weights_of_absent_components_are_unused_and_one_component_is_its_own_t_test() -> None:
    """The one-sample mode has only the classifier: the card's full weights leave its t-test unchanged."""
    values = with_p(0.2, 12, seed=8)
    result = combined_t_test({CLASSIFIER: values}, WEIGHTS, ALPHA, ONE_SAMPLE_T, min_prompts=10)
    alone = t_test_greater(values, ALPHA, ONE_SAMPLE_T, min_prompts=10)
    assert (result.p_value, result.verdict) == (pytest.approx(0.2), CONSISTENT)
    assert result.statistic == pytest.approx(alone.statistic)
    assert "less rigorous" in result.note  # the one-sample caveat survives
    assert [c.name for c in result.components] == [CLASSIFIER]


def test_the_full_alpha_is_spent_on_the_one_test() -> None:
    """p = 0.035 rejects at 0.05: there is one test, not a family of two at 0.025 each."""
    components = summing_to_p(0.035, 25, seed=9)
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert result.p_value == pytest.approx(0.035, rel=1e-6)
    assert result.verdict == INCONSISTENT
    not_quite = combined_t_test(summing_to_p(0.055, 25, seed=9), WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert not_quite.verdict == CONSISTENT and not_quite.p_value == pytest.approx(0.055, rel=1e-6)


def test_a_shift_in_both_components_adds_up() -> None:
    """Two moderate shifts, neither significant alone, are found together."""
    n = 30
    components = {
        CLASSIFIER: SCALES[CLASSIFIER] * (0.3 + standardised(n, 10)),
        LENGTH: SCALES[LENGTH] * (0.3 + standardised(n, 11)),
    }
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert all(part.p_value > ALPHA for part in result.components)
    assert result.p_value < min(part.p_value for part in result.components)
    assert result.verdict == INCONSISTENT


@pytest.mark.parametrize("shifted", [CLASSIFIER, LENGTH])
def test_a_shift_in_one_component_only_is_detected_with_enough_prompts(shifted: str) -> None:
    """A shift of a quarter of one component's same-deployment spread, the other component pure noise (independent,
    so it dilutes the sum as much as it can): missed on few prompts, found with power >= 90% on enough of them."""
    datasets, effect = 400, 0.25
    rng = np.random.default_rng(12 if shifted == CLASSIFIER else 13)

    def rejection_rate(n: int) -> float:
        noise = rng.standard_normal((datasets, 2, n))
        noise[:, 0 if shifted == CLASSIFIER else 1] += effect
        return np.mean(
            [
                combined_t_test(
                    {CLASSIFIER: SCALES[CLASSIFIER] * c, LENGTH: SCALES[LENGTH] * length},
                    WEIGHTS,
                    ALPHA,
                    PAIRED_T,
                    min_prompts=10,
                ).verdict
                == INCONSISTENT
                for c, length in noise
            ]
        )

    assert rejection_rate(20) < 0.5  # few prompts: usually missed
    assert rejection_rate(400) >= 0.9  # enough prompts: the single-component shift is seen through the sum
    # And exactly: with the shift built in, 400 prompts detect it at a p far below alpha.
    components = {name: SCALES[name] * standardised(400, seed) for seed, name in enumerate((CLASSIFIER, LENGTH))}
    components[shifted] = components[shifted] + effect * SCALES[shifted]
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert result.verdict == INCONSISTENT and result.p_value < 0.001


@pytest.mark.parametrize("p", [0.004, 0.012])
def test_the_nominal_threshold_is_honoured(p: float) -> None:
    components = summing_to_p(p, 25, seed=14)
    for nominal in (0.001, 0.005, 0.01, 0.02):
        result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10, nominal=nominal)
        assert result.verdict == (INCONSISTENT if p < nominal else CONSISTENT), (p, nominal)
        assert result.p_value == pytest.approx(p, rel=1e-6)  # the reported p does not depend on the threshold
        assert result.alpha == ALPHA
    incomplete = combined_t_test({CLASSIFIER: [1.0] * 3, LENGTH: [1.0] * 3}, WEIGHTS, ALPHA, PAIRED_T, 10, 0.5)
    assert incomplete.verdict == INCOMPLETE  # a threshold never turns too few prompts into a verdict


def test_too_few_prompts_is_incomplete_with_every_component_reported() -> None:
    components = {CLASSIFIER: [0.9, 0.8, 0.95], LENGTH: [0.5, 0.4, 0.6]}
    result = combined_t_test(components, WEIGHTS, ALPHA, PAIRED_T, min_prompts=10)
    assert result.verdict == INCOMPLETE
    assert "only 3 prompts" in result.note and "at least 10" in result.note
    assert math.isnan(result.p_value)
    assert [c.name for c in result.components] == [CLASSIFIER, LENGTH]
    assert all(math.isnan(c.p_value) for c in result.components)


def test_identical_statistics_are_explicit_in_the_combined_test() -> None:
    same = combined_t_test({CLASSIFIER: [0.0] * 12, LENGTH: [0.0] * 12}, WEIGHTS, ALPHA, PAIRED_T, 10)
    assert (same.verdict, same.p_value, same.statistic) == (CONSISTENT, 1.0, 0.0)
    assert "same statistic" in same.note
    shifted = combined_t_test({CLASSIFIER: [0.0] * 12, LENGTH: [0.02] * 12}, WEIGHTS, ALPHA, PAIRED_T, 10)
    assert shifted.verdict == INCONSISTENT and shifted.p_value == 0.0 and math.isinf(shifted.statistic)


def _null_components(datasets: int, n: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Same-deployment candidates: two correlated components with mean 0 per prompt, at different scales, the
    length drop heavy-tailed (symmetric, mean 0). Arrays of shape (datasets, n)."""
    rng = np.random.default_rng(seed)
    sample = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=(datasets, n))
    return 0.2 * sample[..., 0], 0.05 * np.sign(sample[..., 1]) * sample[..., 1] ** 2


def test_the_combined_test_is_calibrated_on_correlated_null_components() -> None:
    """The false-positive rate is alpha with no Bonferroni correction: near alpha (not alpha / 2, which a corrected
    family would give), and never above it beyond Monte Carlo error."""
    datasets = 3000
    classifier, length = _null_components(datasets, n=15, rho=0.6, seed=20240725)
    weights = {CLASSIFIER: 1 / 0.2, LENGTH: 1 / 0.05}
    results = [
        combined_t_test({CLASSIFIER: c, LENGTH: ln}, weights, ALPHA, PAIRED_T, min_prompts=10)
        for c, ln in zip(classifier, length, strict=True)
    ]
    rate = np.mean([r.verdict == INCONSISTENT for r in results])
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)
    assert rate <= ALPHA + slack
    assert rate >= ALPHA - slack  # it spends its alpha: a real test, not a conservative one
    # The same decisions as scipy's t-test of the weighted sums, all datasets at once.
    sums = weights[CLASSIFIER] * classifier + weights[LENGTH] * length
    p_values = stats.ttest_1samp(sums, 0.0, axis=1, alternative="greater").pvalue
    assert [r.p_value for r in results] == pytest.approx(p_values.tolist(), rel=1e-6, abs=1e-12)
    # Rejecting when either component alone is below alpha (a union without correction) is not calibrated.
    naive = np.mean([min(part.p_value for part in r.components) < ALPHA for r in results])
    assert naive > ALPHA + slack


@pytest.mark.parametrize(
    "weights",
    [{CLASSIFIER: 5.0, LENGTH: 20.0}, {CLASSIFIER: 1.0, LENGTH: 1.0}, {CLASSIFIER: 1.0, LENGTH: 100.0}],
    ids=["by spread", "equal", "length-heavy"],
)
def test_any_fixed_weights_keep_the_test_calibrated(weights: dict[str, float]) -> None:
    """Only power depends on the weights (vectorised: scipy on 20,000 null datasets of the same law)."""
    datasets = 20_000
    classifier, length = _null_components(datasets, n=15, rho=0.6, seed=7)
    sums = weights[CLASSIFIER] * classifier + weights[LENGTH] * length
    p_values = stats.ttest_1samp(sums, 0.0, axis=1, alternative="greater").pvalue
    rate = np.mean(p_values < ALPHA)
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)
    # And the function takes the same decisions on a sample of them.
    for i in range(0, datasets, 500):
        got = combined_t_test({CLASSIFIER: classifier[i], LENGTH: length[i]}, weights, ALPHA, PAIRED_T, 10)
        assert got.p_value == pytest.approx(p_values[i], rel=1e-6)
        assert got.verdict == (INCONSISTENT if p_values[i] < ALPHA else CONSISTENT)


# --- equivalence mode ----------------------------------------------------------------------------------------

EQUIV = GateSettings(alpha=ALPHA, min_prompts=10, mode=EQUIVALENCE, margin=0.05)


def test_identical_statistics_are_consistent_and_shown_below_the_margin() -> None:
    result = model_wise({CLASSIFIER: [0.0] * 12, LENGTH: [0.0] * 12}, WEIGHTS, PAIRED_T, EQUIV)
    assert result.verdict == CONSISTENT
    assert "every shift shown below the margin 0.05" in result.note
    assert "same statistic" in result.note  # the deterministic-responses note is kept


@pytest.mark.parametrize("shift", [0.0, 0.01], ids=["no shift", "small real shift"])
def test_small_noisy_shifts_inside_the_margin_with_enough_prompts_are_consistent(shift: float) -> None:
    n = 400
    components = {CLASSIFIER: shift + 0.05 * standardised(n, 9), LENGTH: shift / 2 + 0.03 * standardised(n, 10)}
    result = model_wise(components, WEIGHTS, PAIRED_T, EQUIV)
    assert result.verdict == CONSISTENT, result.note
    assert "every shift shown below the margin 0.05" in result.note
    if shift:  # with this many prompts the shift is detected, yet it is within what counts as consistent
        assert model_wise(components, WEIGHTS, PAIRED_T, GateSettings(alpha=ALPHA)).verdict == INCONSISTENT
        assert result.note.startswith("a shift is found, but every shift shown below the margin 0.05")
        assert result.note.endswith("so it counts as consistent")
    else:
        assert "a shift is found" not in result.note


def test_a_shift_not_shown_within_the_margin_is_incomplete_never_consistent() -> None:
    components = {CLASSIFIER: 0.02 + 0.2 * standardised(12, 11), LENGTH: 0.1 * standardised(12, 12)}
    difference = model_wise(components, WEIGHTS, PAIRED_T, GateSettings(alpha=ALPHA))
    assert difference.verdict == CONSISTENT  # too noisy to detect anything
    assert equivalence_p_value(components[CLASSIFIER], 0.05) > ALPHA  # and too noisy to show it is small
    result = model_wise(components, WEIGHTS, PAIRED_T, EQUIV)
    assert result.verdict == INCOMPLETE
    assert "classifier is not shown within the margin 0.05" in result.note
    assert result.p_value == difference.p_value


def test_a_clear_shift_is_inconsistent_in_equivalence_mode() -> None:
    components = {CLASSIFIER: 0.3 + 0.1 * standardised(12, 13), LENGTH: 0.02 * standardised(12, 14)}
    result = model_wise(components, WEIGHTS, PAIRED_T, EQUIV)
    assert result.verdict == INCONSISTENT
    assert result.note == ""  # one test decides: no component is singled out
    assert result.p_value == model_wise(components, WEIGHTS, PAIRED_T, GateSettings(alpha=ALPHA)).p_value


def test_equivalence_needs_every_component_within_the_margin() -> None:
    n = 400
    components = {CLASSIFIER: 0.05 * standardised(n, 15), LENGTH: 0.06 + 0.03 * standardised(n, 16)}
    assert equivalence_p_value(components[CLASSIFIER], 0.05) < ALPHA  # the classifier is shown small...
    result = model_wise(components, WEIGHTS, PAIRED_T, EQUIV)  # ...but the length shift, 0.06, is found and beyond 0.05
    assert result.verdict == INCONSISTENT and result.note == ""
    wide = model_wise(components, WEIGHTS, PAIRED_T, GateSettings(alpha=ALPHA, mode=EQUIVALENCE, margin=0.08))
    assert wide.verdict == CONSISTENT  # a wider margin takes it in
    assert wide.note.startswith("a shift is found, but every shift shown below the margin 0.08")
    assert wide.p_value == result.p_value  # the difference test's p is reported either way


def test_the_equivalence_side_is_per_component_whatever_the_weights() -> None:
    """Equivalence is shown component by component against the margin: the weights of the sum do not enter it."""
    components = {CLASSIFIER: 0.02 + 0.2 * standardised(12, 11), LENGTH: 0.1 * standardised(12, 12)}
    for weights in (WEIGHTS, {CLASSIFIER: 1.0, LENGTH: 1.0}, {CLASSIFIER: 0.0, LENGTH: 1.0}):
        result = model_wise(components, weights, PAIRED_T, EQUIV)
        assert result.verdict == INCOMPLETE
        assert "classifier is not shown within the margin 0.05" in result.note


def test_too_few_prompts_stays_incomplete_in_equivalence_mode() -> None:
    result = model_wise({CLASSIFIER: [0.0] * 5, LENGTH: [0.0] * 5}, WEIGHTS, PAIRED_T, EQUIV)
    assert result.verdict == INCOMPLETE and "only 5 prompts" in result.note


def test_equivalence_p_value_matches_scipy() -> None:
    values = 0.01 + 0.05 * standardised(40, 17)
    expected = stats.ttest_1samp(values, 0.05, alternative="less").pvalue
    assert equivalence_p_value(values, 0.05) == pytest.approx(expected)
    assert equivalence_p_value([0.02] * 10, 0.05) == 0.0  # no spread: shown exactly
    assert equivalence_p_value([0.07] * 10, 0.05) == 1.0


def test_equivalence_never_calls_a_shift_at_the_margin_consistent_more_than_alpha() -> None:
    """The false green of equivalence mode: a true shift equal to the margin. It is called consistent at most alpha
    of the time (an intersection-union test), even when the other component is exactly zero."""
    datasets, n, margin = 2000, 30, 0.05
    rng = np.random.default_rng(99)
    settings = GateSettings(alpha=ALPHA, min_prompts=10, mode=EQUIVALENCE, margin=margin)
    greens = sum(
        model_wise(
            {CLASSIFIER: rng.normal(margin, 0.1, n), LENGTH: rng.normal(0.0, 0.03, n)}, WEIGHTS, PAIRED_T, settings
        ).verdict
        == CONSISTENT
        for _ in range(datasets)
    )
    assert greens / datasets <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)
    assert greens / datasets >= ALPHA / 2  # at the boundary the test spends its alpha: it is not vacuous


# --- the sequential threshold inside model_wise ----------------------------------------------------------------


def test_an_interim_look_uses_the_spent_threshold() -> None:
    """The one combined test spends the whole alpha over the looks (no alpha / 2 per component)."""
    fractions = (0.5, 1.0)
    interim = nominal_alphas(ALPHA, fractions[:1])[-1]
    final = nominal_alphas(ALPHA, fractions)[-1]
    assert interim < final < ALPHA
    assert final > ALPHA / 2  # what the look would have had under a Bonferroni split: strictly less

    def verdicts(p: float) -> tuple[str, str, str]:
        components = summing_to_p(p, 25, seed=18)
        at_interim, at_final, fixed = (
            model_wise(components, WEIGHTS, PAIRED_T, settings)
            for settings in (
                GateSettings(alpha=ALPHA, look_fractions=fractions[:1], spending="obrien-fleming"),
                GateSettings(alpha=ALPHA, look_fractions=fractions, spending="obrien-fleming"),
                GateSettings(alpha=ALPHA),
            )
        )
        assert at_interim.p_value == at_final.p_value == fixed.p_value == pytest.approx(p, rel=1e-6)
        return at_interim.verdict, at_final.verdict, fixed.verdict

    assert verdicts(interim / 2) == (INCONSISTENT, INCONSISTENT, INCONSISTENT)
    assert verdicts((interim + final) / 2) == (CONSISTENT, INCONSISTENT, INCONSISTENT)
    assert verdicts((final + ALPHA) / 2) == (CONSISTENT, CONSISTENT, INCONSISTENT)
    # Not rejected by a family at alpha / 2 each, rejected by the one test at the last look:
    assert verdicts((ALPHA / 2 + final) / 2) == (CONSISTENT, INCONSISTENT, INCONSISTENT)


# --- the diversity test, joined to the shift test -----------------------------------------------------------------


def two_sided_with_p(p: float, n: int, seed: int, sign: float = 1.0) -> np.ndarray:
    """n values whose two-sided t-test of mean != 0 has p-value exactly `p`, the mean of sign `sign`."""
    return standardised(n, seed) + sign * stats.t.isf(p / 2, n - 1) / math.sqrt(n)


def with_diversity(shift_p: float, diversity_p: float, n: int = 25, sign: float = 1.0) -> dict[str, np.ndarray]:
    return {**summing_to_p(shift_p, n, seed=30), DIVERSITY: two_sided_with_p(diversity_p, n, seed=31, sign=sign)}


def test_two_sided_t_test_matches_scipy() -> None:
    values = np.random.default_rng(4).normal(-0.2, 1.0, 30)
    result = t_test(values, ALPHA, PAIRED_T, 10, TWO_SIDED)
    assert result.p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue)
    assert t_test([-0.3] * 12, ALPHA, PAIRED_T, 10, TWO_SIDED).p_value == 0.0  # identical and negative: shown
    assert t_test_greater([-0.3] * 12, ALPHA, PAIRED_T, 10).p_value == 1.0


@pytest.mark.parametrize(
    ("shift_p", "diversity_p", "verdict"),
    [
        (0.5, 0.5, CONSISTENT),
        (0.035, 0.5, INCONSISTENT),  # below alpha x 0.8
        (0.045, 0.5, CONSISTENT),  # below alpha, not below its share
        (0.5, 0.008, INCONSISTENT),  # below alpha x 0.2
        (0.5, 0.02, CONSISTENT),
    ],
)
def test_the_union_splits_alpha_and_reports_the_adjusted_p(shift_p: float, diversity_p: float, verdict: str) -> None:
    for sign in (1.0, -1.0):  # more alike or less alike: both count
        result = model_wise(with_diversity(shift_p, diversity_p, sign=sign), WEIGHTS, PAIRED_T, GateSettings())
        assert result.verdict == verdict
        expected = min(1.0, shift_p / (1 - DIVERSITY_SHARE), diversity_p / DIVERSITY_SHARE)
        assert result.p_value == pytest.approx(expected, rel=1e-6)
        assert (result.p_value < ALPHA) == (verdict == INCONSISTENT)
        diversity = result.components[-1]
        assert (diversity.name, diversity.alternative) == (DIVERSITY, TWO_SIDED)
        assert diversity.p_value == pytest.approx(diversity_p, rel=1e-6)
        assert ("than the reference: its responses are" in result.note) == (diversity_p < ALPHA * DIVERSITY_SHARE)


def test_the_union_is_calibrated_when_nothing_moves() -> None:
    rng = np.random.default_rng(12)
    datasets, n = 2000, 20
    rejections = 0
    for _ in range(datasets):
        shared = rng.standard_normal(n)  # the components are correlated in practice: make them so here
        components = {
            CLASSIFIER: SCALES[CLASSIFIER] * (shared + rng.standard_normal(n)),
            LENGTH: SCALES[LENGTH] * rng.standard_normal(n),
            DIVERSITY: 0.05 * (shared + rng.standard_normal(n)),
        }
        rejections += model_wise(components, WEIGHTS, PAIRED_T, GateSettings()).verdict == INCONSISTENT
    assert rejections / datasets <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)


def test_a_sequential_look_spends_each_share_of_alpha() -> None:
    fractions = (0.5, 1.0)
    interim = nominal_alphas(ALPHA * DIVERSITY_SHARE, fractions[:1])[-1]
    settings = GateSettings(look_fractions=fractions[:1], spending="obrien-fleming")
    below, above = with_diversity(0.5, interim / 2), with_diversity(0.5, (interim + ALPHA * DIVERSITY_SHARE) / 2)
    assert model_wise(below, WEIGHTS, PAIRED_T, settings).verdict == INCONSISTENT
    assert model_wise(above, WEIGHTS, PAIRED_T, settings).verdict == CONSISTENT
    assert model_wise(above, WEIGHTS, PAIRED_T, GateSettings()).verdict == INCONSISTENT  # the fixed design rejects


def test_equivalence_needs_the_diversity_within_the_margin_both_ways() -> None:
    n = 400
    settings = GateSettings(mode=EQUIVALENCE, margin=0.05)
    quiet = {CLASSIFIER: 0.01 * standardised(n, 1), LENGTH: 0.01 * standardised(n, 2)}
    for sign in (1.0, -1.0):
        near_margin = {**quiet, DIVERSITY: sign * (0.05 + 0.01 * standardised(n, 3))}
        result = model_wise(near_margin, WEIGHTS, PAIRED_T, settings)
        assert result.verdict != CONSISTENT
        within = {**quiet, DIVERSITY: sign * 0.01 * (1 + standardised(n, 3))}
        assert model_wise(within, WEIGHTS, PAIRED_T, settings).verdict == CONSISTENT


# --- through compare(): the signature ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> BundledModel:
    return BundledModel.load()


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(f"p{i}", f"question {i}") for i in range(n)]


def _terms(model: BundledModel) -> str:
    scales = model.card.component_scales
    return f"classifier/{scales[CLASSIFIER]:g}+length/{scales[LENGTH]:g},diversity:two-sided@{DIVERSITY_SHARE:g}"


def test_equivalence_mode_through_compare_is_signed(model: BundledModel) -> None:
    prompts = _prompts(12)
    same = {p.id: [f"The answer to {p.text} is {i}."] * 6 for i, p in enumerate(prompts)}
    settings = GateSettings(alpha=ALPHA, mode=EQUIVALENCE, margin=0.1)
    result = compare(same, same, prompts, model, samples=3, greedy=True, settings=settings)
    assert result.verdict == CONSISTENT
    assert "every shift shown below the margin 0.1" in result.model_wise.note
    assert "|mode:equivalence:0.1|" in result.signature
    assert result.signature.startswith(f"test:paired-t[{_terms(model)}]|alpha:0.05|mode:equivalence:0.1|samples:3")
    difference = compare(same, same, prompts, model, samples=3, greedy=True)
    assert "|mode:difference|" in difference.signature and "look:" not in difference.signature
    assert DIFFERENCE in difference.signature


def test_a_sequential_look_is_signed(model: BundledModel) -> None:
    prompts = _prompts(12)
    same = {p.id: [f"The answer to {p.text} is {i}."] * 6 for i, p in enumerate(prompts)}
    settings = GateSettings(alpha=ALPHA, look_fractions=(0.25, 0.5), spending="pocock")
    result = compare(same, same, prompts, model, samples=3, greedy=True, settings=settings)
    assert "|mode:difference|look:2@0.50,pocock|samples:3|" in result.signature


def _varied(prompts: list[Prompt], samples: int, words: tuple[int, int], seed: int) -> dict[str, list[str]]:
    """Sampled-looking responses: a shared opening, then a random number of random words."""
    rng = np.random.default_rng(seed)
    vocabulary = ("red", "green", "blue", "quick", "slow", "bright", "dark", "warm", "cold", "light", "heavy")
    return {
        p.id: [
            f"The answer to {p.text} is " + " ".join(rng.choice(vocabulary, rng.integers(*words)))
            for _ in range(samples)
        ]
        for p in prompts
    }


def _with_scales(model: BundledModel, classifier: float, length: float) -> BundledModel:
    other = copy.copy(model)
    other.card = replace(model.card, component_scales={CLASSIFIER: classifier, LENGTH: length})
    return other


def test_compare_weights_the_components_by_the_cards_scales(model: BundledModel) -> None:
    prompts = _prompts(30)
    reference = _varied(prompts, 6, (4, 30), seed=20)
    candidate = _varied(prompts, 3, (2, 20), seed=21)  # shorter, and otherwise alike

    def run(scales: tuple[float, float]):
        return compare(reference, candidate, prompts, _with_scales(model, *scales), samples=3)

    scales = model.card.component_scales
    bundled = run((scales[CLASSIFIER], scales[LENGTH]))
    assert bundled.signature == compare(reference, candidate, prompts, model, samples=3).signature
    assert bundled.model_wise.p_value == compare(reference, candidate, prompts, model, samples=3).model_wise.p_value
    classifier_part, length_part, diversity_part = bundled.model_wise.components
    assert diversity_part.name == DIVERSITY and diversity_part.alternative == "two-sided"

    def union(shift_p: float) -> float:  # the reported p-value: the shift test's and the diversity test's union
        return min(1.0, shift_p / (1 - DIVERSITY_SHARE), diversity_part.p_value / DIVERSITY_SHARE)

    # A scale so large the component weighs nothing: the combined test is the other component's own test.
    assert run((scales[CLASSIFIER], 1e12)).model_wise.p_value == pytest.approx(union(classifier_part.p_value), rel=1e-6)
    assert run((1e12, scales[LENGTH])).model_wise.p_value == pytest.approx(union(length_part.p_value), rel=1e-6)
    centred = [score.centred for score in bundled.prompts]  # the classifier component, per prompt
    assert classifier_part.p_value == pytest.approx(one_sided(np.array(centred)).pvalue, rel=1e-9)
    # Only the ratio of the scales matters, and the signature writes the scales used.
    doubled = run((2 * scales[CLASSIFIER], 2 * scales[LENGTH]))
    assert doubled.model_wise.p_value == pytest.approx(bundled.model_wise.p_value, rel=1e-9)
    assert doubled.signature.startswith(
        f"test:paired-t[classifier/{2 * scales[CLASSIFIER]:g}+length/{2 * scales[LENGTH]:g},diversity:"
    )
    assert bundled.signature.startswith(f"test:paired-t[{_terms(model)}]|alpha:0.05|mode:difference|samples:3|")
    # Weighting one component down moves the stage's p-value toward the other component's own.
    assert classifier_part.p_value < ALPHA and length_part.p_value < ALPHA  # both moved, the classifier more clearly
    assert classifier_part.p_value < length_part.p_value
    towards_classifier = run((scales[CLASSIFIER], 10 * scales[LENGTH])).model_wise.p_value
    towards_length = run((10 * scales[CLASSIFIER], scales[LENGTH])).model_wise.p_value
    assert towards_classifier < towards_length
