"""Promise: collection loses nothing and asks nothing twice. Every response is on disk as it arrives, in the
recorded format; a rerun or a resumed crashed run queries only what is missing; failures are listed, not fatal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simct_ci.collect import (
    LogProgress,
    ResponseCache,
    RichProgress,
    auto_progress,
    cache_key,
    collect_stage,
    record_stage,
)
from simct_ci.config import Sampling, StageConfig
from simct_ci.endpoints import ChatEndpoint
from simct_ci.errors import ConfigError
from simct_ci.recorded import read_recorded
from simct_ci.responses import Prompt, Response
from simct_ci.retry import RetryPolicy
from tests.support import fault_server as fs
from tests.support.fault_server import FaultServer

PROMPTS = (
    Prompt("capital", "What is the capital of France?", "closed"),
    Prompt("poem", "Write a haiku about rain."),
    Prompt("add", "What is 2 + 2?", "closed"),
)
SAMPLING = Sampling(samples=2, temperature=0.7, max_tokens=16, seed=1)
KEY = "sk-collect-5ecret-KEY-987"
REPO = Path(__file__).resolve().parents[1]


def live(url: str, **overrides: object) -> StageConfig:
    fields: dict[str, object] = {"name": "quantized", "base_url": url, "model": "smollm2-q3", "concurrency": 3}
    fields.update(overrides)
    return StageConfig(**fields)  # type: ignore[arg-type]


def fast_endpoint(stage: StageConfig, sampling: Sampling) -> ChatEndpoint:
    return ChatEndpoint(stage, sampling, RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))


def collect(stage: StageConfig, tmp_path: Path, cache: ResponseCache | None = None, prompts=PROMPTS, **kw):
    return collect_stage(
        stage,
        prompts,
        kw.pop("sampling", SAMPLING),
        responses_path=tmp_path / "responses" / f"{stage.name}.jsonl",
        cache=cache if cache is not None else ResponseCache(tmp_path / "cache.jsonl"),
        progress=kw.pop("progress", LogProgress(io.StringIO())),
        endpoint_factory=fast_endpoint,
        **kw,
    )


def expected(prompts=PROMPTS, samples: int = 2) -> tuple[Response, ...]:
    rows = [Response(p.id, p.text, f"echo seed={1 + k}: {p.text}", k) for p in prompts for k in range(samples)]
    return tuple(sorted(rows, key=lambda r: (r.prompt_id, r.sample)))


# -- live stages ---------------------------------------------------------------------------------------------


def test_live_stage_collects_every_prompt_and_sample_into_a_reusable_sorted_file(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    result = collect(live(fault_server.url), tmp_path)
    assert result.stage == "quantized"
    assert result.responses == expected()
    assert result.failures == ()
    assert len(fault_server.requests) == 6
    path = tmp_path / "responses" / "quantized.jsonl"
    assert read_recorded(path) == result.responses  # the file is directly a recorded stage
    recorded_stage = StageConfig(name="frozen", responses=path)
    again = collect(recorded_stage, tmp_path, prompts=PROMPTS)
    assert again.responses == result.responses


def test_requests_run_concurrently_up_to_the_stage_limit(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.default = fs.ok(delay=0.15)
    started = time.monotonic()
    result = collect(live(fault_server.url, concurrency=3), tmp_path)
    elapsed = time.monotonic() - started
    assert len(result.responses) == 6
    assert fault_server.max_in_flight == 3
    assert elapsed < 6 * 0.15  # serially it would take 0.9 s; three at a time about 0.3 s


def test_failed_requests_become_failures_and_the_run_goes_on(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.script_for("haiku", fs.status(400), fs.malformed_json())
    result = collect(live(fault_server.url, api_key=KEY), tmp_path)
    assert [r.prompt_id for r in result.responses] == ["add", "add", "capital", "capital"]
    assert [(f.prompt_id, f.sample) for f in result.failures] == [("poem", 0), ("poem", 1)]
    for failure in result.failures:
        assert failure.error.startswith("stage quantized: POST /v1/chat/completions: ")
        assert KEY not in failure.error
    assert {r.prompt_id for r in read_recorded(tmp_path / "responses" / "quantized.jsonl")} == {"add", "capital"}


def test_secrets_never_reach_the_cache_or_the_responses_file(fault_server: FaultServer, tmp_path: Path) -> None:
    collect(live(fault_server.url, api_key=KEY), tmp_path)
    assert fault_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    for written in tmp_path.rglob("*"):
        if written.is_file():
            assert KEY not in written.read_text(encoding="utf-8"), written


def test_progress_lines_in_ci(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.script_for("2 + 2", fs.status(404))
    log = io.StringIO()
    prompts = (*(Prompt(f"p{i}", f"prompt {i}") for i in range(9)), Prompt("add", "What is 2 + 2?"))
    collect(live(fault_server.url, concurrency=1), tmp_path, prompts=prompts, progress=LogProgress(log))
    lines = log.getvalue().splitlines()
    assert lines[0] == "collect quantized: 20 requests"
    assert [line.split(":")[1].split(",")[0].strip() for line in lines[1:]] == [
        f"{done}/20 responses" for done in range(2, 21, 2)
    ]
    assert lines[-1] == "collect quantized: 20/20 responses, 1 failed"


def test_progress_is_a_bar_only_on_an_interactive_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(auto_progress(Terminal(), environ={}), RichProgress)
    assert isinstance(auto_progress(Terminal(), environ={"CI": "true"}), LogProgress)
    assert isinstance(auto_progress(io.StringIO(), environ={}), LogProgress)
    bar = RichProgress(Terminal())
    bar.start("quantized", 2, done=1)
    bar.advance(failed=True)
    bar.finish()


# -- cache and resume ----------------------------------------------------------------------------------------


def test_second_run_is_served_from_the_cache_without_any_request(fault_server: FaultServer, tmp_path: Path) -> None:
    first = collect(live(fault_server.url), tmp_path)
    asked = len(fault_server.requests)
    log = io.StringIO()
    second = collect(live(fault_server.url), tmp_path, progress=LogProgress(log))
    assert len(fault_server.requests) == asked == 6
    assert second == first
    assert "6 from cache" in log.getvalue()
    assert read_recorded(tmp_path / "responses" / "quantized.jsonl") == first.responses


def test_changed_settings_miss_the_cache_but_a_new_api_key_does_not(fault_server: FaultServer, tmp_path: Path) -> None:
    stage = live(fault_server.url)
    key = cache_key(stage, SAMPLING, PROMPTS[0], 0)
    assert cache_key(live(fault_server.url, api_key=KEY), SAMPLING, PROMPTS[0], 0) == key
    assert cache_key(live(fault_server.url, concurrency=9, timeout=5.0), SAMPLING, PROMPTS[0], 0) == key
    assert cache_key(live(fault_server.url + "/"), SAMPLING, PROMPTS[0], 0) == key
    changed = [
        cache_key(stage, SAMPLING, PROMPTS[0], 1),
        cache_key(stage, SAMPLING, PROMPTS[1], 0),
        cache_key(live(fault_server.url, model="other"), SAMPLING, PROMPTS[0], 0),
        cache_key(live(fault_server.url.replace("/v1", "/v2")), SAMPLING, PROMPTS[0], 0),
        cache_key(live(fault_server.url, api="completion"), SAMPLING, PROMPTS[0], 0),
        cache_key(live(fault_server.url, system_prompt="Be brief."), SAMPLING, PROMPTS[0], 0),
        cache_key(stage, Sampling(samples=2, temperature=0.8, max_tokens=16, seed=1), PROMPTS[0], 0),
        cache_key(stage, Sampling(samples=2, top_p=0.9, max_tokens=16, seed=1), PROMPTS[0], 0),
        cache_key(stage, Sampling(samples=2, max_tokens=17, seed=1), PROMPTS[0], 0),
        cache_key(stage, Sampling(samples=2, max_tokens=16, seed=2), PROMPTS[0], 0),
        cache_key(stage, Sampling(samples=2, max_tokens=16, seed=None), PROMPTS[0], 0),
    ]
    assert len({key, *changed}) == len(changed) + 1
    # Asking for more samples reuses the ones already there.
    collect(stage, tmp_path)
    collect(stage, tmp_path, sampling=Sampling(samples=3, temperature=0.7, max_tokens=16, seed=1))
    assert len(fault_server.requests) == 6 + 3


def test_failures_are_not_cached_so_a_rerun_retries_only_them(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.script_for("haiku", fs.status(400), fs.status(400))
    first = collect(live(fault_server.url), tmp_path)
    assert len(first.failures) == 2
    second = collect(live(fault_server.url), tmp_path)
    assert second.failures == ()
    assert second.responses == expected()
    assert [r.fault for r in fault_server.requests_for("haiku")] == ["status", "status", "ok", "ok"]
    assert len(fault_server.requests) == 8


_KILLED_RUN = """
import sys
from pathlib import Path
from simct_ci.collect import LogProgress, ResponseCache, collect_stage
from simct_ci.config import Sampling, StageConfig
from simct_ci.responses import Prompt

url, out = sys.argv[1], Path(sys.argv[2])
prompts = [Prompt(f"p{i}", f"prompt {i}") for i in range(10)]
stage = StageConfig(name="quantized", base_url=url, model="m", concurrency=1)
collect_stage(stage, prompts, Sampling(samples=2, seed=1), responses_path=out / "quantized.jsonl",
              cache=ResponseCache(out / "cache.jsonl"), progress=LogProgress(sys.stderr))
"""


def test_run_killed_halfway_keeps_its_responses_and_resumes_from_the_cache(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.default = fs.ok(delay=0.05)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, fault_server.url, str(tmp_path)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
    )
    cache_file, responses_file = tmp_path / "cache.jsonl", tmp_path / "quantized.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.poll() is None:
        if cache_file.exists() and cache_file.read_bytes().count(b"\n") >= 6:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)  # no cleanup at all, as when a runner is cancelled hard
    _, stderr = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, stderr.decode()

    # What arrived before the kill is a valid recorded file already.
    kept = read_recorded(responses_file)
    assert 6 <= len(kept) < 20
    before = len(fault_server.requests)
    fault_server.default = fs.ok()

    prompts = [Prompt(f"p{i}", f"prompt {i}") for i in range(10)]
    cache = ResponseCache(cache_file)
    stage = StageConfig(name="quantized", base_url=fault_server.url, model="m", concurrency=1)
    result = collect_stage(
        stage,
        prompts,
        Sampling(samples=2, seed=1),
        responses_path=responses_file,
        cache=cache,
        progress=LogProgress(io.StringIO()),
        endpoint_factory=fast_endpoint,
    )
    assert len(result.responses) == 20 and result.failures == ()
    asked_again = {(r.body["messages"][-1]["content"], r.body["seed"]) for r in fault_server.requests[before:]}
    already_had = {(r.prompt, r.sample + 1) for r in kept}
    assert not asked_again & already_had
    # At most the request in flight at the kill is asked twice.
    assert len(fault_server.requests) - before <= 20 - len(kept)
    assert read_recorded(responses_file) == result.responses


def test_cache_survives_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "a", "response": "first"}\n{"key": "b", "resp', encoding="utf-8")
    cache = ResponseCache(path)
    assert len(cache) == 1 and cache.get("a") == "first" and cache.get("b") is None
    cache.put("c", "third\u2028line")
    cache.close()
    reloaded = ResponseCache(path)
    assert reloaded.get("a") == "first" and reloaded.get("c") == "third\u2028line"


def test_disabled_cache_remembers_nothing(tmp_path: Path) -> None:
    cache = ResponseCache.disabled()
    cache.put("a", "text")
    assert cache.get("a") is None and len(cache) == 0
    assert list(tmp_path.iterdir()) == []


# -- recorded stages -----------------------------------------------------------------------------------------


def test_recorded_stage_keeps_only_configured_prompts_and_samples(tmp_path: Path) -> None:
    source = tmp_path / "gateway.jsonl"
    rows = [
        {"prompt_id": "capital", "prompt": PROMPTS[0].text, "response": f"Paris {k}", "sample": k} for k in range(4)
    ]
    rows += [{"prompt_id": "poem", "prompt": PROMPTS[1].text, "response": "Rain falls", "sample": 1}]
    rows += [{"prompt_id": "unused", "prompt": "Not configured", "response": "x", "sample": 0}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    def no_endpoint(stage: StageConfig, sampling: Sampling) -> ChatEndpoint:
        raise AssertionError("a recorded stage must not be queried")

    result = collect_stage(
        StageConfig(name="gateway", responses=source),
        PROMPTS,
        SAMPLING,
        responses_path=tmp_path / "out" / "gateway.jsonl",
        cache=ResponseCache.disabled(),
        endpoint_factory=no_endpoint,
    )
    assert [(r.prompt_id, r.sample, r.response) for r in result.responses] == [
        ("capital", 0, "Paris 0"),
        ("capital", 1, "Paris 1"),
        ("poem", 1, "Rain falls"),  # sample 0 and prompt "add" are simply missing
    ]
    assert result.failures == ()
    assert read_recorded(tmp_path / "out" / "gateway.jsonl") == result.responses


def test_recorded_stage_never_overwrites_its_own_source(tmp_path: Path) -> None:
    source = tmp_path / "gateway.jsonl"
    rows = [{"prompt_id": "capital", "prompt": PROMPTS[0].text, "response": "Paris", "sample": k} for k in range(5)]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    before = source.read_bytes()
    result = collect_stage(
        StageConfig(name="gateway", responses=source),
        PROMPTS,
        SAMPLING,
        responses_path=tmp_path / "." / "gateway.jsonl",
        cache=ResponseCache.disabled(),
    )
    assert len(result.responses) == 2
    assert source.read_bytes() == before


# -- record_stage (python -m simct_ci collect) ---------------------------------------------------------------


def test_record_stage_freezes_a_live_stage(fault_server: FaultServer, tmp_path: Path) -> None:
    output = tmp_path / "recorded" / "baseline.jsonl"
    result = record_stage(
        live(fault_server.url),
        PROMPTS,
        SAMPLING,
        output=output,
        progress=LogProgress(io.StringIO()),
        endpoint_factory=fast_endpoint,
    )
    assert result.responses == expected()
    assert read_recorded(output) == result.responses
    assert list(tmp_path.rglob("*cache*")) == []  # no cache unless one is asked for


def test_record_stage_refuses_a_recorded_stage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^stages\.gateway: is a recorded stage"):
        record_stage(
            StageConfig(name="gateway", responses=tmp_path / "gateway.jsonl"),
            PROMPTS,
            SAMPLING,
            output=tmp_path / "out.jsonl",
        )
