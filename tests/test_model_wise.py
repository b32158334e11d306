"""The model-wise t-test: degenerate cases are explicit, and the paired mode is calibrated."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

from simct_ci.compare import GateSettings, compare
from simct_ci.model import BundledModel
from simct_ci.responses import Prompt
from simct_ci.stats import ONE_SAMPLE_T, PAIRED_T, t_test_greater
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT


@pytest.fixture(scope="module")
def model() -> BundledModel:
    return BundledModel.load()


def test_t_test_matches_scipy_one_sided() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.2, 1.0, size=30)
    result = t_test_greater(values, 0.05, PAIRED_T, min_prompts=10)
    expected = stats.ttest_1samp(values, 0.0, alternative="greater")
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.effect_size == pytest.approx(values.mean() / values.std(ddof=1))
    assert result.verdict == (INCONSISTENT if expected.pvalue < 0.05 else CONSISTENT)


def test_identical_statistics_zero_variance() -> None:
    same = t_test_greater([0.0] * 12, 0.05, PAIRED_T, min_prompts=10)
    assert (same.verdict, same.p_value, same.statistic) == (CONSISTENT, 1.0, 0.0)
    assert "same statistic" in same.note
    shifted = t_test_greater([0.3] * 12, 0.05, PAIRED_T, min_prompts=10)
    assert shifted.verdict == INCONSISTENT and shifted.p_value == 0.0 and math.isinf(shifted.statistic)


def test_too_few_prompts_is_incomplete_never_consistent() -> None:
    result = t_test_greater([0.0, 0.01, -0.01], 0.05, PAIRED_T, min_prompts=10)
    assert result.verdict == INCOMPLETE
    assert "only 3 prompts" in result.note


def test_one_sample_mode_says_it_is_less_rigorous() -> None:
    result = t_test_greater([0.1] * 5 + [0.2] * 5, 0.05, ONE_SAMPLE_T, min_prompts=10)
    assert "less rigorous" in result.note


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(f"p{i}", f"question {i}") for i in range(n)]


def test_greedy_identical_responses_are_consistent(model: BundledModel) -> None:
    prompts = _prompts(12)
    same = {p.id: [f"The answer to {p.text} is {i}."] * 3 for i, p in enumerate(prompts)}
    result = compare(same, same, prompts, model, samples=3, greedy=True)
    assert result.verdict == CONSISTENT
    assert all(score.centred == pytest.approx(0.0) for score in result.prompts)


def test_missing_responses_are_listed_and_too_many_make_it_incomplete(model: BundledModel) -> None:
    prompts = _prompts(12)
    reference = {p.id: [f"Answer {p.id} one.", f"Answer {p.id} two."] for p in prompts}
    candidate = {p.id: texts for p, texts in list(zip(prompts, reference.values(), strict=True))[:8]}
    result = compare(reference, candidate, prompts, model, samples=2, settings=GateSettings(min_prompts=5))
    assert set(result.missing) == {"p8", "p9", "p10", "p11"}
    assert result.verdict == INCOMPLETE
    assert "4 of 12 prompts lack responses" in result.model_wise.note


def test_signature_records_every_setting(model: BundledModel) -> None:
    prompts = _prompts(10)
    reference = {p.id: [f"{p.id} a", f"{p.id} b"] for p in prompts}
    result = compare(reference, reference, prompts, model, samples=2, settings=GateSettings(alpha=0.01))
    scales = model.card.component_scales
    terms = f"classifier/{scales['classifier']:g}+length/{scales['length']:g}"  # the combined statistic, as written
    # Sets of one sample: no diversity within a set, so no diversity test, and the signature says so.
    assert result.signature.startswith(
        f"test:paired-t[{terms}]|alpha:0.01|mode:difference|samples:2|sets:1v1|features:v2|model:{model.card.version}+"
    )
    assert model.info.sha256[:8] in result.signature
    terms_pattern = r"classifier/0\.\d+\+length/0\.\d+"
    assert re.fullmatch(rf"test:paired-t\[{terms_pattern}\]\|.*", result.signature)
    sets_of_two = {p.id: [f"{p.id} {word}" for word in ("a", "b", "c", "d")] for p in prompts}
    with_diversity = compare(sets_of_two, sets_of_two, prompts, model, samples=2)
    assert re.fullmatch(
        rf"test:paired-t\[{terms_pattern},diversity:two-sided@0\.2\]\|.*sets:2v2\|.*", with_diversity.signature
    )


def _diversity(result) -> float:
    (part,) = [part for part in result.model_wise.components if part.name == "diversity"]
    return part.statistic


def test_diversity_sees_a_narrower_and_a_wider_sampler(model: BundledModel) -> None:
    """A candidate whose samples collapse onto one of the reference's (a narrower sampler) is more alike, among
    its samples and to the reference; one with unrelated samples (a much wider sampler) is less alike."""
    prompts = _prompts(12)
    words = ["river", "stone", "cloud", "ember", "field", "glass", "harbor", "lantern"]

    def sample(i: int, j: int) -> str:
        return f"For question {i}, the {words[(i + j) % 8]} and the {words[(i + 3 * j) % 8]} answer {j} best."

    reference = {p.id: [sample(i, j) for j in range(4)] for i, p in enumerate(prompts)}
    narrower = {p.id: [reference[p.id][0]] * 2 for p in prompts}
    wider = {p.id: [f"{words[(i + j) % 8]} {i * 7 + j} zq{j}" for j in range(2)] for i, p in enumerate(prompts)}
    assert _diversity(compare(reference, narrower, prompts, model, samples=2)) > 0
    assert _diversity(compare(reference, wider, prompts, model, samples=2)) < 0
