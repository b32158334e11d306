"""A whole run against misbehaving endpoints: retried faults heal, lasting ones give `incomplete`, nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simct_ci.cli import main
from simct_ci.errors import EXIT_CONSISTENT, EXIT_INCOMPLETE
from tests.support import fault_server as fs
from tests.support.fault_server import FaultServer

API_KEY = "sk-test-7f3a9c1e5b2d4f60a8c7"
PROMPTS = [f"Question number {i}: name a colour." for i in range(12)]


def _write_config(tmp_path: Path, reference_url: str, candidate_url: str) -> Path:
    """Both stages answer with the fault server's echo; with no seed every sample of a prompt is the same text,
    so the two stages are identical and a run that concludes is consistent."""
    prompts = "\n".join(f'  - {{id: q{i}, text: "{text}", type: closed}}' for i, text in enumerate(PROMPTS))
    config = tmp_path / "simct.yml"
    config.write_text(
        f"""version: 1
reference: bare-metal
stages:
  bare-metal: {{base_url: {reference_url}, model: smollm2, api_key_env: SIMCT_TEST_KEY, max_retries: 3}}
  gateway: {{base_url: {candidate_url}, model: smollm2, api_key_env: SIMCT_TEST_KEY, max_retries: 3}}
prompts:
{prompts}
sampling: {{samples: 2, temperature: 0.7, max_tokens: 16, seed: null}}
gate: {{alpha: 0.05, min_prompts: 10, max_failed_ratio: 0.2}}
"""
    )
    return config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMCT_TEST_KEY", API_KEY)
    monkeypatch.setenv("CI", "true")


def _run(config: Path, out: Path) -> int:
    return main(["run", "--config", str(config), "--output-dir", str(out)])


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_transient_faults_are_retried_and_the_run_concludes(
    tmp_path: Path, env: None, fault_server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer() as candidate:
        candidate.script(fs.status(429, retry_after="0"), fs.status(503, retry_after="0"), fs.reset())
        code = _run(_write_config(tmp_path, fault_server.url, candidate.url), tmp_path / "out")
    report = _report(tmp_path / "out")
    assert code == EXIT_CONSISTENT, capsys.readouterr().err
    assert report["verdict"] == "consistent"
    assert report["stages"][0]["failures"] == []
    lines = (tmp_path / "out" / "responses" / "gateway.jsonl").read_text().splitlines()
    assert len(lines) == len(PROMPTS) * 2


def test_a_malformed_answer_is_a_listed_failure_not_a_response(
    tmp_path: Path, env: None, fault_server: FaultServer
) -> None:
    with FaultServer() as candidate:
        candidate.script(fs.no_choices())
        code = _run(_write_config(tmp_path, fault_server.url, candidate.url), tmp_path / "out")
    failures = _report(tmp_path / "out")["stages"][0]["failures"]
    assert code == EXIT_CONSISTENT  # 1 of 24 requests failed: within gate.max_failed_ratio
    assert len(failures) == 1 and "no choices" in failures[0]["error"]


def test_lasting_failures_are_listed_and_the_verdict_is_incomplete(
    tmp_path: Path, env: None, fault_server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer() as candidate:
        for text in PROMPTS[:5]:  # 5 of 12 prompts never answer: 42% of requests, over the 20% allowed
            candidate.script_for(text, *[fs.status(500, retry_after="0")] * 10)
        code = _run(_write_config(tmp_path, fault_server.url, candidate.url), tmp_path / "out")
    report = _report(tmp_path / "out")
    assert code == EXIT_INCOMPLETE
    stage = report["stages"][0]
    assert stage["verdict"] == "incomplete"
    assert {f["prompt_id"] for f in stage["failures"]} == {f"q{i}" for i in range(5)}
    assert all("500" in f["error"] for f in stage["failures"])
    assert "verdict: incomplete" in capsys.readouterr().out


def test_a_rerun_queries_only_what_failed_before(tmp_path: Path, env: None, fault_server: FaultServer) -> None:
    config_out = tmp_path / "out"
    with FaultServer() as candidate:
        candidate.script_for(PROMPTS[0], *[fs.status(502, retry_after="0")] * 8)
        config = _write_config(tmp_path, fault_server.url, candidate.url)
        assert _run(config, config_out) == EXIT_CONSISTENT  # 1 failed prompt of 12 is within the ratio
        first = len(candidate.requests) + len(fault_server.requests)
        assert _run(config, config_out) == EXIT_CONSISTENT
        again = len(candidate.requests) + len(fault_server.requests) - first
    assert again == 2  # the two samples of the prompt that failed; every other response came from the cache
    assert _report(config_out)["stages"][0]["failures"] == []


def test_the_api_key_is_never_written_or_printed(
    tmp_path: Path, env: None, fault_server: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer() as candidate:
        candidate.script(*[fs.echo_auth(401)] * 4)  # a careless gateway repeats the Authorization header
        _run(_write_config(tmp_path, fault_server.url, candidate.url), tmp_path / "out")
    captured = capsys.readouterr()
    assert API_KEY not in captured.out + captured.err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert API_KEY not in path.read_text(errors="replace"), path
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in fault_server.requests)


def test_candidates_never_share_a_seed_with_the_reference(tmp_path: Path, env: None, fault_server: FaultServer) -> None:
    """A server that honours seeds must give a same-deployment candidate fresh samples, not the reference's own:
    the reference takes seeds 1-4 (2 x samples), the candidate the next 2."""
    with FaultServer() as candidate:
        config = _write_config(tmp_path, fault_server.url, candidate.url)
        config.write_text(config.read_text().replace("seed: null", "seed: 1"))
        _run(config, tmp_path / "out")

    def seeds(server: FaultServer) -> set[int]:
        return {request.body["seed"] for request in server.requests}

    assert (seeds(fault_server), seeds(candidate)) == ({1, 2, 3, 4}, {5, 6})
    assert len(candidate.requests) == 2 * len(PROMPTS)
