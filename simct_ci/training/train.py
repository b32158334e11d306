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
from collections.abc import Iterable, Sequence
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

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
from simct_ci.training.deployments import REFERENCE

MODEL_VERSION = "1.0.0"
THRESHOLD = 0.5  # classes are balanced by weight, so 0.5 is the point of equal odds
PARAMS = {
    "objective": "binary",
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


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = scores >= THRESHOLD
    true_pos = int((predicted & (labels == 1)).sum())
    precision = true_pos / max(int(predicted.sum()), 1)
    recall = true_pos / max(int((labels == 1).sum()), 1)
    return {
        "auroc": round(auroc(scores[labels == 1], scores[labels == 0]), 4),
        "accuracy": round(float((predicted == (labels == 1)).mean()), 4),
        "f1": round(2 * precision * recall / (precision + recall) if precision + recall else 0.0, 4),
        "n": len(labels),
    }


def per_change_metrics(booster, rows: Sequence[Row], changes: Iterable[str]) -> dict[str, dict]:
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
            table[f"{change} k={setting[0]} {setting[1]}"] = classification_metrics(scores[chosen], labels)
    return table


def out_of_fold_null_means(prompts: Sequence[PromptResponses], folds: int = 5) -> dict[str, float]:
    """Mean score of same-deployment pairs (k = 1) on prompts the model did not see: the one-sample test's null."""
    groups = sorted({p.group for p in prompts})
    collected: dict[str, list[float]] = {"sampled": [], "greedy": []}
    for fold in range(folds):
        held = {g for i, g in enumerate(groups) if i % folds == fold}
        if not held or held == set(groups):
            continue
        booster = fit(build_rows([p for p in prompts if p.group not in held], ALL_CHANGES))
        rows = [
            r
            for r in build_rows([p for p in prompts if p.group in held], ALL_CHANGES)
            if r.samples == 1 and r.change == REFERENCE
        ]
        for row, score in zip(rows, booster.predict(np.vstack([r.features for r in rows])), strict=True):
            collected[row.decoding].append(float(score))
    return {decoding: round(float(np.mean(values)), 6) for decoding, values in collected.items()}


def leave_one_change_out(train: Sequence[PromptResponses], held_out: Sequence[PromptResponses]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for change in ALL_CHANGES:
        booster = fit(build_rows(train, [c for c in ALL_CHANGES if c != change]))
        table.update(per_change_metrics(booster, build_rows(held_out, [change], seed=1), [change]))
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
    booster = fit(train_rows)
    held_out_metrics = per_change_metrics(booster, build_rows(held_out, ALL_CHANGES, seed=1), ALL_CHANGES)
    loco = {} if args.skip_loco else leave_one_change_out(train, held_out)
    card = {
        "name": "simct-lgbm",
        "version": MODEL_VERSION,
        "created": dt.date.today().isoformat(),
        "feature_set": FEATURE_SET,
        "features": list(FEATURE_NAMES),
        "threshold": THRESHOLD,
        "null_mean": out_of_fold_null_means(train),
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
