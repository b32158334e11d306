"""Run `entrypoint.py` the way a GitHub runner runs this docker action's step, for end-to-end tests.

The subprocess gets the environment a runner gives the container, and nothing of the test's own: the `INPUT_*`
variables (action.yml's defaults applied and its `runs.env` evaluated, as the runner does), the `GITHUB_*` and
`RUNNER_*` variables, a pull_request event payload, fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files, and the
image's own ENV lines. Working directory = the workspace, no stdin.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.fake_github import PR_NUMBER, REPOSITORY

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "entrypoint.py"
ACTION_YML = REPO / "action.yml"

RUN_ID = "9876543210"
SERVER_URL = "https://github.com"
HEAD_SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
BASE_SHA = "9049f1265b7d61be4a8904a9a27120d2064dab3b"
# What the python:3.11-slim image and our Dockerfile put in the container's environment (PYTHONPATH is the repo
# here instead of /app); tests/test_action_metadata.py checks this against the Dockerfile's ENV line.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}

_EXPRESSION = re.compile(r"\$\{\{\s*(?P<expr>[^}]*?)\s*\}\}")
_COMMAND = re.compile(r"^::(?P<name>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<message>.*)$")


@dataclass(frozen=True)
class ActionRun:
    """What one step left behind."""

    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path
    env: Mapping[str, str] = field(repr=False)

    def commands(self, name: str) -> list[str]:
        """Messages of the `::name ...::message` workflow commands printed on stdout, in order."""
        found = []
        for line in self.stdout.splitlines():
            match = _COMMAND.match(line)
            if match and match["name"] == name:
                found.append(match["message"])
        return found

    def output_dir(self) -> Path:
        return self.workspace / self.env["INPUT_OUTPUT_DIR"]


def pull_request_event(
    repository: str = REPOSITORY, number: int = PR_NUMBER, head_repository: str | None = None
) -> dict[str, Any]:
    """A pull_request "synchronize" payload as GitHub sends it (trimmed to the fields that matter plus context).

    `head_repository` other than `repository` makes it a pull request from a fork.
    """
    head_repository = head_repository or repository
    owner = repository.split("/")[0]
    head_owner = head_repository.split("/")[0]
    fork = head_repository.casefold() != repository.casefold()

    def repo(full_name: str, repo_id: int, is_fork: bool) -> dict[str, Any]:
        login, name = full_name.split("/")
        return {
            "id": repo_id,
            "name": name,
            "full_name": full_name,
            "private": False,
            "fork": is_fork,
            "owner": {"login": login, "type": "Organization" if login == owner else "User"},
            "html_url": f"{SERVER_URL}/{full_name}",
            "default_branch": "main",
        }

    base_repo = repo(repository, 1_296_269, False)
    head_repo = repo(head_repository, 1_296_270 if fork else 1_296_269, fork)
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "id": 1_934_512_345,
            "number": number,
            "state": "open",
            "title": "Switch the serving image to the Q2_K build",
            "html_url": f"{SERVER_URL}/{repository}/pull/{number}",
            "user": {"login": head_owner, "type": "User"},
            "draft": False,
            "head": {
                "label": f"{head_owner}:quantize",
                "ref": "quantize",
                "sha": HEAD_SHA,
                "repo": head_repo,
            },
            "base": {"label": f"{owner}:main", "ref": "main", "sha": BASE_SHA, "repo": base_repo},
        },
        "before": BASE_SHA,
        "after": HEAD_SHA,
        "repository": base_repo,
        "sender": {"login": head_owner, "type": "User"},
    }


def action_metadata() -> dict[str, Any]:
    return yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))


def input_env(inputs: Mapping[str, str], token: str) -> dict[str, str]:
    """INPUT_* as the runner builds them: every declared input (default applied), then runs.env evaluated."""
    metadata = action_metadata()
    declared = metadata.get("inputs") or {}
    unknown = set(inputs) - set(declared)
    if unknown:  # the runner only warns; in a test it is a typo
        raise ValueError(f"inputs not declared in action.yml: {sorted(unknown)}")
    context = {"github.token": token}
    values = {}
    for name, spec in declared.items():
        raw = inputs[name] if name in inputs else str((spec or {}).get("default", ""))
        values[name] = _evaluate(raw, context)
    context.update({f"inputs.{name}": value for name, value in values.items()})
    env = {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in values.items()}
    for name, raw in (metadata["runs"].get("env") or {}).items():
        env[name] = _evaluate(str(raw), context)
    return env


def _evaluate(text: str, context: Mapping[str, str]) -> str:
    """The few `${{ }}` expressions action.yml may use here; anything else would be a surprise in a test."""

    def value(match: re.Match[str]) -> str:
        expression = match["expr"]
        if expression not in context:
            raise ValueError(f"runner.py cannot evaluate ${{{{ {expression} }}}}")
        return context[expression]

    return _EXPRESSION.sub(value, text)


def run_action(
    workspace: Path,
    *,
    api_url: str,
    token: str,
    inputs: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    event: Mapping[str, Any] | None = None,
    merge_stderr: bool = False,
    timeout: float = 300.0,
) -> ActionRun:
    """Run the step once in `workspace`. `env` is the step's own `env:` (an API key, say).

    With `merge_stderr` both streams go through one pipe, as in the runner's log, so their order is the log's.
    """
    workspace = workspace.resolve()
    runner_dir = workspace.parent / f".runner-{workspace.name}"  # the runner's _temp, outside the workspace
    runner_dir.mkdir(parents=True, exist_ok=True)
    files = {name: runner_dir / name for name in ("set_output", "step_summary", "set_env", "add_path", "save_state")}
    for path in files.values():
        path.write_text("", encoding="utf-8")
    event_path = runner_dir / "event.json"
    event_path.write_text(json.dumps(event or pull_request_event(), indent=2), encoding="utf-8")
    (runner_dir / "home").mkdir(exist_ok=True)
    payload = json.loads(event_path.read_text(encoding="utf-8"))
    pr = payload.get("pull_request") or {}

    step_env = {
        # The container's own: its PATH and home; the image's ENV.
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(runner_dir / "home"),
        "PYTHONPATH": str(REPO),
        **IMAGE_ENV,
        # What the runner passes to every docker action step.
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION": "simct",
        "GITHUB_ACTION_REPOSITORY": "",
        "GITHUB_ACTOR": str((payload.get("sender") or {}).get("login", "octocat")),
        "GITHUB_API_URL": api_url,
        "GITHUB_GRAPHQL_URL": f"{api_url}/graphql",
        "GITHUB_SERVER_URL": SERVER_URL,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/")[0],
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REF": f"refs/pull/{pr.get('number', PR_NUMBER)}/merge",
        "GITHUB_REF_NAME": f"{pr.get('number', PR_NUMBER)}/merge",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_HEAD_REF": str((pr.get("head") or {}).get("ref", "")),
        "GITHUB_BASE_REF": str((pr.get("base") or {}).get("ref", "")),
        "GITHUB_SHA": HEAD_SHA,
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_RUN_NUMBER": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_JOB": "consistency",
        "GITHUB_WORKFLOW": "SimCT",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(files["set_output"]),
        "GITHUB_STEP_SUMMARY": str(files["step_summary"]),
        "GITHUB_ENV": str(files["set_env"]),
        "GITHUB_PATH": str(files["add_path"]),
        "GITHUB_STATE": str(files["save_state"]),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "RUNNER_NAME": "GitHub Actions 2",
        "RUNNER_ENVIRONMENT": "github-hosted",
        "RUNNER_TEMP": str(runner_dir),
        **input_env(inputs or {}, token),
        **(env or {}),
    }
    completed = subprocess.run(
        [sys.executable, str(ENTRYPOINT)],
        cwd=workspace,
        env=step_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    return ActionRun(
        exit_code=completed.returncode,
        stdout=completed.stdout.decode("utf-8", errors="replace"),
        stderr=(completed.stderr or b"").decode("utf-8", errors="replace"),
        outputs=parse_outputs(files["set_output"].read_text(encoding="utf-8")),
        summary=files["step_summary"].read_text(encoding="utf-8"),
        workspace=workspace,
        env=step_env,
    )


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks; later wins."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        heredoc = line.find("<<")
        equals = line.find("=")
        if heredoc > 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise ValueError(f"GITHUB_OUTPUT: empty delimiter for {name!r}")
            try:
                end = lines.index(delimiter, index)
            except ValueError:
                raise ValueError(f"GITHUB_OUTPUT: {name!r} has no closing {delimiter!r}") from None
            outputs[name] = "\n".join(lines[index:end])
            index = end + 1
        elif equals > 0:
            outputs[line[:equals]] = line[equals + 1 :]
        else:
            raise ValueError(f"GITHUB_OUTPUT: cannot read line {line!r}")
    return outputs
