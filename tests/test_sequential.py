"""Promise: sequential mode stops a stage early only on evidence of a difference, with alpha-spending boundaries
that keep the false-positive rate at alpha; a stopped stage's output holds exactly what was queried.

The boundaries are checked against published Lan-DeMets values and by Monte Carlo; the pipeline is run end to
end on the embedded demo (recorded stages) and against loopback OpenAI-compatible fakes that count requests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from simct_ci import compare, config, sequential
from simct_ci.cli import main
from simct_ci.compare import GateSettings
from simct_ci.config import load_config
from simct_ci.errors import EXIT_CONSISTENT, EXIT_INCONSISTENT
from simct_ci.model import BundledModel
from simct_ci.pipeline import compare_all, gate_settings, look_sizes
from simct_ci.recorded import read_recorded
from simct_ci.responses import StageResponses
from simct_ci.sequential import OBRIEN_FLEMING, POCOCK, boundaries, nominal_alphas, spent
from simct_ci.verdicts import CONSISTENT, INCONSISTENT
from tests.support import fault_server as fs
from tests.support.fault_server import FaultServer

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "simct_ci" / "demo"
FIVE = (0.2, 0.4, 0.6, 0.8, 1.0)

# Published one-sided boundaries, alpha = 0.025, five equally spaced looks (Lan & DeMets 1983; Jennison &
# Turnbull 2000, table 7.6; the same as gsDesign's sfLDOF / sfLDPocock).
OBRIEN_FLEMING_FIVE = (4.877, 3.357, 2.680, 2.290, 2.031)
POCOCK_FIVE = (2.438, 2.427, 2.410, 2.397, 2.386)


# --- boundaries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spending", "published"), [(OBRIEN_FLEMING, OBRIEN_FLEMING_FIVE), (POCOCK, POCOCK_FIVE)])
def test_boundaries_match_published_lan_demets_values(spending: str, published: tuple[float, ...]) -> None:
    assert boundaries(0.025, FIVE, spending) == pytest.approx(published, abs=1e-3)
    thresholds = nominal_alphas(0.025, FIVE, spending)
    assert thresholds == pytest.approx(tuple(stats.norm.sf(c) for c in published), rel=5e-3)


@pytest.mark.parametrize("spending", sequential.SPENDING_FUNCTIONS)
def test_a_single_look_is_the_fixed_design_test(spending: str) -> None:
    assert boundaries(0.025, [1.0], spending) == pytest.approx((1.959964,), abs=1e-5)
    assert nominal_alphas(0.05, [1.0], spending) == pytest.approx((0.05,))


@pytest.mark.parametrize("spending", sequential.SPENDING_FUNCTIONS)
def test_spending_is_increasing_and_reaches_alpha(spending: str) -> None:
    grid = np.linspace(0.0, 1.0, 101)
    spent_at = [spent(0.025, t, spending) for t in grid]
    assert spent_at[0] == 0.0
    assert spent_at[-1] == pytest.approx(0.025, rel=1e-12)
    assert all(b >= a for a, b in itertools.pairwise(spent_at))
    # Strictly so wherever the amount is representable (O'Brien-Fleming spends < 1e-16 before t = 0.09).
    positive = [value for value in spent_at if value > 0]
    assert len(positive) >= 90 and all(b > a for a, b in itertools.pairwise(positive))
    assert spent(0.025, 1.5, spending) == pytest.approx(0.025)  # past the plan: nothing more to spend


def test_obrien_fleming_spends_less_early_than_pocock() -> None:
    assert spent(0.025, 0.2, OBRIEN_FLEMING) < 1e-5 < spent(0.025, 0.2, POCOCK)
    of, pocock = boundaries(0.025, FIVE, OBRIEN_FLEMING), boundaries(0.025, FIVE, POCOCK)
    assert of[0] > pocock[0] and of[-1] < pocock[-1]  # hard to stop early, cheaper at the end


@pytest.mark.parametrize(
    "fractions",
    [[], [0.5, 0.5, 1.0], [0.6, 0.4, 1.0], [0.0, 1.0], [0.5, 1.2], [-0.2, 1.0], [math.nan]],
    ids=["empty", "repeated", "decreasing", "zero", "past one", "negative", "nan"],
)
def test_bad_fractions_raise_value_error(fractions: list[float]) -> None:
    with pytest.raises(ValueError, match="look fractions"):
        boundaries(0.025, fractions)


def test_unknown_spending_function_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown spending function"):
        boundaries(0.025, [0.5, 1.0], "haybittle-peto")


def test_the_config_and_the_engine_agree_on_names() -> None:
    assert config.SPENDING_FUNCTIONS == sequential.SPENDING_FUNCTIONS
    assert config.GATE_MODES == (compare.DIFFERENCE, compare.EQUIVALENCE) == compare.MODES
    assert config.GATE_TESTS == (compare.T_TEST, compare.MMD_TEST) == compare.TESTS
    assert config.Gate().test == GateSettings().test == compare.T_TEST
    assert config.Sequential().spending in sequential.SPENDING_FUNCTIONS
    assert config.Gate().mode == GateSettings().mode == compare.DIFFERENCE
    assert config.Gate().margin == GateSettings().margin


# --- Monte Carlo: the boundaries spend exactly alpha ---------------------------------------------------------

PATHS = 20_000


def _null_z_paths(fractions: tuple[float, ...], seed: int) -> np.ndarray:
    """Interim z-statistics of PATHS null Brownian paths observed at `fractions`: Z_k = W(t_k) / sqrt(t_k)."""
    rng = np.random.default_rng(seed)
    steps = np.diff((0.0, *fractions))
    increments = rng.standard_normal((PATHS, len(fractions))) * np.sqrt(steps)
    return np.cumsum(increments, axis=1) / np.sqrt(fractions)


def _monte_carlo_slack(p: float) -> float:
    return 4.0 * math.sqrt(p * (1 - p) / PATHS) + 1e-4


@pytest.mark.parametrize(
    ("spending", "fractions"),
    [(OBRIEN_FLEMING, FIVE), (POCOCK, FIVE), (OBRIEN_FLEMING, (0.3, 0.45, 1.0)), (POCOCK, (0.25, 0.7, 0.9, 1.0))],
    ids=["obf-5", "pocock-5", "obf-unequal", "pocock-unequal"],
)
def test_crossing_probability_under_the_null_is_alpha(spending: str, fractions: tuple[float, ...]) -> None:
    alpha = 0.025
    z = _null_z_paths(fractions, seed=7)
    crossed = z >= np.asarray(boundaries(alpha, fractions, spending))
    first_by_look = np.cumsum(crossed, axis=1) > 0  # crossed at this look or an earlier one
    for k, fraction in enumerate(fractions):  # the cumulative crossing rate follows the spending function
        expected = spent(alpha, fraction, spending)
        assert first_by_look[:, k].mean() == pytest.approx(expected, abs=_monte_carlo_slack(expected))
    assert crossed.any(axis=1).mean() == pytest.approx(alpha, abs=_monte_carlo_slack(alpha))


def test_testing_every_look_at_the_full_alpha_inflates_false_positives() -> None:
    # Why spending is needed: five looks at the fixed-design 1.96 reject a null about 7% of the time, not 2.5%.
    z = _null_z_paths(FIVE, seed=11)
    naive = (z >= stats.norm.isf(0.025)).any(axis=1).mean()
    spending = (z >= np.asarray(boundaries(0.025, FIVE))).any(axis=1).mean()
    assert naive > 0.025 + 10 * math.sqrt(0.025 * 0.975 / PATHS)  # 0.06 and more, far outside MC error
    assert 0.06 < naive < 0.085
    assert spending == pytest.approx(0.025, abs=_monte_carlo_slack(0.025))


# --- look sizes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("looks", range(2, config.MAX_LOOKS + 1))
@pytest.mark.parametrize("n_prompts", [*range(1, 25), 29, 97, 100, 1000])
def test_look_sizes_are_near_equal_batches_ending_with_every_prompt(n_prompts: int, looks: int) -> None:
    sizes = look_sizes(n_prompts, looks)
    assert sizes[-1] == n_prompts
    assert sizes[0] >= 1
    assert all(b > a for a, b in itertools.pairwise(sizes))
    assert len(sizes) == min(n_prompts, looks)  # fewer prompts than looks: one look per prompt, no empty batch
    batches = np.diff([0, *sizes])
    assert batches.max() - batches.min() <= 1


def test_look_sizes_known_values() -> None:
    assert look_sizes(29, 3) == [10, 19, 29]
    assert look_sizes(30, 3) == [10, 20, 30]
    assert look_sizes(2, 4) == [1, 2]
    assert look_sizes(1, 10) == [1]


# --- the pipeline on the embedded demo (recorded stages) -----------------------------------------------------


def _demo_project(tmp_path: Path, gate: dict, directory: str = "project") -> Path:
    project = tmp_path / directory
    shutil.copytree(DEMO, project)
    path = project / "simct.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["gate"] = {**document["gate"], **gate}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _cli(config_path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simct_ci", "run", "--config", str(config_path), "--output-dir", str(out)],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "CI": "true", "HOME": str(out.parent)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _stages(out: Path) -> dict[str, dict]:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {stage["stage"]: stage for stage in report["stages"]}


def _demo_prompt_ids() -> list[str]:
    return [json.loads(line)["id"] for line in (DEMO / "prompts.jsonl").read_text().splitlines() if line.strip()]


def _ids_and_lines(path: Path) -> tuple[list[str], int]:
    responses = read_recorded(path)
    return list(dict.fromkeys(r.prompt_id for r in responses)), len(responses)


@pytest.fixture(scope="module")
def model() -> BundledModel:
    return BundledModel.load()


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """The demo once as shipped and once with three looks, through `python -m simct_ci run`."""
    root = tmp_path_factory.mktemp("demo")
    runs = {}
    for name, gate in (("fixed", {}), ("sequential", {"sequential": {"looks": 3}})):
        config_path = _demo_project(root, gate, name)
        out = root / f"{name}-out"
        runs[name] = (_cli(config_path, out), out)
    return runs


def test_demo_sequential_stops_the_quantized_stage_early(demo_runs: dict) -> None:
    completed, out = demo_runs["sequential"]
    assert completed.returncode == EXIT_INCONSISTENT, completed.stderr
    stage = _stages(out)["quantized-q2_k"]
    note = stage["model_wise"]["note"]
    assert stage["verdict"] == INCONSISTENT
    match = re.search(r"stopped at look (\d) of 3, after (\d+) of 29 prompts", note)
    assert match, note
    look, n_in = int(match[1]), int(match[2])
    assert look < 3 and n_in == look_sizes(29, 3)[look - 1] == stage["model_wise"]["n_prompts"]
    assert f"|look:{look}@{n_in / 29:.2f},obrien-fleming|" in stage["signature"]
    assert len(stage["response_wise"]["prompts"]) == n_in
    # Its responses file holds exactly the prompts queried before it stopped: the first n_in, 3 samples each.
    ids, lines = _ids_and_lines(out / "responses" / "quantized-q2_k.jsonl")
    assert sorted(ids) == sorted(_demo_prompt_ids()[:n_in]) and lines == n_in * 3
    assert "stopped at look" in completed.stdout


def test_demo_sequential_decides_the_rerun_on_every_prompt_at_the_last_look(demo_runs: dict) -> None:
    _, out = demo_runs["sequential"]
    _, fixed_out = demo_runs["fixed"]
    stage, fixed = _stages(out)["rerun"], _stages(fixed_out)["rerun"]
    assert stage["verdict"] == fixed["verdict"] == CONSISTENT
    assert stage["model_wise"]["note"].endswith("sequential: decided at the last look, on all 29 prompts")
    assert stage["model_wise"]["n_prompts"] == 29
    assert "|look:3@1.00,obrien-fleming|" in stage["signature"]
    assert "look:" not in fixed["signature"]
    # Decided on every prompt, it is the same test as without sequential mode: the same statistic and p-value.
    assert stage["model_wise"]["p_value"] == pytest.approx(fixed["model_wise"]["p_value"])
    assert stage["model_wise"]["components"] == fixed["model_wise"]["components"]
    ids, lines = _ids_and_lines(out / "responses" / "rerun.jsonl")
    assert sorted(ids) == sorted(_demo_prompt_ids()) and lines == 29 * 3
    assert _ids_and_lines(out / "responses" / "bare-metal.jsonl")[1] == 29 * 6
    assert not list((out / "responses").glob("*part*"))  # no part file is left behind
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == INCONSISTENT


def test_demo_stops_at_the_first_look_that_crosses(demo_runs: dict, model: BundledModel) -> None:
    """Recompute every look up to the stop in-process: the one combined test spends the whole alpha over the looks,
    and the stage stops at the first look whose p-value is below that look's nominal threshold."""
    _, out = demo_runs["sequential"]
    stage = _stages(out)["quantized-q2_k"]
    look = int(re.search(r"stopped at look (\d) of 3", stage["model_wise"]["note"])[1])  # whichever the run says
    cfg = load_config(_demo_project(out.parent, {"sequential": {"looks": 3}}, "recompute"))
    sizes = look_sizes(len(cfg.prompts), 3)
    fractions = tuple(size / len(cfg.prompts) for size in sizes)
    thresholds = nominal_alphas(cfg.gate.alpha, fractions)  # the full alpha: one test, no Bonferroni split
    assert thresholds[-1] > cfg.gate.alpha / 2
    responses = {s.name: StageResponses(s.name, read_recorded(s.responses)) for s in cfg.stages}
    candidate = [cfg.stage("quantized-q2_k")]
    p_values, verdicts = [], []
    for k in range(look):
        in_hand = replace(cfg, prompts=cfg.prompts[: sizes[k]])
        (comparison,) = compare_all(in_hand, responses, model, candidate, gate_settings(cfg, fractions[: k + 1]))
        p_values.append(comparison.model_wise.p_value)
        verdicts.append(comparison.verdict)
        assert nominal_alphas(cfg.gate.alpha, fractions[: k + 1])[-1] == pytest.approx(thresholds[k])
        assert (comparison.model_wise.p_value < thresholds[k]) == (comparison.verdict == INCONSISTENT)
    assert verdicts == [CONSISTENT] * (look - 1) + [INCONSISTENT]
    assert all(p >= threshold for p, threshold in zip(p_values[:-1], thresholds, strict=False))
    assert p_values[-1] < thresholds[look - 1]
    # The run reports the stopping look's own test: the combined p-value, not a component's.
    assert stage["model_wise"]["p_value"] == pytest.approx(p_values[-1])
    assert stage["model_wise"]["p_value"] not in [
        pytest.approx(c["p_value"]) for c in stage["model_wise"]["components"]
    ]


def test_fewer_prompts_than_looks_runs_one_look_per_prompt(tmp_path: Path) -> None:
    config_path = _demo_project(tmp_path, {"min_prompts": 2, "sequential": {"looks": 5}})
    prompts = config_path.parent / "prompts.jsonl"
    prompts.write_text("\n".join(prompts.read_text().splitlines()[:3]) + "\n")
    out = tmp_path / "out"
    code = main(["run", "--config", str(config_path), "--output-dir", str(out)])
    assert code == EXIT_INCONSISTENT
    stages = _stages(out)
    assert [stages[name]["verdict"] for name in ("rerun", "quantized-q2_k")] == [CONSISTENT, INCONSISTENT]
    for stage in stages.values():  # three looks of one prompt each, not five (two of them empty)
        assert "|look:3@1.00,obrien-fleming|" in stage["signature"]
        assert stage["model_wise"]["note"].endswith("decided at the last look, on all 3 prompts")
        assert stage["model_wise"]["n_prompts"] == 3


def test_a_recorded_stage_inside_the_output_dir_is_read_not_overwritten(tmp_path: Path) -> None:
    """A baseline kept in OUT/responses/ (a frozen earlier run, or a merge) must survive a sequential run."""
    config_path = _demo_project(tmp_path, {"sequential": {"looks": 3}})
    out = config_path.parent / "out"
    (out / "responses").mkdir(parents=True)
    baseline = out / "responses" / "bare-metal.jsonl"
    shutil.copy(config_path.parent / "bare-metal.jsonl", baseline)
    before = hashlib.sha256(baseline.read_bytes()).hexdigest()
    document = yaml.safe_load(config_path.read_text())
    document["stages"]["bare-metal"] = {"responses": "out/responses/bare-metal.jsonl"}
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["run", "--config", str(config_path), "--output-dir", str(out)]) == EXIT_INCONSISTENT
    assert hashlib.sha256(baseline.read_bytes()).hexdigest() == before
    rerun = _stages(out)["rerun"]
    assert rerun["verdict"] == CONSISTENT and rerun["model_wise"]["n_prompts"] == 29
    assert rerun["missing_prompts"] == []


def test_a_stage_named_like_a_part_file_does_not_collide(tmp_path: Path) -> None:
    """Stage names may hold dots: `rerun.part` is a valid name, and its file must not be another stage's scratch."""
    config_path = _demo_project(tmp_path, {"sequential": {"looks": 3}})
    document = yaml.safe_load(config_path.read_text())
    document["stages"]["rerun.part"] = {"responses": "rerun.jsonl"}
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", "--config", str(config_path), "--output-dir", str(out)]) == EXIT_INCONSISTENT
    stages = _stages(out)
    for name in ("rerun", "rerun.part"):
        assert stages[name]["verdict"] == CONSISTENT and stages[name]["model_wise"]["n_prompts"] == 29
        assert _ids_and_lines(out / "responses" / f"{name}.jsonl")[1] == 29 * 3
    assert stages["rerun"]["model_wise"]["p_value"] == stages["rerun.part"]["model_wise"]["p_value"]


# --- the pipeline against live loopback endpoints ------------------------------------------------------------

N_PROMPTS, SAMPLES, LOOKS = 30, 2, 3
LIVE_PROMPTS = [f"Question {i}: name a colour{' and say why' * (i % 4)}." for i in range(N_PROMPTS)]


def _live_config(tmp_path: Path, stages: dict[str, str]) -> Path:
    """Live stages (name -> base URL), the first the reference. With no seed every sample of one endpoint is the
    fault server's deterministic echo, so two echoing endpoints are the same deployment."""
    prompts = "\n".join(f'  - {{id: q{i:02d}, text: "{text}"}}' for i, text in enumerate(LIVE_PROMPTS))
    body = "\n".join(f"  {name}: {{base_url: {url}, model: smollm2, max_retries: 1}}" for name, url in stages.items())
    path = tmp_path / "simct.yml"
    path.write_text(
        f"""version: 1
reference: {next(iter(stages))}
stages:
{body}
prompts:
{prompts}
sampling: {{samples: {SAMPLES}, temperature: 0.7, max_tokens: 16, seed: null}}
gate: {{alpha: 0.05, min_prompts: 10, sequential: {{looks: {LOOKS}}}}}
"""
    )
    return path


def _different_server() -> FaultServer:
    """A deployment that answers every prompt with the same short text: clearly not the echoing reference."""
    server = FaultServer()
    server.default = fs.text_parts()
    return server


def test_a_live_stage_that_differs_stops_early_and_saves_requests(tmp_path: Path) -> None:
    with FaultServer() as reference, FaultServer() as same, _different_server() as different:
        stages = {"bare-metal": reference.url, "gateway": same.url, "quantized": different.url}
        config_path = _live_config(tmp_path, stages)
        out = tmp_path / "out"
        # Leftovers of an earlier run in the same output dir: stale answers, a broken file, a batch's scratch file.
        (out / "responses").mkdir(parents=True)
        stale = [
            {"prompt_id": f"q{i:02d}", "prompt": text, "response": "STALE from an earlier run", "sample": s}
            for i, text in enumerate(LIVE_PROMPTS)
            for s in range(SAMPLES)
        ]
        (out / "responses" / "quantized.jsonl").write_text("".join(json.dumps(row) + "\n" for row in stale))
        (out / "responses" / "gateway.jsonl").write_text("not json at all\n")  # a file cut short by a crash
        (out / "responses" / "quantized.jsonl.part").write_text(json.dumps(stale[-1]) + "\n")  # a crashed batch
        code = main(["run", "--config", str(config_path), "--output-dir", str(out), "--no-cache"])
        counts = {name: len(server.requests) for name, server in zip(stages, (reference, same, different), strict=True)}
    first = look_sizes(N_PROMPTS, LOOKS)[0]
    assert code == EXIT_INCONSISTENT
    report = _stages(out)
    quantized, gateway = report["quantized"], report["gateway"]
    assert quantized["verdict"] == INCONSISTENT
    assert "stopped at look 1 of 3" in quantized["model_wise"]["note"]
    assert counts["quantized"] == first * SAMPLES < N_PROMPTS * SAMPLES
    # The stage still open is queried on every prompt and decided at the last look; so is the reference.
    assert gateway["verdict"] == CONSISTENT and "decided at the last look" in gateway["model_wise"]["note"]
    assert counts["gateway"] == N_PROMPTS * SAMPLES
    assert counts["bare-metal"] == N_PROMPTS * 2 * SAMPLES
    # Nothing of the earlier run is mixed in: the stopped stage's file holds this run's first batch only.
    responses = read_recorded(out / "responses" / "quantized.jsonl")
    assert len(responses) == first * SAMPLES
    assert {r.prompt_id for r in responses} == {f"q{i:02d}" for i in range(first)}
    assert all(r.response == "Paris" for r in responses)
    assert len(read_recorded(out / "responses" / "gateway.jsonl")) == N_PROMPTS * SAMPLES
    assert sorted(path.name for path in (out / "responses").iterdir()) == [
        "bare-metal.jsonl",
        "gateway.jsonl",
        "quantized.jsonl",
    ]


def test_the_reference_is_not_queried_once_every_stage_is_decided(tmp_path: Path) -> None:
    with FaultServer() as reference, _different_server() as different:
        config_path = _live_config(tmp_path, {"bare-metal": reference.url, "quantized": different.url})
        out = tmp_path / "out"
        code = main(["run", "--config", str(config_path), "--output-dir", str(out), "--no-cache"])
        counts = (len(reference.requests), len(different.requests))
    first = look_sizes(N_PROMPTS, LOOKS)[0]
    assert code == EXIT_INCONSISTENT
    assert "stopped at look 1 of 3" in _stages(out)["quantized"]["model_wise"]["note"]
    assert counts == (first * 2 * SAMPLES, first * SAMPLES)
    assert len(read_recorded(out / "responses" / "bare-metal.jsonl")) == first * 2 * SAMPLES


def test_a_consistent_live_stage_is_only_called_consistent_on_every_prompt(tmp_path: Path) -> None:
    """Early stopping is one-sided: a stage that looks the same at the first look is still queried to the end."""
    with FaultServer() as reference, FaultServer() as same:
        config_path = _live_config(tmp_path, {"bare-metal": reference.url, "gateway": same.url})
        out = tmp_path / "out"
        code = main(["run", "--config", str(config_path), "--output-dir", str(out), "--no-cache"])
        counts = (len(reference.requests), len(same.requests))
    assert code == EXIT_CONSISTENT
    gateway = _stages(out)["gateway"]
    assert gateway["model_wise"]["note"].endswith("sequential: decided at the last look, on all 30 prompts")
    assert f"|look:{LOOKS}@1.00,obrien-fleming|" in gateway["signature"]
    assert counts == (N_PROMPTS * 2 * SAMPLES, N_PROMPTS * SAMPLES)
