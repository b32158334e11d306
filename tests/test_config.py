"""Promise: the config of the issue loads exactly as written, with documented defaults, and the API key it
names is read from the environment but never shown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simct_ci.config import Config, Gate, Sampling, StageConfig, load_config
from simct_ci.errors import ConfigError, SimctError
from simct_ci.responses import Prompt

SECRET = "sk-live-8d2f6a41c0"

ISSUE_EXAMPLE = """\
version: 1
reference: bare-metal            # every other stage is tested against this one
stages:
  bare-metal:
    base_url: http://127.0.0.1:8080/v1   # OpenAI-compatible /chat/completions
    model: smollm2
    api_key_env: REFERENCE_API_KEY       # optional: name of the env var holding the key
  quantized:
    base_url: http://127.0.0.1:8081/v1
    model: smollm2-q3
  gateway:
    responses: recorded/gateway.jsonl    # recorded responses instead of a live endpoint
prompts:
  - {id: capital, text: "What is the capital of France?", type: closed}
  - file: prompts/more.jsonl
sampling: {samples: 3, temperature: 0.7, max_tokens: 256, seed: 1}
gate: {alpha: 0.05}
"""

MORE_PROMPTS = (
    '{"id": "haiku", "text": "Write a haiku about rain."}\n'
    "\n"  # blank lines are skipped
    '{"id": "sum", "text": "What is 2 + 2?", "type": "closed", "source": "extra keys are ignored"}\n'
    '{"id": "中文", "text": "用一句话介绍巴黎。", "type": "open"}\n'
)


def write_project(directory: Path, config_text: str = ISSUE_EXAMPLE) -> Path:
    (directory / "recorded").mkdir(parents=True, exist_ok=True)
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "recorded/gateway.jsonl").write_text(
        '{"prompt_id": "capital", "prompt": "What is the capital of France?", "response": "Paris.", "sample": 0}\n'
    )
    (directory / "prompts/more.jsonl").write_text(MORE_PROMPTS, encoding="utf-8")
    config = directory / "simct.yml"
    config.write_text(config_text, encoding="utf-8")
    return config


@pytest.fixture
def example(tmp_path: Path) -> Config:
    return load_config(write_project(tmp_path), env={"REFERENCE_API_KEY": SECRET})


def test_issue_example_stages(example: Config, tmp_path: Path) -> None:
    assert example.version == 1
    assert example.path == tmp_path / "simct.yml"
    assert example.reference == "bare-metal"
    assert [stage.name for stage in example.stages] == ["bare-metal", "quantized", "gateway"]
    assert example.stage("bare-metal") == StageConfig(
        name="bare-metal",
        base_url="http://127.0.0.1:8080/v1",
        model="smollm2",
        api="chat",
        api_key=SECRET,
        api_key_env="REFERENCE_API_KEY",
    )
    quantized = example.stage("quantized")
    assert (quantized.base_url, quantized.model, quantized.api_key, quantized.is_recorded) == (
        "http://127.0.0.1:8081/v1",
        "smollm2-q3",
        None,
        False,
    )
    assert (quantized.concurrency, quantized.timeout, quantized.max_retries) == (4, 60.0, 5)
    gateway = example.stage("gateway")
    assert gateway.is_recorded
    assert gateway.responses == tmp_path / "recorded/gateway.jsonl"
    assert gateway.base_url is None and gateway.model is None


def test_issue_example_prompts_sampling_gate(example: Config) -> None:
    assert example.prompts == (
        Prompt("capital", "What is the capital of France?", "closed"),
        Prompt("haiku", "Write a haiku about rain.", "open"),
        Prompt("sum", "What is 2 + 2?", "closed"),
        Prompt("中文", "用一句话介绍巴黎。", "open"),
    )
    assert example.sampling == Sampling(samples=3, temperature=0.7, top_p=1.0, max_tokens=256, seed=1)
    assert example.gate == Gate(alpha=0.05, min_prompts=10, max_failed_ratio=0.2)


def test_candidates_are_every_stage_but_the_reference_in_file_order(example: Config) -> None:
    assert [stage.name for stage in example.candidates] == ["quantized", "gateway"]


def test_unknown_stage_name_is_a_config_error(example: Config) -> None:
    with pytest.raises(ConfigError, match=r"no stage named 'prod' \(stages: bare-metal, quantized, gateway\)"):
        example.stage("prod")


def test_secret_is_read_but_never_shown(example: Config) -> None:
    assert example.secrets() == (SECRET,)
    assert SECRET not in repr(example)
    assert SECRET not in str(example)
    assert SECRET not in repr(example.stage("bare-metal"))


def test_secret_never_in_an_error_message(tmp_path: Path) -> None:
    # The key is in the environment while a later part of the config is wrong, in several ways.
    env = {"REFERENCE_API_KEY": SECRET}
    breakages = [
        ("http://127.0.0.1:8081/v1", "ftp:/x"),
        ("model: smollm2-q3", "model: 3.5"),
        ("api_key_env: REFERENCE_API_KEY", f"api_key_env: REFERENCE_API_KEY\n    api_key: {SECRET}"),
        ("alpha: 0.05", "alpha: 5"),
    ]
    for old, new in breakages:
        config = write_project(tmp_path, ISSUE_EXAMPLE.replace(old, new))
        with pytest.raises(SimctError) as caught:
            load_config(config, env=env)
        assert SECRET not in str(caught.value), str(caught.value)
    # A secret mistakenly written into the URL is not echoed either.
    config = write_project(tmp_path, ISSUE_EXAMPLE.replace("http://127.0.0.1:8081", f"http://me:{SECRET}@h:bad"))
    with pytest.raises(ConfigError) as caught:
        load_config(config, env=env)
    assert SECRET not in str(caught.value)


def test_env_defaults_to_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFERENCE_API_KEY", f"  {SECRET}\n")  # as `$(cat key.txt)` often leaves it
    config = load_config(write_project(tmp_path))
    assert config.stage("bare-metal").api_key == SECRET
    monkeypatch.delenv("REFERENCE_API_KEY")
    with pytest.raises(ConfigError, match="REFERENCE_API_KEY is not set"):
        load_config(tmp_path / "simct.yml")


def test_paths_are_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "ci" / "consistency"
    project.mkdir(parents=True)
    write_project(project)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("ci/consistency/simct.yml"), env={"REFERENCE_API_KEY": SECRET})
    assert config.stage("gateway").responses == Path("ci/consistency/recorded/gateway.jsonl")
    assert len(config.prompts) == 4


def test_defaults_when_optional_sections_are_left_out(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.split("sampling:")[0].replace("    api_key_env: REFERENCE_API_KEY", "")
    config = load_config(write_project(tmp_path, text), env={})
    assert config.sampling == Sampling()
    assert config.gate == Gate()
    assert config.secrets() == ()


def test_every_option_can_be_set(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace(
        "    model: smollm2-q3\n",
        "    model: smollm2-q3\n    api: completion\n    system_prompt: ''\n"
        "    concurrency: 16\n    timeout: 5\n    max_retries: 0\n",
    ).replace(
        "sampling: {samples: 3, temperature: 0.7, max_tokens: 256, seed: 1}\ngate: {alpha: 0.05}",
        "sampling: {samples: 1, temperature: 0, top_p: 0.9, max_tokens: 1, seed: null}\n"
        "gate: {alpha: 0.01, min_prompts: 2, max_failed_ratio: 0}",
    )
    config = load_config(write_project(tmp_path, text), env={"REFERENCE_API_KEY": SECRET})
    quantized = config.stage("quantized")
    assert (quantized.api, quantized.system_prompt, quantized.concurrency) == ("completion", "", 16)
    assert quantized.timeout == 5.0 and isinstance(quantized.timeout, float)
    assert quantized.max_retries == 0
    assert config.sampling == Sampling(samples=1, temperature=0.0, top_p=0.9, max_tokens=1, seed=None)
    assert config.gate == Gate(alpha=0.01, min_prompts=2, max_failed_ratio=0.0)


def test_yaml_anchors_and_merge_keys_share_stage_settings(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("  bare-metal:\n", "  bare-metal: &live\n").replace(
        "  quantized:\n    base_url: http://127.0.0.1:8081/v1\n    model: smollm2-q3\n",
        "  quantized:\n    <<: *live\n    base_url: http://127.0.0.1:8081/v1\n",
    )
    config = load_config(write_project(tmp_path, text), env={"REFERENCE_API_KEY": SECRET})
    assert config.stage("quantized").model == "smollm2"
    assert config.stage("quantized").base_url == "http://127.0.0.1:8081/v1"
    assert config.stage("quantized").api_key == SECRET


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    config.write_bytes(b"\xef\xbb\xbf" + ISSUE_EXAMPLE.replace("\n", "\r\n").encode())
    assert load_config(config, env={"REFERENCE_API_KEY": SECRET}).reference == "bare-metal"


def test_url_with_a_query_string_is_kept(tmp_path: Path) -> None:
    # Some gateways (Azure OpenAI) take the API version as a query parameter.
    url = "https://gateway.example.com/openai/v1?api-version=2024-10-21"
    text = ISSUE_EXAMPLE.replace("http://127.0.0.1:8081/v1", url)
    assert (
        load_config(write_project(tmp_path, text), env={"REFERENCE_API_KEY": SECRET}).stage("quantized").base_url == url
    )


def test_config_is_frozen(example: Config) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.reference = "quantized"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.stages[0].api_key = "other"  # type: ignore[misc]
