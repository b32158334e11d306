"""Promise: whatever bytes or YAML structures users feed in, the loaders fail only with SimctError (exit 2, one
line), and responses written to the recorded format come back exactly, whatever text a model produced."""

from __future__ import annotations

import copy
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simct_ci.config import load_config
from simct_ci.errors import DataError, SimctError
from simct_ci.jsonl import append_line, read_jsonl, write_jsonl_atomic
from simct_ci.recorded import read_recorded, write_recorded
from simct_ci.responses import Response
from tests.test_config_errors import ENV, VALID, VALID_FILES

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
YAML_KEYS = st.text(max_size=12) | st.integers() | st.booleans() | st.none()
YAML_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(YAML_KEYS, children, max_size=4),
    max_leaves=20,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=15,
)
JSON_OBJECTS = st.dictionaries(st.text(), JSON_VALUES, max_size=5)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the files the valid config names (shared by every example of a property)."""
    directory = tmp_path_factory.mktemp("project")
    for name, content in VALID_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
    return directory


def paths_in(node: object, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys and indexes) into a nested dict/list, the root included."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths_in(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from paths_in(child, (*prefix, index))


@st.composite
def near_valid_configs(draw: st.DrawFn) -> object:
    """The valid config with one to three places replaced by anything, so the checks deep inside get reached."""
    config: object = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths_in(config))))
        replacement = draw(YAML_VALUES)
        if not path:
            config = replacement
            continue
        parent = config
        for part in path[:-1]:
            parent = parent[part]  # type: ignore[index]
        parent[path[-1]] = replacement  # type: ignore[index]
    return config


def assert_only_simct_errors(config_path: Path) -> None:
    try:
        load_config(config_path, env=ENV)
    except SimctError as error:
        assert len(str(error).splitlines()) == 1, str(error)


# (a) the config loader


@PROPERTY_SETTINGS
@given(document=YAML_VALUES)
def test_load_config_on_any_yaml_structure_raises_only_simct_errors(project: Path, document: object) -> None:
    config_path = project / "arbitrary.yml"
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert_only_simct_errors(config_path)


@PROPERTY_SETTINGS
@given(document=near_valid_configs())
def test_load_config_on_near_valid_configs_raises_only_simct_errors(project: Path, document: object) -> None:
    config_path = project / "near.yml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    assert_only_simct_errors(config_path)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(raw=b"a: !!float x\n")
@example(raw=b"a: &x [*x]\n")
@example(raw=b"[" * 2000)
@example(raw=b"version: 1\nreference: \x07\n")
def test_load_config_on_any_bytes_raises_only_simct_errors(project: Path, raw: bytes) -> None:
    config_path = project / "bytes.yml"
    config_path.write_bytes(raw)
    assert_only_simct_errors(config_path)


# (b) the JSONL readers


def recorded_like_lines() -> st.SearchStrategy[bytes]:
    """Lines that look like recorded responses, with the keys' values drawn from anything JSON holds."""
    line = st.fixed_dictionaries(
        {},
        optional={key: JSON_VALUES for key in ("prompt_id", "prompt", "response", "sample")},
    ).map(lambda row: json.dumps(row).encode())
    return st.lists(line | st.binary(max_size=20), max_size=6).map(b"\n".join)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=400) | recorded_like_lines())
@example(raw=b'{"a": 1}\n\xff\n')
@example(raw=b'{"sample": 1e999}\n')
@example(raw=b'{"sample": ' + b"9" * 5000 + b"}\n")
@example(raw=b"[" * 5000)
def test_jsonl_readers_on_any_bytes_raise_only_data_errors(project: Path, raw: bytes) -> None:
    path = project / "any.jsonl"
    path.write_bytes(raw)
    for read in (lambda: list(read_jsonl(path)), lambda: read_recorded(path)):
        try:
            read()
        except DataError as error:
            assert str(error).startswith(f"{path}:"), str(error)
            assert len(str(error).splitlines()) == 1


# (c) round trips

MODEL_TEXT = st.text()  # every code point but lone surrogates: NUL, newlines, emoji, CJK, U+2028...


@st.composite
def recorded_responses(draw: st.DrawFn) -> list[Response]:
    prompts = draw(st.dictionaries(st.text(min_size=1).filter(str.strip), MODEL_TEXT, max_size=4))
    responses = []
    for prompt_id, prompt in prompts.items():
        samples = draw(st.dictionaries(st.integers(0, 2**40), MODEL_TEXT, min_size=1, max_size=3))
        responses += [Response(prompt_id, prompt, text, sample) for sample, text in samples.items()]
    return draw(st.permutations(responses))


@PROPERTY_SETTINGS
@given(responses=recorded_responses())
@example(responses=[Response("p\x00", "line\nbreak\r\n", "NUL\x00 😀 中文 \u2028 \u0085 \t", 0)])
@example(responses=[Response("中文", "你好？", "\n", 1), Response("中文", "你好？", "", 0)])
def test_write_then_read_recorded_round_trips(tmp_path_factory: pytest.TempPathFactory, responses: list) -> None:
    path = tmp_path_factory.getbasetemp() / "round-trip" / "stage.jsonl"
    write_recorded(path, responses)
    expected = sorted(responses, key=lambda response: (response.prompt_id, response.sample))
    assert list(read_recorded(path)) == expected
    assert path.read_bytes().count(b"\n") == len(responses)  # one line per response, whatever the text


@PROPERTY_SETTINGS
@given(rows=st.lists(JSON_OBJECTS, max_size=5))
def test_append_line_then_read_jsonl_round_trips(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    path = tmp_path_factory.getbasetemp() / "appended.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            append_line(handle, row)
    assert [row for _, row in read_jsonl(path)] == rows


# the same promises, on examples worth naming


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n   \n{"b": 2}\n{"c": \n')
    rows = read_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    assert next(rows) == (4, {"b": 2})
    with pytest.raises(DataError, match=r"x\.jsonl:5: invalid JSON"):
        next(rows)


def test_missing_file_and_directory_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found$"):
        list(read_jsonl(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match=r": is a directory, expected a file$"):
        read_recorded(tmp_path)


def test_append_line_flushes_each_line(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        append_line(handle, {"response": "Paris\n😀"})
        # Another reader (or a crash right now) already sees the whole line.
        assert path.read_text(encoding="utf-8") == '{"response": "Paris\\n😀"}\n'


def test_lone_surrogates_are_written_escaped_not_crashing(tmp_path: Path) -> None:
    # A server may send "\ud800"; json gives a str that UTF-8 cannot encode.
    path = tmp_path / "odd.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        append_line(handle, {"response": "a\ud800b"})
    assert path.read_bytes() == b'{"response": "a\\ud800b"}\n'
    assert list(read_jsonl(path)) == [(1, {"response": "a\ud800b"})]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "responses" / "stage.jsonl"
    write_jsonl_atomic(path, [{"n": 1}])

    def rows_then_crash() -> Iterator[dict]:
        yield {"n": 2}
        raise KeyboardInterrupt  # a cancelled run, halfway through

    with pytest.raises(KeyboardInterrupt):
        write_jsonl_atomic(path, rows_then_crash())
    assert path.read_text() == '{"n": 1}\n'
    assert [entry.name for entry in path.parent.iterdir()] == ["stage.jsonl"]  # no temporary file left behind


def test_atomic_write_makes_a_file_other_users_can_read(tmp_path: Path) -> None:
    # The Docker action runs as root; the artifact upload after it does not.
    path = tmp_path / "report.jsonl"
    write_jsonl_atomic(path, [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b""
