"""The engine's one entry point: compare a candidate stage's responses with the reference stage's.

responses -> features (features.py) -> response-wise scores (model.py) -> model-wise test (stats.py).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simct_ci import __version__
from simct_ci.features import FEATURE_SET, PromptPool, split_features
from simct_ci.model import BundledModel
from simct_ci.responses import CLOSED, Prompt
from simct_ci.stats import ONE_SAMPLE_T, PAIRED_T, t_test_greater
from simct_ci.verdicts import INCOMPLETE, Comparison, ModelWiseResult, PromptScore

MAX_SPLITS = 256  # every re-split up to 5 samples a side (252); a fixed random subset beyond


@dataclass(frozen=True)
class GateSettings:
    alpha: float = 0.05
    min_prompts: int = 10
    max_missing_ratio: float = 0.2  # more prompts than this without responses: incomplete, never consistent


def signature(test: str, settings: GateSettings, samples: int, model: BundledModel) -> str:
    """Every setting that decides the result, sacrebleu-style, so a verdict can be reproduced."""
    return (
        f"test:{test}|alpha:{settings.alpha:g}|samples:{samples}|features:{FEATURE_SET}"
        f"|model:{model.info.short}|simct:{__version__}"
    )


def compare(
    reference: Mapping[str, Sequence[str]],
    candidate: Mapping[str, Sequence[str]],
    prompts: Sequence[Prompt],
    model: BundledModel,
    *,
    samples: int,
    greedy: bool = False,
    settings: GateSettings = GateSettings(),
    names: tuple[str, str] = ("reference", "candidate"),
) -> Comparison:
    """Test `candidate` against `reference` (prompt id -> responses, at most `samples` of each are used)."""
    pools, missing = _pools(reference, candidate, prompts, samples)
    test = PAIRED_T if samples >= 2 else ONE_SAMPLE_T
    observed, centred = _scores(pools, model, paired=test == PAIRED_T)
    threshold = model.card.threshold
    scores = tuple(
        PromptScore(pid, float(p), bool(p >= threshold), None if c is None else float(c))
        for pid, p, c in zip(pools, observed, centred, strict=True)
    )
    if test == PAIRED_T:
        differences = [c for c in centred if c is not None]
    else:
        null = model.card.null_mean["greedy" if greedy else "sampled"]
        differences = [p - null for p in observed]
    result = t_test_greater(differences, settings.alpha, test, settings.min_prompts)
    result = _incomplete_if_too_much_missing(result, len(missing), len(prompts), settings)
    return Comparison(
        names[0], names[1], samples, scores, result, tuple(missing), signature(test, settings, samples, model)
    )


def _pools(
    reference: Mapping[str, Sequence[str]],
    candidate: Mapping[str, Sequence[str]],
    prompts: Sequence[Prompt],
    samples: int,
) -> tuple[dict[str, tuple[PromptPool, int]], list[str]]:
    """Pool each prompt's responses, reference first; prompts lacking a side are missing, never consistent."""
    pools: dict[str, tuple[PromptPool, int]] = {}
    missing: list[str] = []
    for prompt in prompts:
        ref = list(reference.get(prompt.id, ()))[:samples]
        cand = list(candidate.get(prompt.id, ()))[:samples]
        if not ref or not cand:
            missing.append(prompt.id)
            continue
        pools[prompt.id] = (PromptPool.of([*ref, *cand], closed=prompt.type == CLOSED), len(ref))
    return pools, missing


def _splits(size: int, n_reference: int, seed: int) -> list[tuple[int, ...]]:
    """Reference index sets of the re-splits: all of them when affordable, else a fixed random subset."""
    if math.comb(size, n_reference) <= MAX_SPLITS:
        return list(itertools.combinations(range(size), n_reference))
    rng = random.Random(seed)
    return [tuple(sorted(rng.sample(range(size), n_reference))) for _ in range(MAX_SPLITS)]


def _scores(
    pools: Mapping[str, tuple[PromptPool, int]], model: BundledModel, paired: bool
) -> tuple[list[float], list[float | None]]:
    """Observed-split score per prompt and, when paired, its excess over the mean of all re-splits.

    All rows of all prompts go through the model in one call: LightGBM's per-call overhead dominates otherwise.
    """
    rows: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    for position, (pool, n_ref) in enumerate(pools.values()):
        start = len(rows)
        observed_split = tuple(range(n_ref))
        rows.append(split_features(pool, observed_split, range(n_ref, pool.size)))
        if paired:
            for ref_indices in _splits(pool.size, n_ref, seed=position):
                cand_indices = [i for i in range(pool.size) if i not in ref_indices]
                rows.append(split_features(pool, ref_indices, cand_indices))
        spans.append((start, len(rows)))
    scores = model.score(np.vstack(rows)) if rows else np.zeros(0)
    observed = [float(scores[start]) for start, _ in spans]
    centred: list[float | None] = [
        float(scores[start] - scores[start + 1 : end].mean()) if paired else None for start, end in spans
    ]
    return observed, centred


def _incomplete_if_too_much_missing(
    result: ModelWiseResult, n_missing: int, n_prompts: int, settings: GateSettings
) -> ModelWiseResult:
    if n_prompts == 0 or n_missing / n_prompts <= settings.max_missing_ratio:
        return result
    reason = (
        f"{n_missing} of {n_prompts} prompts lack responses on one side, more than "
        f"{settings.max_missing_ratio:.0%}; the stage cannot be called consistent"
    )
    return ModelWiseResult(
        result.test,
        result.statistic,
        result.p_value,
        result.effect_size,
        result.alpha,
        result.n_prompts,
        INCOMPLETE,
        reason,
    )
