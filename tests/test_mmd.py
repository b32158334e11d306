"""The MMD test of `gate.test: mmd`: its kernel and statistic against their definitions, and its calibration.

bench/detection.py holds the same code to the package model-equality-testing (it needs torch, which CI does not
install); here each piece is held to a direct, slow transcription of its definition.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simct_ci import mmd
from simct_ci.compare import MMD_TEST, GateSettings, compare
from simct_ci.model import BundledModel
from simct_ci.responses import Prompt
from simct_ci.stats import MMD, mmd_permutation_test
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT

ALPHA = 0.05


# --- the kernel ---------------------------------------------------------------------------------------------


def spectrum_by_counting(a: np.ndarray, b: np.ndarray, max_order: int) -> float:
    """The definition: for every substring length 1..max_order, the dot product of the substring counts."""
    total = 0.0
    for order in range(1, max_order + 1):
        count_a = Counter(tuple(a[i : i + order]) for i in range(len(a) - order + 1))
        count_b = Counter(tuple(b[i : i + order]) for i in range(len(b) - order + 1))
        total += sum(count * count_b[gram] for gram, count in count_a.items())
    return total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab猫 ", max_size=12), min_size=1, max_size=4), st.integers(1, 5))
def test_spectrum_kernel_is_the_sum_of_substring_count_products(texts: list[str], max_order: int) -> None:
    codes = mmd.char_codes(texts, length=10)
    kernel = mmd.spectrum_kernel(codes, max_order)
    for i, j in itertools.product(range(len(texts)), repeat=2):
        assert kernel[i, j] == spectrum_by_counting(codes[i], codes[j], max_order)


def test_char_codes_truncate_and_pad_like_the_package() -> None:
    codes = mmd.char_codes(["猫a", "abcdef"], length=4)
    assert codes.tolist() == [[ord("猫"), ord("a"), mmd.PAD, mmd.PAD], [ord(c) for c in "abcd"]]


def test_prompt_gram_is_normalised_and_symmetric() -> None:
    gram = mmd.prompt_gram(["The cat sleeps.", "The cat sleeps.", "猫在睡觉。", ""])
    assert np.allclose(np.diag(gram), 1.0)
    assert np.allclose(gram, gram.T)
    assert gram[0, 1] == pytest.approx(1.0)
    assert gram[0, 2] < gram[0, 1]


# --- the statistic ------------------------------------------------------------------------------------------


def mmd_by_pairs(grams: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """The package's estimate spelt out: mean kernel over within-prompt X pairs and Y pairs (i != j), minus twice
    the mean over within-prompt XY pairs."""
    sums = {"xx": 0.0, "yy": 0.0, "xy": 0.0}
    counts = dict.fromkeys(sums, 0)
    for gram, is_candidate in zip(grams, candidate, strict=True):
        for i, j in itertools.product(range(len(gram)), repeat=2):
            if i == j:
                continue
            kind = {(False, False): "xx", (True, True): "yy"}.get((is_candidate[i], is_candidate[j]), "xy")
            sums[kind] += gram[i, j]
            counts[kind] += 1
    within_sides = sum(sums[kind] / counts[kind] for kind in ("xx", "yy") if counts[kind])
    return within_sides - 2 * sums["xy"] / counts["xy"]


def random_gram(size: int, rng: np.random.Generator) -> np.ndarray:
    points = rng.normal(size=(size, 3))
    return np.exp(-((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))


@pytest.mark.parametrize("seed", range(5))
def test_statistic_matches_its_definition_with_uneven_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [(int(r) + 1, int(c)) for r, c in rng.integers(1, 5, size=(6, 2))]  # reference >= 2, uneven
    grams = [random_gram(r + c, rng) for r, c in sizes]
    candidate = [np.arange(r + c) >= r for r, c in sizes]
    stacked, present = mmd.stack_grams(grams)
    labels = np.zeros_like(present)
    for row, is_candidate in enumerate(candidate):
        labels[row, : len(is_candidate)] = is_candidate
    ours = mmd.mmd_statistics(stacked, labels[None], present)[0]
    assert ours == pytest.approx(mmd_by_pairs(grams, candidate), rel=1e-12, abs=1e-12)


def test_permuted_labels_keep_each_prompts_counts_and_skip_padding() -> None:
    rng = np.random.default_rng(0)
    present = np.array([[True] * 6, [True] * 4 + [False] * 2])
    candidate = np.array([[False] * 4 + [True] * 2, [False, False, True, False, False, False]])
    labels = mmd.permuted_labels(candidate, present, 500, rng)
    assert (labels.sum(axis=2) == [2, 1]).all()
    assert not labels[:, ~present].any()
    assert len({tuple(row) for row in labels[:, 0]}) == math.comb(6, 2)  # every labelling of 6 choose 2 is drawn


# --- the test -----------------------------------------------------------------------------------------------


def simulated_p_values(shift: float, experiments: int, prompts: int = 10, permutations: int = 200) -> np.ndarray:
    """Per prompt, 4 reference and 2 candidate points on a line under a Gaussian kernel, the candidate's moved by
    `shift`: at 0 the two sides are exchangeable, so p-values must be (super-)uniform."""
    rng = np.random.default_rng(1)
    p_values = []
    for _ in range(experiments):
        points = rng.normal(size=(prompts, 6, 1))
        points[:, 4:, 0] += shift
        grams = np.exp(-((points[:, :, None, :] - points[:, None, :, :]) ** 2).sum(axis=3))
        grams[:, np.arange(6), np.arange(6)] = 0.0
        labels = np.broadcast_to(np.arange(6) >= 4, (prompts, 6))
        p_values.append(mmd.permutation_test(grams, labels, np.ones_like(labels), permutations, rng).p_value)
    return np.array(p_values)


def test_same_distribution_rejects_at_most_alpha() -> None:
    p_values = simulated_p_values(shift=0.0, experiments=400)
    standard_error = math.sqrt(ALPHA * (1 - ALPHA) / len(p_values))
    assert np.mean(p_values < ALPHA) <= ALPHA + 3 * standard_error
    assert np.mean(p_values < 0.5) == pytest.approx(0.5, abs=0.1)  # not conservative to the point of uselessness


def test_a_shifted_candidate_is_detected() -> None:
    assert np.mean(simulated_p_values(shift=2.5, experiments=50) < ALPHA) >= 0.9


def test_p_value_is_a_permutation_p_value() -> None:
    rng = np.random.default_rng(0)
    gram = random_gram(4, rng)[None]
    labels = np.array([[False, False, True, True]])
    result = mmd.permutation_test(gram, labels, np.ones_like(labels), permutations=99, rng=rng)
    assert 1 / 100 <= result.p_value <= 1.0
    assert (result.p_value * 100) == pytest.approx(round(result.p_value * 100))


def test_permutations_resolve_well_below_alpha() -> None:
    assert mmd.permutations_for(0.05) == mmd.PERMUTATIONS
    assert mmd.permutations_for(0.001) == 20_000
    assert 1 / (1 + mmd.permutations_for(0.001)) < 0.001 / 10


def texts(prefix: str, count: int) -> list[str]:
    return [f"{prefix} answer number {i}, with the same few words as the others." for i in range(count)]


def test_identical_responses_are_consistent_with_p_one() -> None:
    same = [["The capital of France is Paris."] * 3 for _ in range(12)]
    result = mmd_permutation_test(same, [s[:1] for s in same], ALPHA, min_prompts=10)
    assert (result.test, result.verdict, result.p_value) == (MMD, CONSISTENT, 1.0)


def test_different_responses_are_inconsistent() -> None:
    reference = [texts(f"Prompt {i}: a long", 4) for i in range(12)]
    candidate = [["no"] * 2 for _ in range(12)]
    result = mmd_permutation_test(reference, candidate, ALPHA, min_prompts=10)
    assert result.verdict == INCONSISTENT
    assert result.p_value < ALPHA and result.effect_size > 3


def test_too_few_prompts_is_incomplete() -> None:
    result = mmd_permutation_test([["a", "b"]] * 3, [["a"]] * 3, ALPHA, min_prompts=10)
    assert result.verdict == INCOMPLETE and "only 3 prompts" in result.note


def test_compare_with_the_mmd_gate_records_it_in_the_signature() -> None:
    prompts = [Prompt(f"p{i}", f"question {i}") for i in range(12)]
    reference = {p.id: texts(p.id, 4) for p in prompts}
    candidate = {p.id: ["short"] * 2 for p in prompts}
    model = BundledModel.load()
    result = compare(reference, candidate, prompts, model, samples=2, settings=GateSettings(test=MMD_TEST))
    assert result.model_wise.test == MMD and result.verdict == INCONSISTENT
    assert result.signature.startswith("test:mmd[5-spectrum,L1000,permutations:1000,seed:0]|alpha:0.05|")
    assert len(result.prompts) == 12  # the response-wise scores are still the classifier's
