"""A run split across a CI matrix (`run --shard i/n`) and merged (`merge`) gives the unsharded run's verdict,
p-values and per-prompt scores; shards are disjoint, cover every prompt and do not move when prompts are added;
shards that do not belong together are refused with one line that names the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simct_ci.cli import main
from simct_ci.errors import EXIT_INCOMPLETE, EXIT_USAGE
from simct_ci.protocol import REFERENCE_FACTOR
from simct_ci.recorded import read_recorded
from simct_ci.responses import Prompt
from simct_ci.shard import MANIFEST, ShardError, ShardSpec, select, shard_of
from tests.support import fault_server as fs
from tests.support.fake_github import PR_NUMBER, REPOSITORY, FakeGitHub
from tests.support.fault_server import FaultServer

DEMO = Path(__file__).resolve().parents[1] / "simct_ci" / "demo"
STAGES = ("bare-metal", "rerun", "quantized-q2_k")


@pytest.fixture(autouse=True)
def _ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")  # log lines, no progress bar


def _demo_prompts() -> list[Prompt]:
    rows = [json.loads(line) for line in (DEMO / "prompts.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [Prompt(row["id"], row["text"], row.get("type", "open")) for row in rows]


def _write_config(directory: Path, *, samples: int = 3, extra_stage: str = "", extra_prompts: str = "") -> Path:
    """The demo's real recorded deployments, with a gate that concludes on its few prompts."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", *STAGES):
        shutil.copy(DEMO / f"{name}.jsonl", directory / f"{name}.jsonl")
    config = directory / "simct.yml"
    config.write_text(
        f"""version: 1
reference: bare-metal
stages:
  bare-metal: {{responses: bare-metal.jsonl}}
  rerun: {{responses: rerun.jsonl}}
  quantized-q2_k: {{responses: quantized-q2_k.jsonl}}
{extra_stage}prompts:
  - file: prompts.jsonl
{extra_prompts}sampling: {{samples: {samples}, temperature: 0.7, max_tokens: 128}}
gate: {{alpha: 0.05, min_prompts: 2}}
""",
        encoding="utf-8",
    )
    return config


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", "--config", str(config), "--output-dir", str(out), *extra])


def _shards(config: Path, base: Path, count: int) -> list[Path]:
    dirs = []
    for index in range(1, count + 1):
        out = base / f"simct-out-{index}"
        assert _run(config, out, "--shard", f"{index}/{count}") == 0
        dirs.append(out)
    return dirs


def _merge(config: Path, out: Path, shard_dirs: list[Path], *extra: str) -> int:
    return main(["merge", "--config", str(config), "--output-dir", str(out), *extra, *map(str, shard_dirs)])


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _per_prompt_scores(report: dict) -> list[list[tuple[str, float, float | None]]]:
    return [
        [(p["prompt_id"], p["p_inconsistent"], p["centred"]) for p in stage["response_wise"]["prompts"]]
        for stage in report["stages"]
    ]


def _manifest(shard_dir: Path) -> dict:
    return json.loads((shard_dir / MANIFEST).read_text(encoding="utf-8"))


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("simct: error:")]
    assert len(lines) == 1, lines
    return lines[0]


# --- the split ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_are_disjoint_and_together_cover_every_prompt(count: int) -> None:
    prompts = [*_demo_prompts(), *(Prompt(f"extra-{i}", f"Question {i}?") for i in range(200))]
    shards = [select(prompts, ShardSpec(index, count)) for index in range(1, count + 1)]
    ids = [prompt.id for shard in shards for prompt in shard]
    assert len(ids) == len(set(ids)) == len(prompts)
    if count > 1:  # a hash spreads prompts: no shard is left with everything or nothing (200+ prompts)
        assert all(0 < len(shard) < len(prompts) for shard in shards)


def test_adding_or_reordering_prompts_moves_no_other_prompt() -> None:
    before = _demo_prompts()
    after = [Prompt("new-first", "A prompt added at the top."), *reversed(before), Prompt("new-last", "And one more.")]
    for count in range(2, 9):
        old = {p.id: index for index in range(1, count + 1) for p in select(before, ShardSpec(index, count))}
        new = {p.id: index for index in range(1, count + 1) for p in select(after, ShardSpec(index, count))}
        assert {pid: new[pid] for pid in old} == old


def test_a_prompts_shard_depends_on_its_id_only_and_is_stable_across_versions() -> None:
    # Pinned values (sha256 of the id): a change of the hash would silently reshuffle matrices between releases.
    assert [shard_of(f"p{i}", 4) for i in range(12)] == [1, 4, 1, 2, 3, 3, 3, 3, 1, 1, 1, 4]
    assert shard_of("closed-008-zh", 1000) == 169
    assert shard_of("arena-0df741e684e4-zh", 3) == 1
    assert all(1 <= shard_of(f"p{i}", 5) <= 5 for i in range(100))


@pytest.mark.parametrize("text", ["0/3", "4/3", "3/0", "1/1001", "a/b", "2", "-1/3", ""])
def test_a_bad_shard_value_is_refused(text: str) -> None:
    with pytest.raises(ShardError, match="--shard"):
        ShardSpec.parse(text)


def test_a_bad_shard_value_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path / "work")
    assert _run(config, tmp_path / "out", "--shard", "4/3") == EXIT_USAGE
    assert "--shard" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


# --- sharded + merged == unsharded ----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 8])
def test_sharded_and_merged_run_equals_the_unsharded_run(
    tmp_path: Path, count: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path / "work")
    whole_code = _run(config, tmp_path / "whole")
    whole = _report(tmp_path / "whole")
    shard_dirs = _shards(config, tmp_path / "shards", count)
    merged_code = _merge(config, tmp_path / "merged", shard_dirs)
    merged = _report(tmp_path / "merged")

    assert merged_code == whole_code
    assert merged["verdict"] == whole["verdict"]
    assert [s["model_wise"]["p_value"] for s in merged["stages"]] == [
        s["model_wise"]["p_value"] for s in whole["stages"]
    ]
    assert _per_prompt_scores(merged) == _per_prompt_scores(whole)
    assert merged["stages"] == whole["stages"]  # and every other field: notes, failures, signatures
    assert all(s["model_wise"]["p_value"] is not None for s in whole["stages"])  # a real test ran
    for stage in STAGES:
        name = f"responses/{stage}.jsonl"
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_a_shard_collects_only_its_prompts_and_says_it_decides_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path / "work")
    out = tmp_path / "shard"
    code = _run(config, out, "--shard", "2/3")
    err = capsys.readouterr().err
    assert code == 0
    assert "does not decide the verdict" in err
    assert not (out / "report.json").exists()
    manifest = _manifest(out)
    expected = [p.id for p in select(_demo_prompts(), ShardSpec(2, 3))]
    assert manifest["shard"] == "2/3" and manifest["prompt_ids"] == expected
    assert manifest["sampling"]["samples"] == 3 and len(manifest["model_sha256"]) == 64
    for stage in STAGES:
        assert {r.prompt_id for r in read_recorded(out / "responses" / f"{stage}.jsonl")} == set(expected)
    # The reference is collected for REFERENCE_FACTOR x samples, in a shard as in a whole run.
    reference = {(r.prompt_id, r.sample) for r in read_recorded(out / "responses" / "bare-metal.jsonl")}
    available = {(r.prompt_id, r.sample) for r in read_recorded(DEMO / "bare-metal.jsonl") if r.prompt_id in expected}
    assert reference == {(pid, sample) for pid, sample in available if sample < REFERENCE_FACTOR * 3}


def test_failed_requests_make_a_shard_exit_3_and_reach_the_merged_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live stage whose endpoint refuses every prompt of one shard: the merged report lists the same failures
    as a whole run, and that shard exits 3 (more than its gate's ratio of its own requests failed)."""
    count = 3
    prompts = _demo_prompts()
    failing_shard = shard_of(prompts[0].id, count)
    failing = select(prompts, ShardSpec(failing_shard, count))
    monkeypatch.setenv("SIMCT_SHARD_KEY", "sk-shard-test-1234567890")
    with FaultServer() as server:
        server.default = fs.ok()
        for prompt in failing:  # the whole run and the shard each ask for 3 samples of every prompt
            server.script_for(prompt.text, *[fs.status(400)] * 6)
        stage = f"  gateway: {{base_url: {server.url}, model: smollm2, api_key_env: SIMCT_SHARD_KEY, max_retries: 0}}\n"
        config = _write_config(tmp_path / "work", extra_stage=stage)
        whole_code = _run(config, tmp_path / "whole", "--no-cache")
        codes = {}
        for index in range(1, count + 1):
            codes[index] = _run(config, tmp_path / f"s{index}", "--shard", f"{index}/{count}", "--no-cache")
    assert codes[failing_shard] == EXIT_INCOMPLETE
    assert all(code == 0 for index, code in codes.items() if index != failing_shard)

    monkeypatch.delenv("SIMCT_SHARD_KEY")  # a merge queries nothing: the key need not be set in its job
    merged_code = _merge(config, tmp_path / "merged", [tmp_path / f"s{index}" for index in codes])
    whole, merged = _report(tmp_path / "whole"), _report(tmp_path / "merged")
    assert merged_code == whole_code
    assert merged["stages"] == whole["stages"]
    gateway = next(s for s in merged["stages"] if s["stage"] == "gateway")
    expected = sorted((prompt.id, i) for prompt in failing for i in range(3))
    assert sorted((f["prompt_id"], f["sample"]) for f in gateway["failures"]) == expected
    assert "sk-shard" not in json.dumps(merged) + json.dumps(_manifest(tmp_path / f"s{failing_shard}"))


def test_merge_with_github_publishes_like_run_and_updates_the_same_sticky_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_github: FakeGitHub
) -> None:
    config = _write_config(tmp_path / "work")
    event = tmp_path / "event.json"
    repo = {"full_name": REPOSITORY}
    event.write_text(
        json.dumps({"pull_request": {"number": PR_NUMBER, "head": {"repo": repo}, "base": {"repo": repo}}})
    )
    outputs = tmp_path / "outputs.txt"
    for name, value in {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(outputs),
    }.items():
        monkeypatch.setenv(name, value)
    whole_code = _run(config, tmp_path / "whole", "--github")
    [comment] = fake_github.bot_comments()
    merge_outputs = tmp_path / "merge-outputs.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(merge_outputs))
    merged_code = _merge(config, tmp_path / "merged", _shards(config, tmp_path / "shards", 3), "--github")

    assert merged_code == whole_code
    [updated] = fake_github.bot_comments()  # the merge updated the run's comment: same config, same marker
    assert updated["id"] == comment["id"]
    assert [r.method for r in fake_github.requests if r.method in ("POST", "PATCH")] == ["POST", "PATCH"]
    verdict = _report(tmp_path / "merged")["verdict"]
    written = merge_outputs.read_text()
    assert written.startswith("verdict<<") and written.splitlines()[1] == verdict
    assert "p-values<<" in written and "report-path<<" in written
    assert "SimCT" in (tmp_path / "summary.md").read_text()


# --- shards that do not belong together -----------------------------------------------------------------------


@pytest.fixture
def three_shards(tmp_path: Path) -> tuple[Path, list[Path]]:
    config = _write_config(tmp_path / "work")
    return config, _shards(config, tmp_path / "shards", 3)


def test_a_missing_shard_is_named_in_one_line(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", [shards[0], shards[2]]) == EXIT_USAGE
    line = _error_line(capsys)
    assert "shard 2/3 is missing" in line and "given: 1/3, 3/3" in line
    assert not (tmp_path / "merged" / "report.json").exists()


def test_a_shard_given_twice_is_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    copy = tmp_path / "copy-of-1"
    shutil.copytree(shards[0], copy)
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", [*shards, copy]) == EXIT_USAGE
    assert "shard 1/3 is given twice" in _error_line(capsys)


def test_shards_split_a_different_number_of_ways_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    other = _shards(config, tmp_path / "other", 2)
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", [*shards[:2], other[1]]) == EXIT_USAGE
    assert "split the same number of ways" in _error_line(capsys)


def test_shards_of_another_sampling_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, shards = three_shards
    changed = _write_config(tmp_path / "changed", samples=2)
    capsys.readouterr()
    assert _merge(changed, tmp_path / "merged", shards) == EXIT_USAGE
    assert "sampling" in _error_line(capsys)


def test_shards_of_another_prompt_list_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, shards = three_shards
    changed = _write_config(tmp_path / "work", extra_prompts='  - {id: added, text: "A new prompt."}\n')
    capsys.readouterr()
    assert _merge(changed, tmp_path / "merged", shards) == EXIT_USAGE
    assert "another version of" in _error_line(capsys)


def test_shards_of_another_config_id_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    renamed = config.with_name("other.yml")
    shutil.copy(config, renamed)
    capsys.readouterr()
    assert _merge(renamed, tmp_path / "merged", shards) == EXIT_USAGE
    assert "collected for config" in _error_line(capsys)


def _edit_manifest(shard_dir: Path, **changes: object) -> None:
    manifest = _manifest(shard_dir)
    manifest.update(changes)
    (shard_dir / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def test_shards_of_another_bundled_model_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    _edit_manifest(shards[1], model_sha256="0" * 64)
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert "bundled model" in _error_line(capsys)


def test_overlapping_or_incomplete_prompt_lists_are_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    first, second = _manifest(shards[0]), _manifest(shards[1])
    _edit_manifest(shards[1], prompt_ids=second["prompt_ids"] + first["prompt_ids"][:1])
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert "must not overlap" in _error_line(capsys)

    _edit_manifest(shards[1], prompt_ids=second["prompt_ids"][1:])
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert f"no shard holds prompt {second['prompt_ids'][0]!r}" in _error_line(capsys)


def test_a_directory_that_is_not_a_finished_shard_is_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    (shards[2] / MANIFEST).unlink()  # what a shard job killed halfway leaves
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert "run --shard i/n" in _error_line(capsys)

    (shards[2] / MANIFEST).write_text("{not json", encoding="utf-8")
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert "unreadable" in _error_line(capsys)


def test_a_shard_missing_a_stages_responses_is_refused(
    tmp_path: Path, three_shards: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shards = three_shards
    (shards[0] / "responses" / "rerun.jsonl").unlink()
    capsys.readouterr()
    assert _merge(config, tmp_path / "merged", shards) == EXIT_USAGE
    assert "did not record stage rerun" in _error_line(capsys)


def test_merge_needs_at_least_one_shard_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path / "work")
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", "--config", str(config), "--output-dir", str(tmp_path / "merged")])
    assert exit_info.value.code == EXIT_USAGE
    assert "SHARD_DIR" in capsys.readouterr().err
