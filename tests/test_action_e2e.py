"""Promise: the Action, run by a GitHub runner on a pull request, gates the merge and reports where people look.

Every test runs `entrypoint.py` in a subprocess with a runner's environment (tests/support/runner.py) against the
loopback GitHub fake. The stages are recorded responses of real llama.cpp deployments: the embedded demo's
(bare-metal, rerun = the same deployment queried again, quantized-q2_k = a real Q2_K build), topped up with the
committed dataset's held-out (eval) prompts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from simct_ci.protocol import reference_samples
from tests.support.fake_github import PR_NUMBER, FakeGitHub
from tests.support.fault_server import FaultServer, echo_auth, ok
from tests.support.runner import REPO, ActionRun, action_metadata, pull_request_event, run_action

DEMO = REPO / "simct_ci" / "demo"
DATASET = REPO / "data" / "dataset" / "responses.jsonl.gz"
POOL = REPO / "data" / "prompts" / "pool.jsonl"
BUNDLED_MODEL = REPO / "simct_ci" / "bundled" / "simct-lgbm.txt"
MAX_PROMPTS = 30  # enough for a clear verdict, few enough that a run stays around two seconds
REFERENCE = "bare-metal"
INCONSISTENT = "quantized-q2_k"  # the same model requantized to Q2_K: a large, real change
REPORT_FIELDS = ("stage", "reference", "verdict", "model_wise", "response_wise")
MODEL_WISE_FIELDS = ("test", "statistic", "p_value", "alpha", "n_prompts")
PROMPT_FIELDS = ("prompt_id", "p_inconsistent", "inconsistent")
EXIT_FOR = {"consistent": 0, "inconsistent": 1, "incomplete": 3}


# --- recorded data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    prompts: tuple[dict[str, str], ...]  # {"id", "text", "type"}
    stages: Mapping[str, tuple[dict[str, Any], ...]]  # demo stage name -> recorded rows
    samples: int


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@cache
def recorded() -> Recorded:
    """The demo's prompts and stages, plus eval-split dataset prompts the demo lacks, up to MAX_PROMPTS."""
    from simct_ci.training.demo import SAMPLES, STAGES

    prompts = _jsonl(DEMO / "prompts.jsonl")[:MAX_PROMPTS]
    wanted = {p["id"] for p in prompts}
    stages = {name: [row for row in _jsonl(DEMO / f"{name}.jsonl") if row["prompt_id"] in wanted] for name in STAGES}
    if DATASET.exists() and len(prompts) < MAX_PROMPTS:
        from simct_ci.training.dataset import complete_prompts

        with gzip.open(DATASET, "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        texts = {row["id"]: row["text"] for row in _jsonl(POOL)}
        for extra in complete_prompts(records):
            if len(prompts) >= MAX_PROMPTS:
                break
            # Only held-out prompts: the bundled model never saw them in training.
            if extra.split != "eval" or extra.id in wanted or extra.id not in texts:
                continue
            prompts.append({"id": extra.id, "text": texts[extra.id], "type": "closed" if extra.closed else "open"})
            wanted.add(extra.id)
            for name, (deployment, first, count) in STAGES.items():
                stages[name] += [
                    {"prompt_id": extra.id, "prompt": texts[extra.id], "response": text, "sample": sample}
                    for sample, text in enumerate(extra.responses[deployment][first : first + count])
                ]
    return Recorded(tuple(prompts), {name: tuple(rows) for name, rows in stages.items()}, SAMPLES)


def write_workspace(
    workspace: Path,
    stages: Mapping[str, str],
    *,
    config: str = "simct.yml",
    min_prompts: int | None = None,
    live: Mapping[str, Mapping[str, str]] | None = None,
    gate: Mapping[str, object] | None = None,
) -> Path:
    """A repository checkout holding one config: `stages` maps a stage name to the demo stage it replays.

    Recorded files go to recorded/ at the workspace root; `live` adds live stages (name -> stage mapping).
    """
    data = recorded()
    (workspace / "recorded").mkdir(parents=True, exist_ok=True)
    with (workspace / "recorded" / "prompts.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in data.prompts)
    for source, rows in data.stages.items():
        with (workspace / "recorded" / f"{source}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path = workspace / config
    path.parent.mkdir(parents=True, exist_ok=True)
    to_root = "../" * (len(Path(config).parts) - 1)  # relative paths in a config start at its directory
    document = {
        "version": 1,
        "reference": REFERENCE,
        "stages": {name: {"responses": f"{to_root}recorded/{source}.jsonl"} for name, source in stages.items()}
        | dict(live or {}),
        "prompts": [{"file": f"{to_root}recorded/prompts.jsonl"}],
        "sampling": {"samples": data.samples, "temperature": 0.7, "max_tokens": 128},
        # Every prompt must count, whatever the size of the demo today.
        "gate": {"alpha": 0.05, "min_prompts": min_prompts or len(data.prompts), **(gate or {})},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def report_of(run: ActionRun) -> dict[str, Any]:
    return json.loads((run.workspace / run.outputs["report-path"]).read_text(encoding="utf-8"))


def verdicts_of(run: ActionRun) -> dict[str, str]:
    return {stage["stage"]: stage["verdict"] for stage in report_of(run)["stages"]}


def assert_one_line_error(run: ActionRun) -> None:
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simct: error: "), run.stderr


# --- one pull request, the gate run twice on it ----------------------------------------------------------------


@dataclass(frozen=True)
class TwoRuns:
    fake: FakeGitHub
    first: ActionRun
    second: ActionRun
    requests_after_first: int
    first_comments: list[dict[str, Any]]
    reports: tuple[dict[str, Any], dict[str, Any]]  # each run's report.json, read before the next run rewrote it

    @property
    def runs(self) -> tuple[tuple[ActionRun, dict[str, Any]], ...]:
        return ((self.first, self.reports[0]), (self.second, self.reports[1]))


OUTPUT_DIR = "out/simct"  # not the default: proves output_dir reaches the CLI


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    workspace = tmp_path_factory.mktemp("workspace")
    write_workspace(
        workspace, {REFERENCE: REFERENCE, "rerun": "rerun", INCONSISTENT: INCONSISTENT}, config=".github/simct.yml"
    )
    inputs = {"config": ".github/simct.yml", "output_dir": OUTPUT_DIR}
    with FakeGitHub() as fake:
        fake.seed_human_comments(3)  # a real PR has a conversation the sticky comment must live beside
        first = run_action(workspace, api_url=fake.url, token=fake.token, inputs=inputs)
        first_report = report_of(first)
        requests_after_first = len(fake.requests)
        first_comments = fake.bot_comments()
        second = run_action(workspace, api_url=fake.url, token=fake.token, inputs=inputs)
        reports = (first_report, report_of(second))
        yield TwoRuns(fake, first, second, requests_after_first, first_comments, reports)


def test_first_run_creates_the_sticky_comment_and_the_second_updates_it(two_runs: TwoRuns) -> None:
    fake = two_runs.fake
    assert len(two_runs.first_comments) == 1
    comment = two_runs.first_comments[0]
    first_requests = fake.requests[: two_runs.requests_after_first]
    second_requests = fake.requests[two_runs.requests_after_first :]
    assert [r.method for r in first_requests if r.method != "GET"] == ["POST"]
    assert [r.method for r in second_requests if r.method != "GET"] == ["PATCH"]
    assert second_requests[-1].path.endswith(f"/issues/comments/{comment['id']}")

    final = fake.bot_comments()
    assert [c["id"] for c in final] == [comment["id"]]  # one comment, the same one
    assert len(fake.comments_on(PR_NUMBER)) == 4  # the people's three comments are untouched
    marker = final[0]["body"].split("\n", 1)[0]
    assert marker.startswith("<!--") and marker.endswith("-->")
    assert marker == comment["body"].split("\n", 1)[0]
    assert json.loads(second_requests[-1].body)["body"] == final[0]["body"]


def test_exit_code_and_annotations_follow_the_report(two_runs: TwoRuns) -> None:
    for run, report in two_runs.runs:
        assert run.exit_code == EXIT_FOR[report["verdict"]], run.stderr
        errors = run.commands("error")
        flagged = [stage["stage"] for stage in report["stages"] if stage["verdict"] == "inconsistent"]
        assert len(errors) == len(flagged)
        for stage in flagged:
            assert any(message.startswith(f"{stage} is inconsistent with {REFERENCE}") for message in errors)
        assert "Traceback" not in run.stderr


def test_quantized_build_fails_the_gate_with_an_error_annotation(two_runs: TwoRuns) -> None:
    """Issue 3's gate: a real Q2_K requantization of the reference model is a large change and must be caught."""
    run, report = two_runs.runs[1]
    stage = next(s for s in report["stages"] if s["stage"] == INCONSISTENT)
    evidence = (
        f"p = {stage['model_wise']['p_value']:.3g} over {stage['model_wise']['n_prompts']} prompts, "
        f"{stage['response_wise']['inconsistent_ratio']:.0%} of prompts inconsistent response-wise"
    )
    assert stage["verdict"] == "inconsistent", evidence
    assert run.exit_code == 1
    assert any(
        message.startswith(f"{INCONSISTENT} is inconsistent with {REFERENCE}") for message in run.commands("error")
    )


def test_outputs_are_written_and_agree_with_the_report(two_runs: TwoRuns) -> None:
    run = two_runs.second
    declared = set(action_metadata()["outputs"])
    assert set(run.outputs) == declared
    report = report_of(run)
    assert run.outputs["verdict"] == report["verdict"]
    assert json.loads(run.outputs["p-values"]) == {s["stage"]: s["model_wise"]["p_value"] for s in report["stages"]}
    assert Path(run.outputs["report-path"]) == Path(OUTPUT_DIR) / "report.json"
    assert (run.workspace / run.outputs["markdown-path"]).read_text(encoding="utf-8").startswith("## ")
    comment = two_runs.fake.bot_comments()[0]
    assert run.outputs["comment-url"] == comment["html_url"]
    assert two_runs.first.outputs["comment-url"] == comment["html_url"]


def test_job_summary_carries_the_report(two_runs: TwoRuns) -> None:
    for run, report in two_runs.runs:
        first_line = run.summary.splitlines()[0]
        assert first_line.startswith("## ") and report["verdict"] in first_line
        for stage in report["stages"]:
            assert stage["signature"] in run.summary  # each stage's test is reproducible from the summary
        assert run.summary.count(first_line) == 1  # written once per run, not appended twice


def test_report_json_has_the_promised_fields(two_runs: TwoRuns) -> None:
    run = two_runs.second
    report = report_of(run)
    data = recorded()
    assert isinstance(report["version"], int)
    assert report["verdict"] in ("consistent", "inconsistent", "incomplete")
    assert report["model"]["sha256"] == hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest()
    assert isinstance(report["model"]["version"], str) and report["model"]["version"]
    assert [s["stage"] for s in report["stages"]] == ["rerun", INCONSISTENT]
    for stage in report["stages"]:
        assert all(key in stage for key in REPORT_FIELDS)
        assert stage["reference"] == REFERENCE
        model_wise = stage["model_wise"]
        assert all(key in model_wise for key in MODEL_WISE_FIELDS)
        assert 0.0 <= model_wise["p_value"] <= 1.0
        assert model_wise["alpha"] == 0.05
        assert model_wise["n_prompts"] == len(data.prompts)
        response_wise = stage["response_wise"]
        assert {p["prompt_id"] for p in response_wise["prompts"]} == {p["id"] for p in data.prompts}
        for prompt in response_wise["prompts"]:
            assert all(key in prompt for key in PROMPT_FIELDS)
            assert 0.0 <= prompt["p_inconsistent"] <= 1.0
        share = sum(p["inconsistent"] for p in response_wise["prompts"]) / len(response_wise["prompts"])
        assert response_wise["inconsistent_ratio"] == pytest.approx(share)


def test_every_stage_responses_are_in_the_output_dir(two_runs: TwoRuns) -> None:
    out = two_runs.second.output_dir()
    data = recorded()
    for stage in (REFERENCE, "rerun", INCONSISTENT):
        rows = _jsonl(out / "responses" / f"{stage}.jsonl")
        per_prompt = reference_samples(data.samples) if stage == REFERENCE else data.samples
        assert len(rows) == len(data.prompts) * per_prompt
        assert sorted((r["prompt_id"], r["sample"], r["response"]) for r in rows) == sorted(
            (r["prompt_id"], r["sample"], r["response"]) for r in data.stages[stage]
        )


# --- other pull requests ----------------------------------------------------------------------------------------


def test_consistent_config_passes_the_gate(tmp_path: Path, fake_github: FakeGitHub) -> None:
    # The same recorded responses under a second name: identical responses must never fail the gate.
    write_workspace(tmp_path, {REFERENCE: REFERENCE, "bare-metal-again": REFERENCE})
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.outputs["verdict"] == "consistent"
    assert verdicts_of(run) == {"bare-metal-again": "consistent"}
    assert run.commands("error") == []
    assert len(fake_github.bot_comments()) == 1
    assert run.summary.startswith("## ")


def test_the_mmd_gate_decides_and_signs_the_report(tmp_path: Path, fake_github: FakeGitHub) -> None:
    stages = {REFERENCE: REFERENCE, "bare-metal-again": REFERENCE, "rerun": "rerun", INCONSISTENT: INCONSISTENT}
    write_workspace(tmp_path, stages, gate={"test": "mmd"})
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token)
    report = report_of(run)
    results = {stage["stage"]: stage["model_wise"] for stage in report["stages"]}
    assert {result["test"] for result in results.values()} == {"mmd"}
    assert all(stage["signature"].startswith("test:mmd[5-spectrum,") for stage in report["stages"])
    assert results["bare-metal-again"]["p_value"] == 1.0  # identical responses: every relabelling is as extreme
    assert run.exit_code == (1 if "inconsistent" in verdicts_of(run).values() else 0), run.stderr


def test_two_configs_in_one_pull_request_keep_two_comments(tmp_path: Path, fake_github: FakeGitHub) -> None:
    write_workspace(tmp_path, {REFERENCE: REFERENCE, "bare-metal-again": REFERENCE}, config="simct/serving.yml")
    write_workspace(tmp_path, {REFERENCE: REFERENCE, INCONSISTENT: INCONSISTENT}, config="simct/quantized.yml")
    token, url = fake_github.token, fake_github.url
    serving = run_action(tmp_path, api_url=url, token=token, inputs={"config": "simct/serving.yml"})
    quantized = run_action(tmp_path, api_url=url, token=token, inputs={"config": "simct/quantized.yml"})
    assert serving.exit_code == 0
    assert quantized.exit_code == EXIT_FOR[quantized.outputs["verdict"]]
    comments = fake_github.bot_comments()
    assert len(comments) == 2
    assert {serving.outputs["comment-url"], quantized.outputs["comment-url"]} == {c["html_url"] for c in comments}

    before = len(fake_github.requests)
    again = run_action(tmp_path, api_url=url, token=token, inputs={"config": "simct/serving.yml"})
    assert again.outputs["comment-url"] == serving.outputs["comment-url"]
    writes = [r for r in fake_github.requests[before:] if r.method != "GET"]
    serving_id = next(c["id"] for c in comments if c["html_url"] == serving.outputs["comment-url"])
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in writes] == [("PATCH", str(serving_id))]
    assert len(fake_github.bot_comments()) == 2


@pytest.mark.parametrize("fail_on_comment_error", ["false", "true"])
def test_fork_pull_request_warns_and_keeps_the_verdict(
    tmp_path: Path, fake_github: FakeGitHub, fail_on_comment_error: str
) -> None:
    write_workspace(tmp_path, {REFERENCE: REFERENCE, INCONSISTENT: INCONSISTENT})
    # A fork's pull_request run gets a read-only token: reading comments works, writing one is refused.
    fake_github.fail_next("create", 403, times=10)
    run = run_action(
        tmp_path,
        api_url=fake_github.url,
        token=fake_github.token,
        inputs={"fail_on_comment_error": fail_on_comment_error},
        event=pull_request_event(head_repository="contributor/octo-repo"),
    )
    # The verdict decides, unless the user asked that a lost comment fail the step.
    expected = 2 if fail_on_comment_error == "true" else EXIT_FOR[run.outputs["verdict"]]
    assert run.exit_code == expected, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert fake_github.bot_comments() == []
    assert len(fake_github.requests_for("POST")) == 1  # a 403 is an answer, not a reason to retry
    assert any("fork" in warning and "job summary" in warning for warning in run.commands("warning"))
    assert run.summary.startswith("## ") and run.outputs["verdict"] in run.summary.splitlines()[0]
    assert run.outputs["verdict"] == report_of(run)["verdict"]
    assert run.outputs["comment-url"] == ""


def test_comment_false_posts_nothing_but_writes_the_summary(tmp_path: Path, fake_github: FakeGitHub) -> None:
    write_workspace(tmp_path, {REFERENCE: REFERENCE, INCONSISTENT: INCONSISTENT})
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token, inputs={"comment": "false"})
    assert run.exit_code == EXIT_FOR[report_of(run)["verdict"]]
    assert fake_github.requests == []
    assert run.summary.startswith("## ")
    assert run.outputs["verdict"] == report_of(run)["verdict"] and run.outputs["comment-url"] == ""
    flagged = [stage for stage, verdict in verdicts_of(run).items() if verdict == "inconsistent"]
    assert len(run.commands("error")) == len(flagged)  # annotations do not depend on the comment


def test_too_few_usable_prompts_is_incomplete(tmp_path: Path, fake_github: FakeGitHub) -> None:
    prompts = len(recorded().prompts)
    write_workspace(tmp_path, {REFERENCE: REFERENCE, INCONSISTENT: INCONSISTENT}, min_prompts=prompts + 1)
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token)
    assert run.exit_code == 3, run.stdout + run.stderr
    assert run.outputs["verdict"] == "incomplete"
    assert verdicts_of(run) == {INCONSISTENT: "incomplete"}  # too little evidence: never a verdict either way
    assert run.commands("error") == []
    assert any(INCONSISTENT in warning for warning in run.commands("warning"))
    assert len(fake_github.bot_comments()) == 1


# --- usage errors --------------------------------------------------------------------------------------------


BAD_CONFIGS = {
    "unknown key": ("simct.yml", "version: 1\nreference: a\nstagez: {}\n", "stagez"),
    "missing recorded file": (
        "simct.yml",
        "version: 1\nreference: a\nstages:\n  a: {responses: a.jsonl}\n  b: {responses: gone.jsonl}\n"
        "prompts: [{id: p, text: hi}]\n",
        "stages.a.responses",
    ),
    "unset api_key_env": (
        "simct.yml",
        "version: 1\nreference: a\nstages:\n  a: {base_url: 'http://127.0.0.1:9/v1', model: m,"
        " api_key_env: SIMCT_TEST_UNSET_KEY}\n  b: {base_url: 'http://127.0.0.1:9/v1', model: n}\n"
        "prompts: [{id: p, text: hi}]\n",
        "SIMCT_TEST_UNSET_KEY",
    ),
    "broken YAML": ("simct.yml", "version: 1\nstages: [unclosed\n", "simct.yml:"),
    "no such config": ("elsewhere.yml", "version: 1\n", "config file not found"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_exits_2_with_one_line(tmp_path: Path, fake_github: FakeGitHub, case: str) -> None:
    name, text, named = BAD_CONFIGS[case]
    (tmp_path / name).write_text(text, encoding="utf-8")
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token)  # config input: simct.yml
    assert run.exit_code == 2, run.stdout + run.stderr
    assert_one_line_error(run)
    assert named in run.stderr
    assert fake_github.requests == []


@pytest.mark.parametrize(("name", "value"), [("comment", "yes"), ("fail_on_comment_error", "1")])
def test_bad_boolean_input_exits_2(tmp_path: Path, fake_github: FakeGitHub, name: str, value: str) -> None:
    write_workspace(tmp_path, {REFERENCE: REFERENCE, INCONSISTENT: INCONSISTENT})
    run = run_action(tmp_path, api_url=fake_github.url, token=fake_github.token, inputs={name: value})
    assert run.exit_code == 2
    assert_one_line_error(run)
    assert name in run.stderr and "true or false" in run.stderr
    assert fake_github.requests == []
    assert not (tmp_path / "simct-out").exists()  # refused before any work


# --- secrets -------------------------------------------------------------------------------------------------


def test_secrets_never_leak_and_are_masked_first(tmp_path: Path, fake_github: FakeGitHub) -> None:
    api_key = "sk-live-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:32]
    with FaultServer() as gateway:
        # A careless gateway: it echoes the Authorization header in an error and in an answer.
        gateway.script(echo_auth(401), echo_auth(200), ok())
        write_workspace(
            tmp_path,
            {REFERENCE: REFERENCE},
            live={"gateway": {"base_url": gateway.url, "model": "echo", "api_key_env": "GATEWAY_API_KEY"}},
        )
        run = run_action(
            tmp_path,
            api_url=fake_github.url,
            token=fake_github.token,
            env={"GATEWAY_API_KEY": api_key},
            inputs={"cache": "cache/responses.jsonl"},
            merge_stderr=True,
        )
    secrets = (api_key, fake_github.token)
    log = run.stdout.splitlines()
    assert "Traceback" not in run.stdout, run.stdout
    assert run.exit_code == EXIT_FOR[report_of(run)["verdict"]]

    # The runner hides a secret only after its ::add-mask::, so those lines come before all else.
    masks = [line.removeprefix("::add-mask::") for line in log if line.startswith("::add-mask::")]
    assert set(masks) == set(secrets)
    assert all(line.startswith("::add-mask::") for line in log[: len(masks)])

    # The key was really used, and in the Authorization header only.
    assert gateway.requests and all(r.headers.get("authorization") == f"Bearer {api_key}" for r in gateway.requests)
    assert all(r.headers.get("Authorization") == f"Bearer {fake_github.token}" for r in fake_github.requests)
    assert fake_github.requests_for("POST"), "the comment was posted, so its body could be searched"

    places = {
        "log": "\n".join(line for line in log if not line.startswith("::add-mask::")),
        "summary": run.summary,
        "outputs": json.dumps(run.outputs),
        **{f"GitHub request {r.method} {r.path}": r.path + r.body for r in fake_github.requests},
        **{f"gateway request {r.path}": json.dumps(r.body) for r in gateway.requests},
    }
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "recorded")]
    assert (tmp_path / "cache" / "responses.jsonl") in written and (tmp_path / "simct-out" / "report.json") in written
    places |= {str(p.relative_to(tmp_path)): p.read_text(encoding="utf-8", errors="replace") for p in written}
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
    failures = [f for stage in report_of(run)["stages"] for f in stage["failures"]]
    assert any("401" in f["error"] for f in failures)  # the echoing error was reported, redacted


def test_enterprise_api_url_is_honoured(tmp_path: Path) -> None:
    write_workspace(tmp_path, {REFERENCE: REFERENCE, "bare-metal-again": REFERENCE})
    with FakeGitHub(prefix="/api/v3") as enterprise:  # GitHub Enterprise Server serves the API under /api/v3
        run = run_action(tmp_path, api_url=enterprise.url, token=enterprise.token)
        assert run.exit_code == 0, run.stdout + run.stderr
        assert enterprise.requests and all(r.path.startswith("/api/v3/") for r in enterprise.requests)
        assert len(enterprise.bot_comments()) == 1
