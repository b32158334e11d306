"""Promise: collection works against a real llama.cpp OpenAI-compatible server, seeds make reruns repeat,
and what it writes is a recorded stage. Two real deployments: SmolLM2 as shipped, and its Q3_K_M build."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from simct_ci.collect import LogProgress, ResponseCache, collect_stage
from simct_ci.config import Sampling, StageConfig
from simct_ci.recorded import read_recorded
from simct_ci.responses import Prompt, StageResponses
from tests.support.llama_server import SMOLLM2_ALIAS, SMOLLM2_Q3_ALIAS

pytestmark = pytest.mark.llama

PROMPTS = (
    Prompt("capital", "What is the capital of France?", "closed"),
    Prompt("color", "Name a color.", "open"),
    Prompt("add", "What is 2 + 3?", "closed"),
    Prompt("greet", "Say hello in one word.", "open"),
)
SAMPLING = Sampling(samples=2, temperature=0.7, top_p=0.95, max_tokens=16, seed=7)


def collect_live(url: str, alias: str, responses_path: Path) -> StageResponses:
    stage = StageConfig(name=alias, base_url=url, model=alias, concurrency=2, timeout=120.0, max_retries=2)
    return collect_stage(
        stage,
        PROMPTS,
        SAMPLING,
        responses_path=responses_path,
        cache=ResponseCache.disabled(),  # every call really asks the model
        progress=LogProgress(io.StringIO()),
    )


@pytest.mark.parametrize(("fixture", "alias"), [("smollm2_url", SMOLLM2_ALIAS), ("smollm2_q3_url", SMOLLM2_Q3_ALIAS)])
def test_real_server_answers_every_request_and_the_seed_repeats_it(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str, alias: str
) -> None:
    url = request.getfixturevalue(fixture)
    first = collect_live(url, alias, tmp_path / "first.jsonl")
    assert first.failures == ()
    assert [(r.prompt_id, r.sample) for r in first.responses] == sorted((p.id, k) for p in PROMPTS for k in range(2))
    for response in first.responses:
        assert isinstance(response.response, str) and response.response.strip(), response
    assert read_recorded(tmp_path / "first.jsonl") == first.responses

    second = collect_live(url, alias, tmp_path / "second.jsonl")
    assert second.responses == first.responses  # same seed per sample, same text


def test_requantized_build_answers_differently_from_the_shipped_one(
    smollm2_url: str, smollm2_q3_url: str, tmp_path: Path
) -> None:
    shipped = collect_live(smollm2_url, SMOLLM2_ALIAS, tmp_path / "shipped.jsonl")
    q3 = collect_live(smollm2_q3_url, SMOLLM2_Q3_ALIAS, tmp_path / "q3.jsonl")
    assert shipped.texts_by_prompt().keys() == q3.texts_by_prompt().keys()
    # Same prompts, same seeds: only the weights differ, and that shows in the text.
    assert shipped.texts_by_prompt() != q3.texts_by_prompt()
