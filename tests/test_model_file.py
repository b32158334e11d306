"""The bundled model loads without training, and a broken one is refused with a clear error."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from simct_ci.errors import ModelFileError
from simct_ci.features import FEATURE_NAMES
from simct_ci.model import BUNDLED_DIR, CARD_FILE, MODEL_FILE, BundledModel, read_card


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / "bundled"
    shutil.copytree(BUNDLED_DIR, copy)
    return copy


def _card(directory: Path) -> dict:
    return json.loads((directory / CARD_FILE).read_text())


def _write_card(directory: Path, card: dict) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card))


def test_bundled_model_loads_and_scores_probabilities() -> None:
    model = BundledModel.load()
    rows = np.zeros((3, len(FEATURE_NAMES)))
    scores = model.score(rows)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert model.info.sha256 == hashlib.sha256((BUNDLED_DIR / MODEL_FILE).read_bytes()).hexdigest()


def test_card_documents_provenance() -> None:
    card = _card(BUNDLED_DIR)
    assert card["features"] == list(FEATURE_NAMES)
    assert card["training_data"]["sha256"]
    assert set(card["versions"]) >= {"lightgbm", "numpy", "sacrebleu", "rapidfuzz"}
    assert "meteor" in card["omitted"]


def test_missing_model_file(bundle: Path) -> None:
    (bundle / MODEL_FILE).unlink()
    with pytest.raises(ModelFileError, match="missing or unreadable"):
        read_card(bundle)


def test_missing_card(bundle: Path) -> None:
    (bundle / CARD_FILE).unlink()
    with pytest.raises(ModelFileError, match="card is missing"):
        read_card(bundle)


def test_corrupted_model_is_caught_by_its_hash(bundle: Path) -> None:
    text = (bundle / MODEL_FILE).read_text()
    (bundle / MODEL_FILE).write_text(text.replace("leaf_value=", "leaf_value=9", 1))
    with pytest.raises(ModelFileError, match="does not match its card"):
        read_card(bundle)


def test_model_for_other_features_is_refused(bundle: Path) -> None:
    card = _card(bundle)
    card["features"] = card["features"][:-1]
    _write_card(bundle, card)
    with pytest.raises(ModelFileError, match="feature set"):
        read_card(bundle)


def test_garbage_with_a_matching_hash_is_not_a_lightgbm_model(bundle: Path) -> None:
    garbage = b"this is not a model\n"
    (bundle / MODEL_FILE).write_bytes(garbage)
    card = _card(bundle)
    card["model_sha256"] = hashlib.sha256(garbage).hexdigest()
    _write_card(bundle, card)
    with pytest.raises(ModelFileError, match="not a LightGBM model"):
        BundledModel.load(bundle)


def test_card_that_is_not_json(bundle: Path) -> None:
    (bundle / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable model card") as caught:
        read_card(bundle)
    assert "\n" not in str(caught.value)
