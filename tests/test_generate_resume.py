"""Data generation survives being killed: a line cut mid-write costs that one record, never the ones after it."""

from __future__ import annotations

import json
from pathlib import Path

from simct_ci.training.dataset import load_records
from simct_ci.training.generate import existing_keys, open_for_append, read_records


def record(prompt: str, sample: int) -> dict:
    return {"prompt_id": prompt, "deployment": "reference", "sample": sample, "response": f"{prompt} {sample}"}


def line(prompt: str, sample: int) -> str:
    return json.dumps(record(prompt, sample)) + "\n"


def killed_file(path: Path) -> Path:
    """Two records, then one cut mid-write by a kill (no closing brace, no newline)."""
    path.write_text(line("a", 0) + line("a", 1) + line("b", 0)[:25], encoding="utf-8")
    return path


def test_a_resumed_run_starts_on_a_fresh_line_and_nothing_after_the_cut_is_lost(tmp_path: Path) -> None:
    path = killed_file(tmp_path / "responses-w0.jsonl")
    with open_for_append(path) as handle:  # what generate() does when it resumes
        handle.write(line("b", 0))
        handle.write(line("b", 1))
    assert [(r["prompt_id"], r["sample"]) for r in read_records(path)] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert existing_keys(tmp_path) == {
        ("a", "reference", 0),
        ("a", "reference", 1),
        ("b", "reference", 0),
        ("b", "reference", 1),
    }
    assert len(load_records([path])) == 4


def test_the_cut_record_is_not_counted_as_done(tmp_path: Path) -> None:
    killed_file(tmp_path / "responses-w0.jsonl")
    assert ("b", "reference", 0) not in existing_keys(tmp_path)


def test_appending_to_a_whole_file_adds_no_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "responses-w1.jsonl"
    path.write_text(line("a", 0), encoding="utf-8")
    with open_for_append(path) as handle:
        handle.write(line("a", 1))
    assert path.read_text(encoding="utf-8") == line("a", 0) + line("a", 1)
    with open_for_append(tmp_path / "new.jsonl") as handle:  # a first run creates the file
        handle.write(line("c", 0))
    assert (tmp_path / "new.jsonl").read_text(encoding="utf-8") == line("c", 0)
