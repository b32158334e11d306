"""The bundled model loads without training, and a broken one is refused with a clear error."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from simct_ci.compare import CLASSIFIER, LENGTH, same_deployment_spread
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


@pytest.mark.parametrize("field", ["component_scales", "null_mean", "threshold", "model_sha256"])
def test_a_card_without_a_required_field_is_refused_naming_it(bundle: Path, field: str) -> None:
    card = _card(bundle)
    del card[field]
    _write_card(bundle, card)
    with pytest.raises(ModelFileError, match=f"model card lacks or mistypes '{field}'") as caught:
        read_card(bundle)
    assert str(bundle / CARD_FILE) in str(caught.value)
    with pytest.raises(ModelFileError, match=field):
        BundledModel.load(bundle)


@pytest.mark.parametrize(
    "value",
    [None, [0.17, 0.067], "0.17", {"classifier": "wide", "length": 0.067}, {"classifier": None, "length": 0.067}],
    ids=["null", "list", "string", "word", "null scale"],
)
def test_mistyped_component_scales_are_refused_naming_the_field(bundle: Path, value: object) -> None:
    card = _card(bundle)
    card["component_scales"] = value
    _write_card(bundle, card)
    with pytest.raises(ModelFileError, match="model card lacks or mistypes 'component_scales'"):
        read_card(bundle)


@pytest.mark.parametrize(
    "scales",
    [{}, {"classifier": 0.0, "length": 0.067}, {"classifier": 0.17, "length": -0.067}, {"classifier": math.nan}],
    ids=["empty", "zero", "negative", "nan"],
)
def test_component_scales_that_are_not_positive_numbers_are_refused(bundle: Path, scales: dict) -> None:
    """The combined test divides by them: zero would crash after every endpoint was queried, a negative scale would
    turn a shift into evidence of consistency, and NaN would make every stage consistent."""
    card = _card(bundle)
    card["component_scales"] = scales
    _write_card(bundle, card)  # NaN is written as the JSON extension that Python reads back
    with pytest.raises(ModelFileError, match="component_scales must be positive numbers"):
        read_card(bundle)


def test_the_bundled_card_has_a_positive_scale_per_paired_component() -> None:
    scales = read_card().component_scales
    assert set(scales) == {CLASSIFIER, LENGTH}
    assert all(0 < scale < math.inf for scale in scales.values())


# --- the component scales are what training computes -------------------------------------------------------------

DATASET = Path(__file__).resolve().parents[1] / "data" / "dataset" / "responses.jsonl.gz"


@pytest.fixture(scope="module")
def train_prompts() -> list:
    from simct_ci.training.dataset import complete_prompts, load_records

    if not DATASET.exists():
        pytest.skip("the committed dataset is not in this checkout")
    return [p for p in complete_prompts(load_records([DATASET])) if p.split == "train"]


class _Booster:
    """The bundled model behind the `.predict` that training's component_scales calls on a LightGBM booster."""

    def __init__(self, model: BundledModel) -> None:
        self.predict = model.score


def test_component_scales_are_positive_and_close_to_the_bundled_cards(train_prompts: list) -> None:
    from simct_ci.training.train import component_scales

    model = BundledModel.load()
    first = train_prompts[:30]
    assert len(first) == 30
    scales = component_scales(first, _Booster(model))
    assert set(scales) == {CLASSIFIER, LENGTH}
    assert all(0 < scale < math.inf for scale in scales.values()), scales
    assert component_scales(first, _Booster(model)) == scales  # seeded: reproducible
    # The card was filled by the same function on every train prompt; the dataset may have grown since.
    for name, bundled in model.card.component_scales.items():
        assert 1 / 1.5 <= scales[name] / bundled <= 1.5, (name, scales[name], bundled)


def test_the_cards_scales_are_reproduced_exactly_from_the_data_it_names(train_prompts: list) -> None:
    from simct_ci.training.train import component_scales

    model = BundledModel.load()
    if model.card.raw["training_data"]["sha256"] != hashlib.sha256(DATASET.read_bytes()).hexdigest():
        pytest.skip("the committed dataset has changed since the card was written")
    assert component_scales(train_prompts, _Booster(model)) == model.card.component_scales


def test_same_deployment_spread_is_the_sd_of_each_paired_component() -> None:
    """compare.same_deployment_spread: on splits of one deployment's responses, the sd of each component."""
    model = BundledModel.load()
    rng = np.random.default_rng(0)
    words = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    splits = []
    for i in range(12):
        texts = [f"Answer {i}: " + " ".join(rng.choice(words, rng.integers(3, 25))) for _ in range(9)]
        splits.append((texts[:6], texts[6:], False))
    spread = same_deployment_spread(splits, model)
    assert set(spread) == {CLASSIFIER, LENGTH}
    assert all(0 < value < math.inf for value in spread.values()), spread
    # Identical responses everywhere: no spread at all.
    same = [([f"Answer {i}."] * 6, [f"Answer {i}."] * 3, True) for i in range(5)]
    assert same_deployment_spread(same, model) == {CLASSIFIER: 0.0, LENGTH: 0.0}


# --- the bundled model never learned a similarity backwards ------------------------------------------------------


def test_monotone_constraints_name_the_similarity_and_shift_features() -> None:
    from simct_ci.training.train import monotone_constraints

    rule = dict(zip(FEATURE_NAMES, monotone_constraints(FEATURE_NAMES), strict=True))
    assert rule["cross_chrf"] == rule["gap_bleu"] == rule["cross_length_ratio"] == -1
    assert rule["log_len_abs_shift"] == rule["repetition_abs_shift"] == 1
    # Two-sided or descriptive features stay free: a sampler may be narrower or wider, a prompt long or short.
    assert (
        rule["within_cand_chrf"] == rule["diversity_shift_chrf"] == rule["log_len_shift"] == rule["closed_query"] == 0
    )


@pytest.mark.parametrize(
    ("feature", "direction"), [("cross_chrf", -1), ("gap_rougeL", -1), ("cross_prefix", -1), ("log_len_abs_shift", 1)]
)
def test_the_bundled_score_moves_one_way_along_a_constrained_feature(
    train_prompts: list, feature: str, direction: int
) -> None:
    from simct_ci.features import PromptPool, split_features_batch
    from simct_ci.training.deployments import REFERENCE

    model = BundledModel.load()
    column = FEATURE_NAMES.index(feature)
    rows = []
    for prompt in train_prompts[:20]:  # real rows: 6 reference samples split 3/3
        texts = prompt.responses[REFERENCE][:6]
        pool = PromptPool.of(texts, prompt.closed)
        rows.append(split_features_batch(pool, np.array([[0, 1, 2]]), np.array([[3, 4, 5]]))[0])
    grid = np.linspace(0.0, 2.0 if feature.endswith("abs_shift") else 1.0, 21)
    for row in rows:
        swept = np.repeat(row[None, :], len(grid), axis=0)
        swept[:, column] = grid
        steps = np.diff(model.score(swept)) * direction
        assert np.all(steps >= -1e-12), (feature, steps.min())
