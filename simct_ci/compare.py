"""The engine's one entry point: compare a candidate stage's responses with the reference stage's.

responses -> features (features.py) -> response-wise scores (model.py) -> model-wise test (stats.py).

The paired statistic, per prompt: the reference's samples are split into an anchor set A and a held-back
set B (m samples each), and m candidate samples C are drawn; the classifier scores (A vs C), the cross-stage
pair, and (A vs B), a same-deployment pair. Their difference, averaged over every such choice, is the
prompt's statistic. When the candidate is the same deployment, C and B are exchangeable given A, so the
statistic has mean exactly zero and the t-test over prompts is calibrated whatever the classifier learned;
and both pairs look like the classifier's training rows (k reference vs k other samples), so it has power.
This is why the reference stage is queried for 2 x samples responses per prompt.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from simct_ci import __version__, mmd
from simct_ci.features import FEATURE_NAMES, FEATURE_SET, PromptPool, split_features, split_features_batch
from simct_ci.model import BundledModel
from simct_ci.protocol import reference_samples
from simct_ci.responses import CLOSED, Prompt
from simct_ci.sequential import nominal_alphas
from simct_ci.stats import (
    MMD,
    ONE_SAMPLE_T,
    PAIRED_T,
    combined_t_test,
    equivalence_p_value,
    mmd_permutation_test,
    union_test,
)
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT, Comparison, ModelWiseResult, PromptScore

LENGTH_FEATURE = "cross_length_ratio"  # shorter / longer response length of a pair, averaged over its pairs
MAX_CHOICES = 256  # every (A, B, C) choice up to 10 reference samples; a fixed random subset beyond


T_TEST, MMD_TEST = "t", "mmd"
TESTS = (T_TEST, MMD_TEST)
DIFFERENCE, EQUIVALENCE = "difference", "equivalence"
MODES = (DIFFERENCE, EQUIVALENCE)
CLASSIFIER, LENGTH, DIVERSITY = "classifier", "length", "diversity"
DIVERSITY_METRICS = ("chrf", "bleu", "rougeL", "edit_sim")  # how alike a set's samples are: their mean
LIKENESS_COLUMNS = [FEATURE_NAMES.index(f"within_cand_{metric}") for metric in DIVERSITY_METRICS]
REPETITION_COLUMN = FEATURE_NAMES.index("repetition_cand")  # share of a response's word bigrams seen before in it
DIVERSITY_SHARE = 0.2  # of alpha, for the two-sided diversity test; the combined shift test keeps the rest


@dataclass(frozen=True)
class GateSettings:
    test: str = T_TEST  # MMD_TEST: the MMD two-sample test on the responses decides the model-wise verdict
    alpha: float = 0.05
    min_prompts: int = 10
    max_missing_ratio: float = 0.2  # more prompts than this without responses: incomplete, never consistent
    mode: str = DIFFERENCE  # EQUIVALENCE: "consistent" needs every component shown within `margin`
    margin: float = 0.05  # largest mean shift of each component that still counts as consistent
    look_fractions: tuple[float, ...] = ()  # sequential mode: the share of prompts in hand at each look so far
    spending: str = ""  # sequential mode: the alpha-spending function (sequential.py)


@dataclass(frozen=True)
class _Pool:
    """One prompt's responses, reference first, and the set size m the paired statistic compares.

    Only texts are held: the similarity pool is built when the prompt is scored and dropped right after, so
    memory stays flat however many prompts a run has.
    """

    texts: tuple[str, ...]
    closed: bool
    n_reference: int
    set_size: int  # m: 0 when the reference has a single sample (one-sample mode)

    @property
    def candidate_indices(self) -> range:
        return range(self.n_reference, len(self.texts))


def signature(
    test: str, components: Sequence[str], settings: GateSettings, samples: int, set_size: int, model: BundledModel
) -> str:
    """Every setting that decides the result, sacrebleu-style, so a verdict can be reproduced.

    The features and the model are recorded with the MMD test too: they still give the per-prompt scores.
    """
    mode = f"{EQUIVALENCE}:{settings.margin:g}" if settings.mode == EQUIVALENCE else DIFFERENCE
    fractions = settings.look_fractions
    look = f"|look:{len(fractions)}@{fractions[-1]:.2f},{settings.spending}" if fractions else ""
    terms = _mmd_terms(settings.alpha) if test == MMD else _terms(components, model)
    return (
        f"test:{test}[{terms}]|alpha:{settings.alpha:g}|mode:{mode}{look}|samples:{samples}"
        f"|sets:{set_size}v{set_size}|features:{FEATURE_SET}|model:{model.info.short}|simct:{__version__}"
    )


def _mmd_terms(alpha: float) -> str:
    return f"{mmd.KERNEL},L{mmd.MMD_LENGTH},permutations:{mmd.permutations_for(alpha)},seed:{mmd.SEED}"


def _terms(components: Sequence[str], model: BundledModel) -> str:
    """The combined statistic as written: each component over its scale from the model card."""
    scales = model.card.component_scales
    shift = "+".join(f"{name}/{scales[name]:g}" if name in scales else name for name in components if name != DIVERSITY)
    return f"{shift},{DIVERSITY}:two-sided@{DIVERSITY_SHARE:g}" if DIVERSITY in components else shift


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
    """Test `candidate` against `reference` (prompt id -> responses).

    Up to `samples` candidate and reference_samples(samples) reference responses per prompt are used.
    """
    pools, missing = _pools(reference, candidate, prompts, samples)
    paired = any(p.set_size for p in pools.values())
    if paired:  # prompts whose reference has a single sample cannot take part in the paired test
        missing += [pid for pid, p in pools.items() if not p.set_size]
        pools = {pid: p for pid, p in pools.items() if p.set_size}
    test = PAIRED_T if paired else ONE_SAMPLE_T
    cross, components = _scores(pools, model, paired)
    if not paired:  # no held-back reference sample: only the classifier, against its training null
        null = model.card.null_mean["greedy" if greedy else "sampled"]
        components = {CLASSIFIER: [score - null for score in cross]}
    threshold = model.card.threshold
    scores = tuple(
        PromptScore(pid, s, bool(s >= threshold), d if paired else None)
        for pid, s, d in zip(pools, cross, components[CLASSIFIER], strict=True)
    )
    if settings.test == MMD_TEST:
        test = MMD
        result = mmd_permutation_test(*_sides(pools), settings.alpha, settings.min_prompts)
    else:
        weights = {name: 1.0 / scale for name, scale in model.card.component_scales.items()}
        result = model_wise(components, weights, test, settings)
    result = _incomplete_if_too_much_missing(result, len(missing), len(prompts), settings)
    set_size = max((p.set_size for p in pools.values()), default=1) or 1
    return Comparison(
        names[0],
        names[1],
        samples,
        scores,
        result,
        tuple(sorted(missing)),
        signature(test, tuple(components), settings, samples, set_size, model),
    )


def model_wise(
    components: Mapping[str, Sequence[float]], weights: Mapping[str, float], test: str, settings: GateSettings
) -> ModelWiseResult:
    """The stage's verdict from its per-prompt component statistics.

    Difference mode: inconsistent when the weighted sum of the shift components (classifier, length) is shown to
    be above zero (one one-sided t-test, stats.combined_t_test), or the diversity is shown to differ from zero
    (two-sided), alpha split between the two (stats.union_test). Equivalence mode adds the other side: consistent
    exactly when every
    component's mean shift is shown to be below the margin (an intersection-union test, each at alpha), even if
    a smaller shift is detected: the margin is the shift that still counts as consistent. Otherwise a detected
    shift is inconsistent, and no evidence either way is incomplete.
    """
    result = _difference_test(components, weights, test, settings)
    if settings.mode != EQUIVALENCE or result.verdict == INCOMPLETE:
        return result
    shown = {name: _equivalence_p_value(name, values, settings.margin) for name, values in components.items()}
    weakest, p_value = max(shown.items(), key=lambda item: item[1])
    if p_value < settings.alpha:
        note = f"every shift shown below the margin {settings.margin:g} (largest equivalence p = {p_value:.3g})"
        if result.verdict == INCONSISTENT:  # a shift is found, but it is within the margin
            note = f"a shift is found, but {note}, so it counts as consistent"
            return replace(result, verdict=CONSISTENT, note=_join_note(result.note, note))
        return replace(result, note=_join_note(result.note, note))
    if result.verdict == INCONSISTENT:
        return result
    note = (
        f"no difference found, but {weakest} is not shown within the margin {settings.margin:g} "
        f"(equivalence p = {p_value:.3g} >= alpha); more prompts or samples give the evidence"
    )
    return replace(result, verdict=INCOMPLETE, note=_join_note(result.note, note))


def _difference_test(
    components: Mapping[str, Sequence[float]], weights: Mapping[str, float], test: str, settings: GateSettings
) -> ModelWiseResult:
    """The combined one-sided test of the shift components, joined by the two-sided diversity test when the
    components include it (stats.union_test), alpha split between them."""
    shift = {name: values for name, values in components.items() if name != DIVERSITY}
    if DIVERSITY not in components:
        return combined_t_test(shift, weights, settings.alpha, test, settings.min_prompts, _nominal(settings))
    shares = (settings.alpha * (1 - DIVERSITY_SHARE), settings.alpha * DIVERSITY_SHARE)
    shift_threshold, diversity_threshold = (_nominal(settings, share) or share for share in shares)
    result = combined_t_test(shift, weights, settings.alpha, test, settings.min_prompts)
    thresholds = (shift_threshold, diversity_threshold)
    return union_test(result, components[DIVERSITY], DIVERSITY_SHARE, thresholds, settings.min_prompts)


def _equivalence_p_value(name: str, values: Sequence[float], margin: float) -> float:
    """Shown below the margin; for the diversity, which may move either way, shown within +-margin (TOST)."""
    upper = equivalence_p_value(values, margin)
    if name != DIVERSITY:
        return upper
    return max(upper, equivalence_p_value([-value for value in values], margin))


def _nominal(settings: GateSettings, alpha: float | None = None) -> float | None:
    """At a sequential look, the threshold that spends `alpha` (all of it by default) over the looks."""
    if not settings.look_fractions:
        return None
    return nominal_alphas(alpha or settings.alpha, settings.look_fractions, settings.spending)[-1]


def _join_note(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second


def _pools(
    reference: Mapping[str, Sequence[str]],
    candidate: Mapping[str, Sequence[str]],
    prompts: Sequence[Prompt],
    samples: int,
) -> tuple[dict[str, _Pool], list[str]]:
    """Pool each prompt's responses, reference first; prompts lacking a side are missing, never consistent."""
    pools: dict[str, _Pool] = {}
    missing: list[str] = []
    for prompt in prompts:
        ref = list(reference.get(prompt.id, ()))[: reference_samples(samples)]
        cand = list(candidate.get(prompt.id, ()))[:samples]
        if not ref or not cand:
            missing.append(prompt.id)
            continue
        pools[prompt.id] = _Pool((*ref, *cand), prompt.type == CLOSED, len(ref), min(len(ref) // 2, len(cand)))
    return pools, missing


def _sides(pools: Mapping[str, _Pool]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Each prompt's reference responses and candidate responses, in prompt order."""
    reference = [pool.texts[: pool.n_reference] for pool in pools.values()]
    candidate = [pool.texts[pool.n_reference :] for pool in pools.values()]
    return reference, candidate


def _choices(pool: _Pool, seed: int) -> list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(anchor A, held-back B, candidate C) index sets: all of them when affordable, else a fixed random subset."""
    m, reference = pool.set_size, range(pool.n_reference)
    everything = (
        (a, b, c)
        for a in itertools.combinations(reference, m)
        for b in itertools.combinations([i for i in reference if i not in a], m)
        for c in itertools.combinations(pool.candidate_indices, m)
    )
    count = (
        math.comb(pool.n_reference, m) * math.comb(pool.n_reference - m, m) * math.comb(len(pool.candidate_indices), m)
    )
    if count <= MAX_CHOICES:
        return list(everything)
    rng = random.Random(seed)
    chosen = []
    for _ in range(MAX_CHOICES):
        shuffled = rng.sample(reference, 2 * m)
        chosen.append((tuple(shuffled[:m]), tuple(shuffled[m:]), tuple(rng.sample(pool.candidate_indices, m))))
    return chosen


def _scores(
    pools: Mapping[str, _Pool], model: BundledModel, paired: bool
) -> tuple[list[float], dict[str, list[float]]]:
    """Per prompt: the mean cross-stage score and, paired, each component's excess over same-deployment pairs.

    CLASSIFIER is the classifier's score on (A, C) minus on (A, B). LENGTH is the length ratio's drop from
    (A, B) to (A, C): a classifier generalises to kinds of change it was trained on, and a change of length
    alone (halved max_tokens, a "be concise" prompt) is the most common one it may not weigh enough.

    All rows of all prompts go through the model in one call: LightGBM's per-call overhead dominates otherwise.
    """
    blocks: list[np.ndarray] = []
    spans: list[tuple[int, int, int]] = []  # per prompt: cross rows [start, middle), same-deployment [middle, end)
    start = 0
    for position, pool in enumerate(pools.values()):
        similarity = PromptPool.of(pool.texts, pool.closed)
        if paired:
            anchors, held_back, drawn = (np.array(side) for side in zip(*_choices(pool, seed=position), strict=True))
            blocks += [
                split_features_batch(similarity, anchors, drawn),
                split_features_batch(similarity, anchors, held_back),
            ]
            middle, end = start + len(anchors), start + 2 * len(anchors)
        else:
            blocks.append(split_features(similarity, range(pool.n_reference), pool.candidate_indices)[None, :])
            middle = end = start + 1
        spans.append((start, middle, end))
        start = end
    rows = np.vstack(blocks) if blocks else np.zeros((0, len(FEATURE_NAMES)))
    scores = model.score(rows) if blocks else np.zeros(0)
    lengths = rows[:, FEATURE_NAMES.index(LENGTH_FEATURE)]
    cross = [float(scores[start:middle].mean()) for start, middle, _ in spans]
    same = [float(scores[middle:end].mean()) if end > middle else 0.0 for _, middle, end in spans]
    length_drop = [-excess for excess in _cross_excess(lengths, spans)]
    components = {CLASSIFIER: [c - s for c, s in zip(cross, same, strict=True)], LENGTH: length_drop}
    if paired and all(pool.set_size >= 2 for pool in pools.values()):  # a single sample has no likeness
        components[DIVERSITY] = _cross_excess(concentration(rows), spans)
    return cross, components


def _cross_excess(values: np.ndarray, spans: Sequence[tuple[int, int, int]]) -> list[float]:
    """Per prompt, the mean of `values` on its cross-stage rows minus on its same-deployment rows."""
    return [float(values[start:middle].mean() - values[middle:end].mean()) for start, middle, end in spans]


def concentration(rows: np.ndarray) -> np.ndarray:
    """Per feature row, how narrow the second set's sampling looks: the mean of how alike its samples are among
    themselves (mean of DIVERSITY_METRICS) and how much each repeats itself (REPETITION_COLUMN).

    (A, C) rows give the candidate set's and (A, B) rows the held-back reference set's: under a same-deployment
    candidate B and C are exchangeable, so the DIVERSITY component has mean exactly zero. Both parts are
    properties of the set alone, so a candidate that replays the reference's own samples stays centred on zero
    too; likeness to the reference would not. Repetition joined the likeness in simct 0.2.0: on the train prompts it
    doubled the effect size of a temperature change and of a narrower top-p, and under a change of the sampler
    both parts move the same way.
    """
    return (rows[:, LIKENESS_COLUMNS].mean(axis=1) + rows[:, REPETITION_COLUMN]) / 2


def same_deployment_spread(splits: Sequence[tuple[Sequence[str], Sequence[str], bool]], model) -> dict[str, float]:
    """Each paired component's spread over same-deployment (reference, candidate, closed) splits: the scales the
    combined test divides by (measured in training, stored in the model card). `model` needs only `.score`."""
    pools = {
        str(i): _Pool((*ref, *cand), closed, len(ref), min(len(ref) // 2, len(cand)))
        for i, (ref, cand, closed) in enumerate(splits)
    }
    _, components = _scores(pools, model, paired=True)
    return {name: float(np.std(components[name], ddof=1)) for name in (CLASSIFIER, LENGTH)}  # the summed ones


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
