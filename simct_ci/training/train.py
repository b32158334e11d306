"""Train the bundled LightGBM model from the committed dataset and write it with its model card.

Run: python -m simct_ci.training.train   (reads data/dataset/, writes simct_ci/bundled/)
Prompts are split by group (a prompt and its translation stay together); the eval split is never trained on.
Held-out metrics are printed per kind of change, on eval prompts, for:
- the bundled model (unseen prompts), and
- leave-one-change-out models (unseen prompts AND an unseen kind of change).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from simct_ci.compare import same_deployment_spread
from simct_ci.features import FEATURE_NAMES, FEATURE_SET
from simct_ci.model import BUNDLED_DIR, CARD_FILE, MODEL_FILE
from simct_ci.training.dataset import (
    ALL_CHANGES,
    PACKED,
    PromptResponses,
    Row,
    build_rows,
    counts,
    file_sha256,
    load_prompts,
)
from simct_ci.training.deployments import CORE_REFERENCE_SAMPLES, REFERENCE

# 1.1: the card carries the combined test's component scales; 1.2: 175 prompts;
# 1.3: more prompts, and 3 rounds of splits per prompt (dataset.SAMPLED_DRAWS); 1.4: monotone constraints
MODEL_VERSION = "1.4.0"
PROMPT_FALSE_ALARM = 0.05  # response-wise: share of same-deployment prompts flagged inconsistent
SAMPLES = 3  # the default samples per prompt, the setting the response-wise threshold is set for
SCALE_SPLITS_PER_PROMPT = 5


def monotone_constraints(names: Sequence[str]) -> list[int]:
    """What the classifier may never learn backwards, so that it generalises to kinds of change it never saw:
    more likeness to the reference (cross_*), or to the natural spread (gap_*), never raises the score, and a
    larger shift in length, repetition or layout (*_abs_shift) never lowers it. Everything else is free."""
    return [-1 if name.startswith(("cross_", "gap_")) else 1 if name.endswith("_abs_shift") else 0 for name in names]


PARAMS = {
    "objective": "binary",
    "monotone_constraints": monotone_constraints(FEATURE_NAMES),
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
NUM_ROUNDS = 400
METRICS_RULE = (
    "per training-style row: k reference against k other samples, one split each, scored by the model; "
    "held_out_prompts_and_change by a model trained without that change. The product's per-prompt score "
    "averages over every anchor choice of a 2k-sample reference: its AUROCs are in docs/engine-benchmark.md"
)


def _matrix(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = np.vstack([r.features for r in rows])
    labels = np.array([r.label for r in rows])
    # Balance classes within each (samples, decoding) stratum, so no setting dominates the fit.
    weights = np.ones(len(rows))
    for stratum in {(r.samples, r.decoding) for r in rows}:
        members = np.array([(r.samples, r.decoding) == stratum for r in rows])
        for label in (0, 1):
            chosen = members & (labels == label)
            if chosen.any():
                weights[chosen] = members.sum() / (2 * chosen.sum())
    return features, labels, weights


def fit(rows: Sequence[Row]):
    import lightgbm

    features, labels, weights = _matrix(rows)
    data = lightgbm.Dataset(features, labels, weight=weights, feature_name=list(FEATURE_NAMES), free_raw_data=False)
    return lightgbm.train(PARAMS, data, num_boost_round=NUM_ROUNDS)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a changed-deployment score exceeds a same-deployment one (Mann-Whitney U / n1 n2)."""
    from scipy.stats import mannwhitneyu

    if not len(positive) or not len(negative):
        return float("nan")
    return float(mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative)))


def classification_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    true_pos = int((predicted & (labels == 1)).sum())
    precision = true_pos / max(int(predicted.sum()), 1)
    recall = true_pos / max(int((labels == 1).sum()), 1)
    return {
        "auroc": round(auroc(scores[labels == 1], scores[labels == 0]), 4),
        "accuracy": round(float((predicted == (labels == 1)).mean()), 4),
        "f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
        "n": len(labels),
    }


def per_change_metrics(booster, rows: Sequence[Row], changes: Iterable[str], threshold: float) -> dict[str, dict]:
    """Each change against the same-deployment rows of the same setting, on held-out prompts."""
    scores = booster.predict(np.vstack([r.features for r in rows]))
    table: dict[str, dict] = {}
    for setting in ((3, "sampled"), (1, "sampled"), (1, "greedy")):
        in_setting = [i for i, r in enumerate(rows) if (r.samples, r.decoding) == setting]
        null = [i for i in in_setting if rows[i].change == REFERENCE]
        for change in changes:
            changed = [i for i in in_setting if rows[i].change == change]
            if not changed:
                continue
            chosen = np.array(null + changed)
            labels = np.array([rows[i].label for i in chosen])
            table[f"{change} k={setting[0]} {setting[1]}"] = classification_metrics(scores[chosen], labels, threshold)
    return table


def out_of_fold_null_scores(rows: Sequence[Row], folds: int = 5) -> dict[tuple[int, str], list[float]]:
    """Scores of same-deployment rows on prompt groups the model did not see, by (samples, decoding)."""
    groups = sorted({r.group for r in rows})
    collected: dict[tuple[int, str], list[float]] = {}
    for fold in range(folds):
        held = {g for i, g in enumerate(groups) if i % folds == fold}
        if not held or held == set(groups):
            continue
        booster = fit([r for r in rows if r.group not in held])
        null = [r for r in rows if r.group in held and r.change == REFERENCE]
        for row, score in zip(null, booster.predict(np.vstack([r.features for r in null])), strict=True):
            collected.setdefault((row.samples, row.decoding), []).append(float(score))
    return collected


def null_means(scores: dict[tuple[int, str], list[float]]) -> dict[str, float]:
    """The one-sample test's null: mean same-deployment score at one sample per side."""
    return {decoding: round(float(np.mean(scores[(1, decoding)])), 6) for decoding in ("sampled", "greedy")}


def response_threshold(scores: dict[tuple[int, str], list[float]]) -> float:
    """Flag a prompt when its score exceeds 95% of same-deployment prompts: a 5% per-prompt false alarm rate."""
    return round(float(np.quantile(scores[(SAMPLES, "sampled")], 1 - PROMPT_FALSE_ALARM)), 6)


class _Scorer:
    """A booster behind the `.score` that compare.py calls on the bundled model."""

    def __init__(self, booster) -> None:
        self.score = booster.predict


def component_scales(prompts: Sequence[PromptResponses], booster, seed: int = 0) -> dict[str, float]:
    """The combined test's scales: each component's spread over same-deployment splits of the train prompts, in
    the product's default protocol (a 6-sample reference, 3 candidate samples). Only power depends on them: the
    combined test is calibrated whatever they are."""
    rng = random.Random(seed)
    splits = []
    for prompt in prompts:
        for _ in range(SCALE_SPLITS_PER_PROMPT):
            drawn = rng.sample(prompt.responses[REFERENCE][:CORE_REFERENCE_SAMPLES], 3 * SAMPLES)
            splits.append((drawn[: 2 * SAMPLES], drawn[2 * SAMPLES :], prompt.closed))
    spread = same_deployment_spread(splits, _Scorer(booster))
    return {name: round(value, 6) for name, value in spread.items()}


def leave_one_change_out(train_rows: Sequence[Row], held_out_rows: Sequence[Row], threshold: float) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for change in ALL_CHANGES:
        booster = fit([r for r in train_rows if r.change != change])
        rows = [r for r in held_out_rows if r.change in (change, REFERENCE)]
        table.update(per_change_metrics(booster, rows, [change], threshold))
    return table


def write_bundle(booster, card: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model_text = booster.model_to_string()
    (directory / MODEL_FILE).write_text(model_text, encoding="utf-8")
    card["model_sha256"] = hashlib.sha256(model_text.encode()).hexdigest()
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR)
    parser.add_argument("--skip-loco", action="store_true", help="skip the leave-one-change-out evaluation")
    args = parser.parse_args()
    prompts = load_prompts()
    train = [p for p in prompts if p.split == "train"]
    held_out = [p for p in prompts if p.split == "eval"]
    print(f"{len(prompts)} complete prompts: {counts(prompts)}")
    train_rows = build_rows(train, ALL_CHANGES)
    held_out_rows = build_rows(held_out, ALL_CHANGES, seed=1)
    booster = fit(train_rows)
    null_scores = out_of_fold_null_scores(train_rows)
    threshold = response_threshold(null_scores)
    held_out_metrics = per_change_metrics(booster, held_out_rows, ALL_CHANGES, threshold)
    loco = {} if args.skip_loco else leave_one_change_out(train_rows, held_out_rows, threshold)
    card = {
        "name": "simct-lgbm",
        "version": MODEL_VERSION,
        "created": dt.date.today().isoformat(),
        "feature_set": FEATURE_SET,
        "features": list(FEATURE_NAMES),
        "threshold": threshold,
        "threshold_rule": f"{1 - PROMPT_FALSE_ALARM:.0%} quantile of out-of-fold same-deployment scores, "
        f"{SAMPLES} samples per side, sampled decoding",
        "null_mean": null_means(null_scores),
        "component_scales": component_scales(train, booster),
        "component_scales_rule": f"sd of each paired component over {SCALE_SPLITS_PER_PROMPT} same-deployment "
        f"splits (6 reference, 3 candidate) of every train prompt, scored by this model",
        "model_sha256": "",
        "training_data": {
            "file": str(PACKED),
            "sha256": file_sha256([PACKED]) if PACKED.exists() else None,
            "prompts": counts(prompts),
            "train_rows": len(train_rows),
            "changes": list(ALL_CHANGES),
            "split": "grouped by prompt group (a prompt and its translation together), crc32 % 100 < 40 -> eval",
        },
        "params": PARAMS,
        "num_boost_round": NUM_ROUNDS,
        "metrics": {"held_out_prompts": held_out_metrics, "held_out_prompts_and_change": loco},
        "metrics_rule": METRICS_RULE,
        "omitted": {
            "meteor": "needs WordNet data, which cannot be downloaded at run time; chrF and ROUGE cover its role",
            "embedding_similarity": "no embedding model ships inside a PyPI package the Action may use",
        },
        "versions": {name: package_version(name) for name in ("lightgbm", "numpy", "sacrebleu", "rapidfuzz")},
    }
    write_bundle(booster, card, args.out)
    for name, table in (("held-out prompts", held_out_metrics), ("held-out prompts and change", loco)):
        print(f"\n{name}:")
        for key, metrics in table.items():
            print(
                f"  {key:40s} auroc {metrics['auroc']:.3f}  acc {metrics['accuracy']:.3f}  "
                f"f1 {metrics['f1']:.3f}  n {metrics['n']}"
            )


if __name__ == "__main__":
    main()
