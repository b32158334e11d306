"""Promise: the model-wise family (classifier + length) keeps false positives at alpha whatever their dependence,
and equivalence mode calls a stage consistent only when every shift is shown within the margin.

Statistics are built to an exact t where a test needs one: a sample standardised to mean 0 and sd 1, times a
spread, plus a shift.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simct_ci.compare import CLASSIFIER, DIFFERENCE, EQUIVALENCE, LENGTH, GateSettings, compare, model_wise
from simct_ci.model import BundledModel
from simct_ci.responses import Prompt
from simct_ci.sequential import nominal_alphas
from simct_ci.stats import ONE_SAMPLE_T, PAIRED_T, equivalence_p_value, union_t_test
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT

ALPHA = 0.05


def standardised(n: int, seed: int) -> np.ndarray:
    """n values with mean exactly 0 and sample sd exactly 1."""
    values = np.random.default_rng(seed).standard_normal(n)
    return (values - values.mean()) / values.std(ddof=1)


def with_p(p: float, n: int, seed: int) -> np.ndarray:
    """n values whose one-sided t-test of mean > 0 has p-value exactly `p`."""
    t = stats.t.isf(p, n - 1)
    return standardised(n, seed) + t / math.sqrt(n)


def one_sided_p(values: np.ndarray) -> float:
    return float(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue)


# --- the union of one-sided t-tests ---------------------------------------------------------------------------


def test_a_shift_in_one_component_rejects_and_is_named() -> None:
    rng = np.random.default_rng(3)
    classifier, length = rng.normal(0.0, 1.0, 30), rng.normal(1.0, 1.0, 30)
    result = union_t_test({CLASSIFIER: classifier, LENGTH: length}, ALPHA, PAIRED_T, min_prompts=10)
    p_classifier, p_length = one_sided_p(classifier), one_sided_p(length)
    assert p_length < ALPHA / 2 < p_classifier
    assert result.verdict == INCONSISTENT
    assert result.note == "decided by length"
    assert result.p_value == pytest.approx(min(1.0, 2 * min(p_classifier, p_length)))
    expected = stats.ttest_1samp(length, 0.0, alternative="greater")
    assert result.statistic == pytest.approx(expected.statistic)  # the decisive component's
    assert result.effect_size == pytest.approx(length.mean() / length.std(ddof=1))
    assert [c.name for c in result.components] == [CLASSIFIER, LENGTH]
    assert [c.p_value for c in result.components] == pytest.approx([p_classifier, p_length])
    assert result.components[0].statistic == pytest.approx(stats.ttest_1samp(classifier, 0.0).statistic)


def test_the_union_p_value_is_bonferroni_capped_at_one() -> None:
    classifier, length = with_p(0.3, 20, seed=1), with_p(0.8, 20, seed=2)
    result = union_t_test({CLASSIFIER: classifier, LENGTH: length}, ALPHA, PAIRED_T, min_prompts=10)
    assert result.verdict == CONSISTENT and result.p_value == pytest.approx(0.6)
    assert result.note == ""  # nothing decided it
    both_high = union_t_test({CLASSIFIER: with_p(0.7, 20, 1), LENGTH: with_p(0.9, 20, 2)}, ALPHA, PAIRED_T, 10)
    assert both_high.p_value == 1.0


def test_below_alpha_but_not_below_alpha_over_m_is_consistent() -> None:
    """p = 0.035 rejects one test at 0.05, but not a family of two at 0.025 each."""
    components = {CLASSIFIER: with_p(0.035, 25, seed=4), LENGTH: with_p(0.5, 25, seed=5)}
    result = union_t_test(components, ALPHA, PAIRED_T, min_prompts=10)
    assert result.verdict == CONSISTENT
    assert result.p_value == pytest.approx(0.07)
    single = union_t_test({CLASSIFIER: components[CLASSIFIER]}, ALPHA, PAIRED_T, min_prompts=10)
    assert single.verdict == INCONSISTENT and single.p_value == pytest.approx(0.035)  # one test: no correction
    assert single.note == ""  # "decided by" only means something in a family


@pytest.mark.parametrize("p", [0.004, 0.012])
def test_the_nominal_threshold_is_honoured(p: float) -> None:
    components = {CLASSIFIER: with_p(p, 25, seed=6), LENGTH: with_p(0.6, 25, seed=7)}
    for nominal in (0.001, 0.005, 0.01, 0.02):
        result = union_t_test(components, ALPHA, PAIRED_T, min_prompts=10, nominal=nominal)
        assert result.verdict == (INCONSISTENT if p < nominal else CONSISTENT), (p, nominal)
        assert result.p_value == pytest.approx(2 * p)  # the reported p does not depend on the threshold


def test_too_few_prompts_is_incomplete_with_every_component_reported() -> None:
    result = union_t_test({CLASSIFIER: [0.9, 0.8, 0.95], LENGTH: [0.5, 0.4, 0.6]}, ALPHA, PAIRED_T, min_prompts=10)
    assert result.verdict == INCOMPLETE
    assert "only 3 prompts" in result.note
    assert [c.name for c in result.components] == [CLASSIFIER, LENGTH]
    assert all(math.isnan(c.p_value) for c in result.components)


def test_the_one_sample_caveat_survives_the_union() -> None:
    result = union_t_test({CLASSIFIER: with_p(0.2, 12, seed=8)}, ALPHA, ONE_SAMPLE_T, min_prompts=10)
    assert "less rigorous" in result.note


def test_the_union_is_calibrated_on_correlated_null_components() -> None:
    """Same-deployment candidates: two correlated components with mean 0. The union rejects at most alpha of the
    time; rejecting when either test alone is below alpha would not."""
    datasets, n, rho = 3000, 15, 0.6
    rng = np.random.default_rng(20240725)
    covariance = [[1.0, rho], [rho, 1.0]]
    union_rejections = naive_rejections = 0
    for _ in range(datasets):
        sample = rng.multivariate_normal([0.0, 0.0], covariance, size=n)
        # Different scales, and a heavy-tailed (symmetric, mean 0) length drop.
        classifier, length = 0.2 * sample[:, 0], 0.05 * np.sign(sample[:, 1]) * sample[:, 1] ** 2
        result = union_t_test({CLASSIFIER: classifier, LENGTH: length}, ALPHA, PAIRED_T, min_prompts=10)
        union_rejections += result.verdict == INCONSISTENT
        naive_rejections += min(c.p_value for c in result.components) < ALPHA
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)
    union_rate, naive_rate = union_rejections / datasets, naive_rejections / datasets
    assert union_rate <= ALPHA + slack
    assert union_rate >= ALPHA / 2 - slack  # a real test, not one that never rejects
    assert naive_rate > ALPHA + slack  # why the family is corrected


# --- equivalence mode ----------------------------------------------------------------------------------------

EQUIV = GateSettings(alpha=ALPHA, min_prompts=10, mode=EQUIVALENCE, margin=0.05)


def test_identical_statistics_are_consistent_and_shown_below_the_margin() -> None:
    result = model_wise({CLASSIFIER: [0.0] * 12, LENGTH: [0.0] * 12}, PAIRED_T, EQUIV)
    assert result.verdict == CONSISTENT
    assert "every shift shown below the margin 0.05" in result.note
    assert "same statistic" in result.note  # the deterministic-responses note is kept


@pytest.mark.parametrize("shift", [0.0, 0.01], ids=["no shift", "small real shift"])
def test_small_noisy_shifts_inside_the_margin_with_enough_prompts_are_consistent(shift: float) -> None:
    n = 400
    components = {CLASSIFIER: shift + 0.05 * standardised(n, 9), LENGTH: shift / 2 + 0.03 * standardised(n, 10)}
    result = model_wise(components, PAIRED_T, EQUIV)
    assert result.verdict == CONSISTENT, result.note
    assert "every shift shown below the margin 0.05" in result.note
    if shift:  # with this many prompts the shift is detected, yet it is within what counts as consistent
        assert model_wise(components, PAIRED_T, GateSettings(alpha=ALPHA)).verdict == INCONSISTENT
        assert "a shift found in classifier" in result.note


def test_a_shift_not_shown_within_the_margin_is_incomplete_never_consistent() -> None:
    components = {CLASSIFIER: 0.02 + 0.2 * standardised(12, 11), LENGTH: 0.1 * standardised(12, 12)}
    difference = model_wise(components, PAIRED_T, GateSettings(alpha=ALPHA))
    assert difference.verdict == CONSISTENT  # too noisy to detect anything
    assert equivalence_p_value(components[CLASSIFIER], 0.05) > ALPHA  # and too noisy to show it is small
    result = model_wise(components, PAIRED_T, EQUIV)
    assert result.verdict == INCOMPLETE
    assert "classifier is not shown within the margin 0.05" in result.note
    assert result.p_value == difference.p_value


def test_a_clear_shift_is_inconsistent_in_equivalence_mode() -> None:
    components = {CLASSIFIER: 0.3 + 0.1 * standardised(12, 13), LENGTH: 0.02 * standardised(12, 14)}
    result = model_wise(components, PAIRED_T, EQUIV)
    assert result.verdict == INCONSISTENT
    assert result.note == "decided by classifier"


def test_equivalence_needs_every_component_within_the_margin() -> None:
    n = 400
    components = {CLASSIFIER: 0.05 * standardised(n, 15), LENGTH: 0.06 + 0.03 * standardised(n, 16)}
    assert equivalence_p_value(components[CLASSIFIER], 0.05) < ALPHA  # the classifier is shown small...
    result = model_wise(components, PAIRED_T, EQUIV)  # ...but the length shift, 0.06, is found and beyond 0.05
    assert result.verdict == INCONSISTENT and result.note == "decided by length"
    wide = model_wise(components, PAIRED_T, GateSettings(alpha=ALPHA, mode=EQUIVALENCE, margin=0.08))
    assert wide.verdict == CONSISTENT  # a wider margin takes it in
    assert wide.note.startswith("a shift found in length; every shift shown below the margin 0.08")


def test_too_few_prompts_stays_incomplete_in_equivalence_mode() -> None:
    result = model_wise({CLASSIFIER: [0.0] * 5, LENGTH: [0.0] * 5}, PAIRED_T, EQUIV)
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
            {CLASSIFIER: rng.normal(margin, 0.1, n), LENGTH: rng.normal(0.0, 0.03, n)}, PAIRED_T, settings
        ).verdict
        == CONSISTENT
        for _ in range(datasets)
    )
    assert greens / datasets <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / datasets)
    assert greens / datasets >= ALPHA / 2  # at the boundary the test spends its alpha: it is not vacuous


# --- the sequential threshold inside model_wise ----------------------------------------------------------------


def test_an_interim_look_uses_the_spent_threshold() -> None:
    fractions = (0.5, 1.0)
    interim = nominal_alphas(ALPHA / 2, fractions[:1])[-1]
    final = nominal_alphas(ALPHA / 2, fractions)[-1]
    assert interim < final < ALPHA / 2
    p = (interim + final) / 2
    components = {CLASSIFIER: with_p(p, 25, seed=18), LENGTH: with_p(0.5, 25, seed=19)}
    at_interim = model_wise(
        components, PAIRED_T, GateSettings(alpha=ALPHA, look_fractions=fractions[:1], spending="obrien-fleming")
    )
    at_final = model_wise(
        components, PAIRED_T, GateSettings(alpha=ALPHA, look_fractions=fractions, spending="obrien-fleming")
    )
    fixed = model_wise(components, PAIRED_T, GateSettings(alpha=ALPHA))
    assert (at_interim.verdict, at_final.verdict, fixed.verdict) == (CONSISTENT, INCONSISTENT, INCONSISTENT)


# --- through compare(): the signature ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> BundledModel:
    return BundledModel.load()


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(f"p{i}", f"question {i}") for i in range(n)]


def test_equivalence_mode_through_compare_is_signed(model: BundledModel) -> None:
    prompts = _prompts(12)
    same = {p.id: [f"The answer to {p.text} is {i}."] * 6 for i, p in enumerate(prompts)}
    settings = GateSettings(alpha=ALPHA, mode=EQUIVALENCE, margin=0.1)
    result = compare(same, same, prompts, model, samples=3, greedy=True, settings=settings)
    assert result.verdict == CONSISTENT
    assert "every shift shown below the margin 0.1" in result.model_wise.note
    assert "|mode:equivalence:0.1|" in result.signature
    assert result.signature.startswith("test:paired-t[classifier+length]|alpha:0.05|mode:equivalence:0.1|samples:3")
    difference = compare(same, same, prompts, model, samples=3, greedy=True)
    assert "|mode:difference|" in difference.signature and "look:" not in difference.signature
    assert DIFFERENCE in difference.signature


def test_a_sequential_look_is_signed(model: BundledModel) -> None:
    prompts = _prompts(12)
    same = {p.id: [f"The answer to {p.text} is {i}."] * 6 for i, p in enumerate(prompts)}
    settings = GateSettings(alpha=ALPHA, look_fractions=(0.25, 0.5), spending="pocock")
    result = compare(same, same, prompts, model, samples=3, greedy=True, settings=settings)
    assert "|mode:difference|look:2@0.50,pocock|samples:3|" in result.signature
