"""Promise: the Action's metadata, image and self-test workflow are what GitHub accepts and what the code reads.

Schemas are SchemaStore's, as vendored in check-jsonschema (nothing is downloaded at test time).
"""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import entrypoint
from simct_ci import publish
from simct_ci.model import read_card
from simct_ci.report import Report
from simct_ci.terminal import ReportPaths
from tests.support.runner import IMAGE_ENV, REPO, input_env

ACTION = REPO / "action.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
WORKFLOW = REPO / ".github" / "workflows" / "simct.yml"
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
IMAGE_SOURCES = {"requirements.txt", "simct_ci/", "templates/", "entrypoint.py"}


class _GitHubYamlLoader(yaml.SafeLoader):
    """YAML as GitHub reads it: only true/false are booleans, so a workflow's `on:` stays the string "on"."""


_GitHubYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GitHubYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_github_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_GitHubYamlLoader)  # a SafeLoader subclass


def vendored_schema(name: str) -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    return json.loads((vendor / name).read_text(encoding="utf-8"))


def schema_errors(document: Any, schema_name: str) -> list[str]:
    schema = vendored_schema(schema_name)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return load_github_yaml(ACTION)


# --- action.yml ------------------------------------------------------------------------------------------------


def test_action_yml_is_valid_action_metadata(action: dict[str, Any]) -> None:
    assert schema_errors(action, "github-actions.json") == []


def test_the_schema_rejects_broken_metadata(action: dict[str, Any]) -> None:
    # The check above means something only if the schema catches what GitHub would refuse.
    no_image = {**action, "runs": {key: value for key, value in action["runs"].items() if key != "image"}}
    assert schema_errors(no_image, "github-actions.json")
    unknown_runtime = {**action, "runs": {**action["runs"], "using": "docker2"}}
    assert schema_errors(unknown_runtime, "github-actions.json")


def test_runs_the_dockerfile_in_a_container(action: dict[str, Any]) -> None:
    assert action["runs"]["using"] == "docker"
    assert action["runs"]["image"] == "Dockerfile"
    assert (REPO / action["runs"]["image"]).is_file()


def test_every_input_is_snake_case_and_reaches_the_entrypoint(action: dict[str, Any]) -> None:
    inputs = action["inputs"]
    assert all(SNAKE_CASE.fullmatch(name) for name in inputs), sorted(inputs)
    env = action["runs"]["env"]
    for name in inputs:
        assert env.get(f"INPUT_{name.upper()}") == f"${{{{ inputs.{name} }}}}", name

    class Recording(dict[str, str]):
        """The environment, noting every variable the entrypoint looks up."""

        read: set[str]

        def get(self, key: str, default: Any = None) -> Any:
            self.read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            self.read.add(key)
            return super().__getitem__(key)

    environment = Recording(input_env({}, token="ghs_example"))
    environment.read = set()
    entrypoint.arguments(environment)
    read_inputs = {key for key in environment.read if key.startswith("INPUT_")}
    # The token is read where it is used, never passed as an argument (argv shows in `ps`).
    read_inputs |= {name for name in publish.TOKEN_VARIABLES if name.startswith("INPUT_")}
    assert read_inputs == {f"INPUT_{name.upper()}" for name in inputs}


def test_input_defaults_give_the_cli_its_own_defaults(action: dict[str, Any]) -> None:
    args = entrypoint.arguments(input_env({}, token="ghs_example"))
    assert args[:2] == ["run", "--github"]
    assert args[args.index("--config") + 1] == action["inputs"]["config"]["default"]
    assert args[args.index("--output-dir") + 1] == action["inputs"]["output_dir"]["default"]
    assert "--no-comment" not in args and "--fail-on-comment-error" not in args and "--cache" not in args
    flipped = entrypoint.arguments(
        input_env({"comment": "false", "fail_on_comment_error": "true", "cache": "c.jsonl"}, token="t")
    )
    assert "--no-comment" in flipped and "--fail-on-comment-error" in flipped
    assert flipped[flipped.index("--cache") + 1] == "c.jsonl"


def test_outputs_are_exactly_what_publish_writes(action: dict[str, Any]) -> None:
    report = Report(stages=(), model=read_card().info, config_id="simct.yml", created_at="2025-01-01T00:00:00+00:00")
    written = publish.outputs(report, ReportPaths(Path("out/report.json"), Path("out/report.md")), comment_url=None)
    assert set(action["outputs"]) == set(written)
    assert all(isinstance(value, str) for value in written.values())


# --- the image -----------------------------------------------------------------------------------------------


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, arguments = logical.partition(" ")
        yield instruction.upper(), arguments.strip()
        logical = ""


def test_the_image_installs_exactly_the_pinned_requirements() -> None:
    runs = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "RUN"]
    commands = [part.strip() for command in runs for part in re.split(r"&&|;|\|\|", command)]
    installs = [command for command in commands if re.search(r"\bpip3? install\b", command)]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    packages = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    assert packages == ["requirements.txt"] and "-r" in words  # nothing installed beside the file
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            assert re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[A-Za-z0-9_.+-]+", requirement), requirement


def test_the_image_copies_the_package_templates_and_entrypoint() -> None:
    instructions = list(dockerfile_instructions())
    copies = [shlex.split(arguments) for instruction, arguments in instructions if instruction in ("COPY", "ADD")]
    sources = {source for *sources, _ in copies for source in sources if not source.startswith("--")}
    assert sources == IMAGE_SOURCES
    install = next(
        i for i, (kind, arguments) in enumerate(instructions) if kind == "RUN" and "pip install" in arguments
    )
    copied_at = {
        source: i
        for i, (kind, arguments) in enumerate(instructions)
        if kind == "COPY"
        for source in shlex.split(arguments)
    }
    # Requirements first, code after: a code change does not reinstall every dependency.
    assert copied_at["requirements.txt"] < install
    assert all(copied_at[source] > install for source in IMAGE_SOURCES - {"requirements.txt"})
    entry = next(json.loads(arguments) for instruction, arguments in instructions if instruction == "ENTRYPOINT")
    assert entry[-1].endswith("entrypoint.py") and entry[0].startswith("python")


def test_dockerignore_lets_the_copied_files_and_the_bundled_model_in() -> None:
    rules = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert rules[0] == "*"  # everything else stays out of the build context
    included = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert {source.rstrip("/") for source in IMAGE_SOURCES} <= included
    excluded = [rule.rstrip("/") for rule in rules[1:] if not rule.startswith("!")]
    bundled = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "simct_ci" / "bundled").iterdir())
    assert bundled, "the bundled model is missing"
    assert not [path for path in bundled for rule in excluded if path.startswith(rule + "/")]


def test_the_test_runner_mimics_the_image_environment() -> None:
    env_lines = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "ENV"]
    image_env = dict(item.split("=", 1) for line in env_lines for item in shlex.split(line))
    assert image_env.pop("PYTHONPATH") == "/app"  # the runner points PYTHONPATH at the checkout instead
    assert image_env == IMAGE_ENV


# --- the self-test workflow -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_github_yaml(WORKFLOW)


def test_workflow_is_valid(workflow: dict[str, Any]) -> None:
    assert schema_errors(workflow, "github-workflows.json") == []
    assert "pull_request" in workflow["on"]
    # ...and the schema is strict enough to mean something:
    job = next(iter(workflow["jobs"]))
    typo = {**workflow, "jobs": {job: {**workflow["jobs"][job], "permissions": {"pull-requests": "writ"}}}}
    assert schema_errors(typo, "github-workflows.json")


def _steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_workflow_uses_the_action_itself_on_the_demo(workflow: dict[str, Any]) -> None:
    uses_self = [(job_id, step) for job_id, step in _steps(workflow) if step.get("uses") == "./"]
    assert len(uses_self) == 1
    job_id, step = uses_self[0]
    job = workflow["jobs"][job_id]
    assert job["permissions"]["pull-requests"] == "write"
    config = step["with"]["config"]
    assert (REPO / config).resolve() == (REPO / "simct_ci" / "demo" / "simct.yml").resolve()
    assert set(step["with"]) <= set(load_github_yaml(ACTION)["inputs"])
    checkout = [i for i, s in enumerate(job["steps"]) if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkout and checkout[0] < job["steps"].index(step)  # `uses: ./` needs the checkout
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    output_dir = step["with"].get("output_dir", load_github_yaml(ACTION)["inputs"]["output_dir"]["default"])
    assert output_dir == "simct-out" and uploads[0]["with"]["path"] == output_dir
    assert "always()" in str(uploads[0].get("if", ""))  # a failing gate still uploads its evidence


def test_workflow_runs_the_test_suite_like_the_readme(workflow: dict[str, Any]) -> None:
    scripts = [step["run"] for _, step in _steps(workflow) if "run" in step]
    assert any(line.strip() == "bash .ci/run" for script in scripts for line in script.splitlines())
    assert (REPO / ".ci" / "run").is_file(), "the workflow and the README call .ci/run"
