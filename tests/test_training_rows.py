"""Training rows: each prompt gives SAMPLED_DRAWS rounds of splits, and a split never reuses a sample."""

from __future__ import annotations

import random

import numpy as np

from simct_ci.features import FEATURE_NAMES
from simct_ci.training.dataset import SAMPLED_DRAWS, PromptResponses, PromptRows, _null_rows_per_prompt, sampled_rows
from simct_ci.training.deployments import REFERENCE

CHANGES = ("quant-q4_0", "top-p-0.8")


def prompt() -> PromptResponses:
    responses = {REFERENCE: [f"Reference answer number {i} about rivers." for i in range(15)]}
    responses |= {change: [f"{change} answer {i} about lakes." for i in range(5)] for change in CHANGES}
    return PromptResponses("p1", "g1", "train", False, "en", responses)


def test_each_k_gives_every_round_of_same_deployment_and_changed_rows() -> None:
    rows = PromptRows(prompt())
    for k in (1, 2, 3):
        built = list(sampled_rows(rows, k, random.Random(0), CHANGES))
        null = [row for row in built if row.change == REFERENCE]
        assert len(null) == SAMPLED_DRAWS * _null_rows_per_prompt(k)
        assert all(row.label == 0 and row.samples == k for row in null)
        for change in CHANGES:
            changed = [row for row in built if row.change == change]
            assert len(changed) == SAMPLED_DRAWS and all(row.label == 1 for row in changed)


def test_a_same_deployment_split_never_puts_one_sample_on_both_sides() -> None:
    """Distinct reference texts: a sample on both sides would show as an exact match across the split."""
    exact = FEATURE_NAMES.index("cross_exact_match")
    rows = PromptRows(prompt())
    null = [row for row in sampled_rows(rows, 3, random.Random(1), CHANGES) if row.change == REFERENCE]
    assert np.all([row.features[exact] == 0.0 for row in null])
    rounds = {tuple(row.features) for row in null}
    assert len(rounds) == len(null)  # every round draws anew
