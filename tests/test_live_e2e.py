"""Promise: the Action runs end to end against live deployments, and a rerun is served from its cache.

Two real llama.cpp servers on loopback: SmolLM2 as shipped (Q4_1) and its Q3_K_M requantization. Three stages:
the reference, the same server under another name, and the Q3 build. A counting proxy in front of each server
shows which run really asked the models.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from simct_ci.protocol import reference_samples
from tests.support.fake_github import FakeGitHub
from tests.support.llama_server import SMOLLM2_ALIAS, SMOLLM2_Q3_ALIAS
from tests.support.loopback import LoopbackServer
from tests.support.runner import ActionRun, run_action

pytestmark = pytest.mark.llama

PROMPTS = (
    {"id": "capital-en", "text": "What is the capital of France?", "type": "closed"},
    {"id": "spider-en", "text": "How many legs does a spider have?", "type": "closed"},
    {"id": "multiply-en", "text": "What is 7 times 6?", "type": "closed"},
    {"id": "haiku-en", "text": "Write a haiku about rain.", "type": "open"},
    {"id": "cat-name-en", "text": "Suggest a name for a pet cat.", "type": "open"},
    {"id": "ocean-en", "text": "Describe the ocean in one sentence.", "type": "open"},
    {"id": "capital-zh", "text": "中国的首都是哪座城市？", "type": "closed"},
    {"id": "water-zh", "text": "水的化学式是什么？", "type": "closed"},
    {"id": "months-zh", "text": "一年有几个月？", "type": "closed"},
    {"id": "spring-zh", "text": "用一句话描述春天。", "type": "open"},
    {"id": "joke-zh", "text": "给我讲一个简短的笑话。", "type": "open"},
    {"id": "book-zh", "text": "推荐一本适合初学者的书。", "type": "open"},
)
SAMPLES = 2
REFERENCE, SAME_SERVER, Q3 = "smollm2", "smollm2-again", "smollm2-q3"
EXIT_FOR = {"consistent": 0, "inconsistent": 1, "incomplete": 3}
INPUTS = {"config": "simct.yml", "cache": ".simct-cache/responses.jsonl"}


class CountingProxy(LoopbackServer):
    """Forwards every request to one upstream server and counts the completions it forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.split("/v1", 1)[0]  # origin: the path is forwarded as the client sent it
        self.completions = 0
        self._lock = threading.Lock()
        super().__init__(_ProxyHandler, path="/v1", poll_interval=0.05)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> requests.Response:
        if path.endswith("/completions"):
            with self._lock:
                self.completions += 1
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "accept", "authorization")}
        return requests.request(method, self.upstream + path, data=body, headers=keep, timeout=300)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def _relay(self) -> None:
        proxy = CountingProxy.serving(self)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = proxy.forward(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)


@dataclass(frozen=True)
class Snapshot:
    """What a run left in the output directory, read before the next run overwrites it."""

    report: dict[str, Any]
    responses: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class LiveRuns:
    first: ActionRun
    second: ActionRun
    files: tuple[Snapshot, Snapshot]
    asked_first: dict[str, int]  # completions each server got during the first run
    asked_second: dict[str, int]
    comments: int
    comment_ids: tuple[list[int], list[int]]


def write_config(workspace: Path, shipped_url: str, q3_url: str) -> None:
    def live(url: str, model: str) -> dict[str, Any]:
        # Generous timeout: the servers answer one request at a time on a busy 2-core machine.
        return {"base_url": url, "model": model, "concurrency": 2, "timeout": 120, "max_retries": 2}

    config = {
        "version": 1,
        "reference": REFERENCE,
        "stages": {
            REFERENCE: live(shipped_url, SMOLLM2_ALIAS),
            SAME_SERVER: live(shipped_url, SMOLLM2_ALIAS),
            Q3: live(q3_url, SMOLLM2_Q3_ALIAS),
        },
        "prompts": list(PROMPTS),
        "sampling": {"samples": SAMPLES, "temperature": 0.7, "max_tokens": 24, "seed": 11},
        "gate": {"alpha": 0.05, "min_prompts": len(PROMPTS)},
    }
    (workspace / "simct.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def live_runs(smollm2_url: str, smollm2_q3_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRuns]:
    workspace = tmp_path_factory.mktemp("live-workspace")
    with CountingProxy(smollm2_url) as shipped, CountingProxy(smollm2_q3_url) as q3, FakeGitHub() as fake:
        write_config(workspace, shipped.url, q3.url)
        first = run_action(workspace, api_url=fake.url, token=fake.token, inputs=INPUTS, timeout=600)
        first_files = _snapshot(first)
        asked_first = {"shipped": shipped.completions, "q3": q3.completions}
        ids_first = [c["id"] for c in fake.bot_comments()]
        second = run_action(workspace, api_url=fake.url, token=fake.token, inputs=INPUTS, timeout=600)
        asked_second = {
            "shipped": shipped.completions - asked_first["shipped"],
            "q3": q3.completions - asked_first["q3"],
        }
        ids_second = [c["id"] for c in fake.bot_comments()]
        files = (first_files, _snapshot(second))
        yield LiveRuns(
            first, second, files, asked_first, asked_second, len(fake.bot_comments()), (ids_first, ids_second)
        )


def _snapshot(run: ActionRun) -> Snapshot:
    if "report-path" not in run.outputs:  # the run failed before publishing: show why
        pytest.fail(f"the run wrote no outputs (exit {run.exit_code}):\n{run.stdout}\n{run.stderr}")
    report = json.loads((run.workspace / run.outputs["report-path"]).read_text(encoding="utf-8"))
    responses = {}
    for path in sorted((run.output_dir() / "responses").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        responses[path.stem] = [json.loads(line) for line in lines if line.strip()]
    return Snapshot(report, responses)


def test_live_run_completes_with_every_response(live_runs: LiveRuns) -> None:
    run, files = live_runs.first, live_runs.files[0]
    assert "Traceback" not in run.stderr, run.stderr
    assert run.exit_code == EXIT_FOR[files.report["verdict"]], run.stdout + run.stderr
    expected = sorted((p["id"], sample) for p in PROMPTS for sample in range(SAMPLES))
    expected_reference = sorted((p["id"], s) for p in PROMPTS for s in range(reference_samples(SAMPLES)))
    assert set(files.responses) == {REFERENCE, SAME_SERVER, Q3}
    for stage, rows in files.responses.items():
        want = expected_reference if stage == REFERENCE else expected
        assert sorted((r["prompt_id"], r["sample"]) for r in rows) == want, stage
        assert all(isinstance(r["response"], str) for r in rows)
    assert live_runs.asked_first["shipped"] >= len(expected) and live_runs.asked_first["q3"] >= len(expected)


def test_report_has_every_stage_with_a_p_value(live_runs: LiveRuns) -> None:
    stages = {stage["stage"]: stage for stage in live_runs.files[0].report["stages"]}
    assert set(stages) == {SAME_SERVER, Q3}
    for stage in stages.values():
        assert stage["failures"] == [] and stage["missing_prompts"] == []
        p_value = stage["model_wise"]["p_value"]
        assert isinstance(p_value, float) and 0.0 <= p_value <= 1.0
        assert stage["model_wise"]["n_prompts"] == len(PROMPTS)
    # The same deployment under another name: there is all the evidence needed to conclude.
    assert stages[SAME_SERVER]["verdict"] != "incomplete"
    assert json.loads(live_runs.first.outputs["p-values"]) == {
        name: stage["model_wise"]["p_value"] for name, stage in stages.items()
    }


def test_the_comment_is_created_then_updated(live_runs: LiveRuns) -> None:
    first_ids, second_ids = live_runs.comment_ids
    assert len(first_ids) == 1 and second_ids == first_ids
    assert live_runs.comments == 1
    assert live_runs.first.outputs["comment-url"] and live_runs.second.outputs["comment-url"]


def test_rerun_is_served_from_the_cache(live_runs: LiveRuns) -> None:
    assert live_runs.asked_second == {"shipped": 0, "q3": 0}
    assert live_runs.second.exit_code == live_runs.first.exit_code
    first, second = live_runs.files
    assert second.responses == first.responses
    assert [s["model_wise"] for s in second.report["stages"]] == [s["model_wise"] for s in first.report["stages"]]
    assert (live_runs.second.workspace / INPUTS["cache"]).stat().st_size > 0
