"""The bundled LightGBM classifier: a readable text model plus a JSON model card, checked before use.

The card records the feature list the model was trained on, the sha256 of the model file, the decision
threshold and the null score means used by the one-sample test. Loading refuses a model whose file does not
match its card, or whose features are not the ones this code computes, instead of scoring nonsense.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simct_ci.errors import ModelFileError
from simct_ci.features import FEATURE_NAMES, FEATURE_SET
from simct_ci.verdicts import ModelInfo

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
MODEL_FILE = "simct-lgbm.txt"
CARD_FILE = "simct-lgbm.card.json"


@dataclass(frozen=True)
class ModelCard:
    """The card's fields the product relies on; the rest of the card (data, metrics) is for people."""

    version: str
    model_sha256: str
    features: tuple[str, ...]
    feature_set: str
    threshold: float
    null_mean: dict[str, float]  # decoding ("sampled" | "greedy") -> mean same-deployment score at k = 1
    # paired-test component -> its spread over same-deployment splits in training: the combined test's scale
    component_scales: dict[str, float]
    raw: dict[str, Any]

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.version, self.model_sha256, self.feature_set)


def read_card(directory: Path = BUNDLED_DIR) -> ModelCard:
    """Read and check the card and the model file's hash, without importing LightGBM (fast, done at start)."""
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    raw = _read_json(card_path)
    try:
        card = ModelCard(
            version=str(raw["version"]),
            model_sha256=str(raw["model_sha256"]),
            features=tuple(raw["features"]),
            feature_set=str(raw["feature_set"]),
            threshold=float(raw["threshold"]),
            null_mean=_numbers(raw, "null_mean"),
            component_scales=_numbers(raw, "component_scales"),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{card_path}: model card lacks or mistypes {error}") from None
    scales = card.component_scales
    if not scales or not all(0 < scale < math.inf for scale in scales.values()):  # weights are 1 / scale
        raise ModelFileError(f"{card_path}: model card's component_scales must be positive numbers, got {scales}")
    if card.features != FEATURE_NAMES or card.feature_set != FEATURE_SET:
        raise ModelFileError(
            f"{card_path}: model was trained on feature set {card.feature_set!r}, this code computes "
            f"{FEATURE_SET!r} ({len(FEATURE_NAMES)} features); retrain or reinstall simct-action"
        )
    actual = _sha256(model_path)
    if actual != card.model_sha256:
        raise ModelFileError(f"{model_path}: sha256 {actual[:12]}… does not match its card; the file is corrupted")
    return card


def _numbers(raw: dict[str, Any], key: str) -> dict[str, float]:
    """The card's object of numbers under `key`; an error names the key (as a missing key's KeyError does)."""
    try:
        return {str(k): float(v) for k, v in raw[key].items()}
    except (AttributeError, TypeError, ValueError):
        raise TypeError(repr(key)) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: bundled model card is missing; reinstall simct-action") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: unreadable model card ({error})") from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path}: model card must be a JSON object")
    return raw


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ModelFileError(f"{path}: bundled model is missing or unreadable ({error.strerror})") from None


class BundledModel:
    """Scores FEATURE_NAMES rows: the probability that the candidate comes from another deployment."""

    def __init__(self, card: ModelCard, directory: Path = BUNDLED_DIR) -> None:
        import lightgbm  # imported here: start-up does not pay for it before the first request

        self.card = card
        try:
            self._booster = lightgbm.Booster(model_file=str(directory / MODEL_FILE))
        except lightgbm.basic.LightGBMError as error:
            raise ModelFileError(f"{directory / MODEL_FILE}: not a LightGBM model ({error})") from None
        if tuple(self._booster.feature_name()) != FEATURE_NAMES:
            raise ModelFileError(f"{directory / MODEL_FILE}: its features differ from its card's")

    @classmethod
    def load(cls, directory: Path = BUNDLED_DIR) -> BundledModel:
        return cls(read_card(directory), directory)

    @property
    def info(self) -> ModelInfo:
        return self.card.info

    def score(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0)
        return np.asarray(self._booster.predict(rows, num_threads=1), dtype=float)
