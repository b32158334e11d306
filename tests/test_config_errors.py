"""Promise: a bad config, prompts file or recorded file stops the run with ONE line that names the key or the
file and line, as a SimctError (exit 2) -- never a traceback, never the API key.

Each case starts from the issue's valid example and breaks one thing. `observe()` is also what
docs/reliability.md (Bad config) was generated from, so the table there shows real messages.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from simct_ci.config import Config, Sequential, load_config
from simct_ci.errors import EXIT_USAGE, ConfigError, DataError, SimctError
from simct_ci.recorded import read_recorded

SECRET = "sk-test-5f1e0c9a"
ENV = {"REFERENCE_API_KEY": SECRET, "EMPTY_KEY": "", "SPACED_KEY": "sk one"}

VALID: dict = {
    "version": 1,
    "reference": "bare-metal",
    "stages": {
        "bare-metal": {"base_url": "http://127.0.0.1:8080/v1", "model": "smollm2", "api_key_env": "REFERENCE_API_KEY"},
        "quantized": {"base_url": "http://127.0.0.1:8081/v1", "model": "smollm2-q3"},
        "gateway": {"responses": "recorded/gateway.jsonl"},
    },
    "prompts": [
        {"id": "capital", "text": "What is the capital of France?", "type": "closed"},
        {"file": "prompts/more.jsonl"},
    ],
    "sampling": {"samples": 3, "temperature": 0.7, "max_tokens": 256, "seed": 1},
    "gate": {"alpha": 0.05},
}
VALID_FILES: dict[str, bytes] = {
    "recorded/gateway.jsonl": b'{"prompt_id": "capital", "prompt": "What is the capital of France?", '
    b'"response": "Paris.", "sample": 0}\n',
    "prompts/more.jsonl": b'{"id": "haiku", "text": "Write a haiku about rain."}\n'
    b'{"id": "sum", "text": "What is 2 + 2?", "type": "closed"}\n',
}


@dataclass(frozen=True)
class Edit:
    """One change to the valid config, and how it reads in docs/reliability.md (Bad config)."""

    description: str
    apply: Callable[[dict], None]


def as_yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("...\n").strip()


def at(dotted: str, value: object) -> Edit:
    """Set a key of the valid config; list indexes are numbers (one past the end appends): at("prompts.0.text", "")."""

    def apply(config: dict) -> None:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list) and int(last) == len(node):
            node.append(value)
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return Edit(f"set `{dotted}` to `{as_yaml(value)}`", apply)


def drop(dotted: str) -> Edit:
    def apply(config: dict) -> None:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[last]

    return Edit(f"remove `{dotted}`", apply)


def stage(name: object, body: object) -> Edit:
    """Add a stage whose name would not survive at()'s dotted path."""

    def apply(config: dict) -> None:
        config["stages"][name] = body

    return Edit(f"add stage `{as_yaml(name)}: {as_yaml(body)}`", apply)


@dataclass(frozen=True)
class Case:
    """One bad input: an edit of the valid config (or raw config bytes), extra files, what must be named."""

    id: str
    names: str  # the key or file:line the message must contain
    edit: Edit | None = None
    raw: bytes | None = None  # the whole config file instead of the edited valid one
    files: dict[str, bytes | None] = field(default_factory=dict)  # None: make a directory there
    error: type[SimctError] = ConfigError
    load: str = "simct.yml"  # the file handed to load_config (or read_recorded)
    recorded: bool = False  # read with read_recorded instead of load_config
    change: str = ""  # how the input differs from the base, for the docs (edits describe themselves)


CONFIG_CASES = [
    # the file itself
    Case("config file not found", "missing.yml: config file not found", load="missing.yml"),
    Case("config path is a directory", "recorded: is a directory", load="recorded"),
    Case("config not valid UTF-8", "simct.yml:2: not valid UTF-8", raw=b"version: 1\nreference: caf\xe9\n"),
    Case(
        "malformed YAML: unclosed bracket", "simct.yml:3: invalid YAML", raw=b"version: 1\nstages: [a, b\nprompts: x\n"
    ),
    Case("malformed YAML: tab indentation", "simct.yml:3: invalid YAML", raw=b"version: 1\nstages:\n\tquantized: {}\n"),
    Case(
        "malformed YAML: bad indentation", "simct.yml:3: invalid YAML", raw=b"version: 1\nreference: a\n  stages: b\n"
    ),
    Case("duplicate key in YAML", "duplicate key 'quantized'", raw=b"stages:\n  quantized: {}\n  quantized: {}\n"),
    Case("python tag in YAML", "simct.yml:1: invalid YAML", raw=b"version: !!python/object/apply:os.system [ls]\n"),
    Case(
        "unconvertible tagged value",
        "simct.yml:2: invalid YAML: cannot read the value",
        raw=b"version: 1\nreference: !!int one\n",
    ),
    Case("NUL byte in YAML", "simct.yml:2: invalid YAML", raw=b"version: 1\nreference: a\x00b\n"),
    Case("empty config", "simct.yml: is empty", raw=b""),
    Case("top level is a list", "simct.yml: must be a mapping", raw=b"- version: 1\n"),
    Case("top level is a string", "simct.yml: must be a mapping", raw=b"just some text\n"),
    # keys
    Case("unknown top-level key", "stage: unknown key (did you mean 'stages'?)", at("stage", {})),
    Case("boolean key (YAML on:)", "simct.yml: [true]: keys must be strings", raw=b"version: 1\non: push\n"),
    Case(
        "unknown stage key",
        "stages.quantized.base_ur: unknown key (did you mean 'base_url'?)",
        at("stages.quantized.base_ur", "x"),
    ),
    Case(
        "unknown sampling key",
        "sampling.temprature: unknown key (did you mean 'temperature'?)",
        at("sampling.temprature", 1),
    ),
    Case("unknown gate key", "gate.significance: unknown key (known keys: test, alpha,", at("gate.significance", 0.05)),
    Case("unknown prompt key", "prompts[0].txt: unknown key (did you mean 'text'?)", at("prompts.0.txt", "x")),
    Case(
        "API key written in the config",
        "stages.quantized.api_key: never put a key",
        at("stages.quantized.api_key", SECRET),
    ),
    # version
    Case("version missing", "version: missing", drop("version")),
    Case("version 2", "version: must be 1", at("version", 2)),
    Case(
        "version as a string",
        "version: must be 1, the config version this simct-action reads, got '1'",
        at("version", "1"),
    ),
    Case("version true (bool is not an int)", "version: must be 1", at("version", True)),
    Case("version 1.0 (a float)", "version: must be 1", at("version", 1.0)),
    # stages
    Case("stages missing", "stages: missing", drop("stages")),
    Case("stages is a list", "stages: must be a mapping", at("stages", ["bare-metal", "quantized"])),
    Case(
        "only one stage", "stages: needs at least 2 stages", at("stages", {"bare-metal": VALID["stages"]["bare-metal"]})
    ),
    Case("stage name with a slash", "stages['../etc']: stage names may hold only", stage("../etc", {"responses": "x"})),
    Case(
        "stage name with a space",
        "stages['my stage']: stage names may hold only",
        stage("my stage", {"responses": "x"}),
    ),
    Case("stage name of dots only", "stages['..']: stage names may hold only", stage("..", {"responses": "x"})),
    Case("stage name is a number", "stages[3]: stage names must be strings", stage(3, {"responses": "x"})),
    Case(
        "stage names differ only in case",
        "stages.Quantized: differs from stage 'quantized' only in case",
        at("stages.Quantized", {"responses": "recorded/gateway.jsonl"}),
    ),
    Case("empty stage", "stages.quantized: is empty", at("stages.quantized", None)),
    Case(
        "stage is a string", "stages.quantized: must be a mapping", at("stages.quantized", "http://127.0.0.1:8081/v1")
    ),
    Case(
        "stage with both base_url and responses",
        "stages.quantized: has both base_url and responses",
        at("stages.quantized.responses", "recorded/gateway.jsonl"),
    ),
    Case(
        "stage with neither base_url nor responses",
        "stages.quantized: needs base_url",
        drop("stages.quantized.base_url"),
    ),
    Case("live stage without model", "stages.quantized.model: missing", drop("stages.quantized.model")),
    Case(
        "model is a number",
        "stages.quantized.model: must be a string, got 1.5 (put it in quotes",
        at("stages.quantized.model", 1.5),
    ),
    Case("model is empty", "stages.quantized.model: must be a non-empty string", at("stages.quantized.model", " ")),
    Case(
        "api not chat/completion",
        "stages.quantized.api: must be 'chat' or 'completion', got 'chatt'",
        at("stages.quantized.api", "chatt"),
    ),
    Case(
        "api_key_env unset",
        "stages.quantized.api_key_env: environment variable UNSET_KEY is not set",
        at("stages.quantized.api_key_env", "UNSET_KEY"),
    ),
    Case(
        "api_key_env empty",
        "stages.quantized.api_key_env: environment variable EMPTY_KEY is empty",
        at("stages.quantized.api_key_env", "EMPTY_KEY"),
    ),
    Case(
        "api key holds a space",
        "stages.quantized.api_key_env: environment variable SPACED_KEY must hold printable",
        at("stages.quantized.api_key_env", "SPACED_KEY"),
    ),
    Case(
        "api_key_env not a variable name",
        "stages.quantized.api_key_env: must be the name of an environment variable",
        at("stages.quantized.api_key_env", "my-key"),
    ),
    Case(
        "system_prompt is a list",
        "stages.quantized.system_prompt: must be a string",
        at("stages.quantized.system_prompt", ["a"]),
    ),
    Case(
        "URL with another scheme",
        "stages.quantized.base_url: must be an http(s) URL with a host, got 'ftp:/x'",
        at("stages.quantized.base_url", "ftp:/x"),
    ),
    Case(
        "URL without host",
        "stages.quantized.base_url: must be an http(s) URL with a host",
        at("stages.quantized.base_url", "http:///v1"),
    ),
    Case(
        "URL without scheme",
        "stages.quantized.base_url: must be an http(s) URL",
        at("stages.quantized.base_url", "127.0.0.1:8081/v1"),
    ),
    Case(
        "URL with a space",
        "stages.quantized.base_url: must be an http(s) URL",
        at("stages.quantized.base_url", "http://127.0.0.1:8081 /v1"),
    ),
    Case(
        "URL with a bad port",
        "stages.quantized.base_url: must be an http(s) URL",
        at("stages.quantized.base_url", "http://127.0.0.1:99999/v1"),
    ),
    Case(
        "URL with credentials",
        "stages.quantized.base_url: must not hold credentials",
        at("stages.quantized.base_url", f"http://user:{SECRET}@127.0.0.1/v1"),
    ),
    Case(
        "URL with a fragment",
        "stages.quantized.base_url: must not have a #fragment",
        at("stages.quantized.base_url", "http://h/v1#x"),
    ),
    Case("URL is a number", "stages.quantized.base_url: must be a string", at("stages.quantized.base_url", 8081)),
    Case(
        "live-only key on a recorded stage", "stages.gateway.model: only a live stage", at("stages.gateway.model", "m")
    ),
    Case(
        "concurrency 0",
        "stages.quantized.concurrency: must be an integer >= 1, got 0",
        at("stages.quantized.concurrency", 0),
    ),
    Case(
        "concurrency 2.5",
        "stages.quantized.concurrency: must be an integer >= 1, got 2.5",
        at("stages.quantized.concurrency", 2.5),
    ),
    Case(
        "timeout 0",
        "stages.quantized.timeout: must be a number of seconds > 0, got 0",
        at("stages.quantized.timeout", 0),
    ),
    Case(
        "timeout as text",
        "stages.quantized.timeout: must be a number of seconds > 0, got '30s'",
        at("stages.quantized.timeout", "30s"),
    ),
    Case(
        "max_retries -1",
        "stages.quantized.max_retries: must be an integer >= 0, got -1",
        at("stages.quantized.max_retries", -1),
    ),
    # recorded files named by the config
    Case(
        "recorded file missing",
        "stages.gateway.responses: recorded/nowhere.jsonl: file not found",
        at("stages.gateway.responses", "recorded/nowhere.jsonl"),
    ),
    Case(
        "recorded path is a directory",
        "stages.gateway.responses: recorded/dir.jsonl: is a directory",
        at("stages.gateway.responses", "recorded/dir.jsonl"),
        files={"recorded/dir.jsonl": None},
    ),
    Case(
        "recorded path under a file",
        "stages.gateway.responses: recorded/gateway.jsonl/x.jsonl: cannot read: Not a directory",
        at("stages.gateway.responses", "recorded/gateway.jsonl/x.jsonl"),
    ),
    Case(
        "recorded path is empty",
        "stages.gateway.responses: must be a non-empty string",
        at("stages.gateway.responses", ""),
    ),
    # reference
    Case("reference missing", "reference: missing", drop("reference")),
    Case(
        "reference names no stage",
        "reference: names no stage: 'bare_metal' (did you mean 'bare-metal'?)",
        at("reference", "bare_metal"),
    ),
    Case(
        "reference far from any stage",
        "reference: names no stage: 'prod' (stages: bare-metal, quantized, gateway)",
        at("reference", "prod"),
    ),
    Case("reference is a list", "reference: must be the name of a stage", at("reference", ["bare-metal"])),
    # prompts
    Case("prompts missing", "prompts: missing", drop("prompts")),
    Case("prompts empty", "prompts: is empty", at("prompts", [])),
    Case(
        "prompts is a mapping", "prompts: must be a list", at("prompts", {"capital": "What is the capital of France?"})
    ),
    Case(
        "prompt entry is a string", "prompts[0]: must be a mapping", at("prompts.0", "What is the capital of France?")
    ),
    Case(
        "prompt with neither text nor file",
        "prompts[0]: needs text (an inline prompt) or file",
        at("prompts.0", {"id": "capital"}),
    ),
    Case("prompt with both text and file", "prompts[1]: has both file and text", at("prompts.1.text", "x")),
    Case("prompt without id", "prompts[0].id: missing", at("prompts.0", {"text": "Hi?"})),
    Case(
        "prompt id is a number",
        "prompts[0].id: must be a non-empty string, got 1 (put it in quotes",
        at("prompts.0.id", 1),
    ),
    Case("prompt id holds a newline", "prompts[0].id: must not hold line breaks", at("prompts.0.id", "a\nb")),
    Case("prompt text empty", "prompts[0].text: must be a non-empty string, got '  '", at("prompts.0.text", "  ")),
    Case("prompt text null", "prompts[0].text: must be a non-empty string, got null", at("prompts.0.text", None)),
    Case(
        "prompt type not open/closed",
        "prompts[0].type: must be 'open' or 'closed', got 'opne'",
        at("prompts.0.type", "opne"),
    ),
    Case(
        "duplicate inline prompt ids",
        "simct.yml: prompts[2]: duplicate prompt id 'capital', first at simct.yml: prompts[0]",
        at("prompts.2", {"id": "capital", "text": "Capital of France?"}),
    ),
    Case(
        "duplicate id across inline and file",
        "prompts/more.jsonl:2: duplicate prompt id 'capital', first at simct.yml: prompts[0]",
        files={"prompts/more.jsonl": b'{"id": "haiku", "text": "A haiku."}\n{"id": "capital", "text": "Capital?"}\n'},
    ),
    Case(
        "duplicate id across two files",
        "prompts/again.jsonl:1: duplicate prompt id 'haiku', first at prompts/more.jsonl:1",
        at("prompts.2", {"file": "prompts/again.jsonl"}),
        files={"prompts/again.jsonl": b'{"id": "haiku", "text": "Another haiku."}\n'},
    ),
    Case(
        "prompts file missing",
        "prompts[1].file: prompts/none.jsonl: file not found (relative paths start at the config",
        at("prompts.1.file", "prompts/none.jsonl"),
    ),
    Case(
        "prompts file holds nothing",
        "prompts[1].file: prompts/more.jsonl holds no prompts",
        files={"prompts/more.jsonl": b"\n  \n"},
    ),
    Case(
        "prompts file: broken JSON line",
        "prompts/more.jsonl:2: invalid JSON",
        files={"prompts/more.jsonl": b'{"id": "a", "text": "A?"}\n{"id": "b", "text": \n'},
        error=DataError,
    ),
    Case(
        "prompts file: line is not an object",
        "prompts/more.jsonl:1: expected a JSON object",
        files={"prompts/more.jsonl": b'["a", "A?"]\n'},
        error=DataError,
    ),
    Case(
        "prompts file: invalid UTF-8",
        "prompts/more.jsonl:1: invalid UTF-8",
        files={"prompts/more.jsonl": b'{"id": "a", "text": "caf\xe9"}\n'},
        error=DataError,
    ),
    Case(
        "prompts file: text missing",
        'prompts/more.jsonl:1: "text" must be a non-empty string, got null',
        files={"prompts/more.jsonl": b'{"id": "a", "prompt": "A?"}\n'},
        error=DataError,
    ),
    Case(
        "prompts file: bad type",
        "prompts/more.jsonl:1: \"type\" must be 'open' or 'closed'",
        files={"prompts/more.jsonl": b'{"id": "a", "text": "A?", "type": "yes"}\n'},
        error=DataError,
    ),
    # sampling
    Case("sampling is a list", "sampling: must be a mapping", at("sampling", [3, 0.7])),
    Case("samples 0", "sampling.samples: must be an integer >= 1, got 0", at("sampling.samples", 0)),
    Case(
        "samples true (bool is not an int)",
        "sampling.samples: must be an integer >= 1, got true",
        at("sampling.samples", True),
    ),
    Case("samples as text", "sampling.samples: must be an integer >= 1, got 'three'", at("sampling.samples", "three")),
    Case(
        "temperature negative",
        "sampling.temperature: must be a number >= 0, got -0.1",
        at("sampling.temperature", -0.1),
    ),
    Case(
        "temperature infinite",
        "sampling.temperature: must be a number >= 0, got inf",
        at("sampling.temperature", float("inf")),
    ),
    Case("top_p 0", "sampling.top_p: must be a number in (0, 1], got 0", at("sampling.top_p", 0)),
    Case("top_p 1.5", "sampling.top_p: must be a number in (0, 1], got 1.5", at("sampling.top_p", 1.5)),
    Case("max_tokens 0", "sampling.max_tokens: must be an integer >= 1, got 0", at("sampling.max_tokens", 0)),
    Case("seed negative", "sampling.seed: must be an integer >= 0, got -1", at("sampling.seed", -1)),
    # gate
    Case("alpha 0", "gate.alpha: must be a number in (0, 1), got 0", at("gate.alpha", 0)),
    Case("alpha 1.5", "gate.alpha: must be a number in (0, 1), got 1.5", at("gate.alpha", 1.5)),
    Case("alpha NaN", "gate.alpha: must be a number in (0, 1), got nan", at("gate.alpha", float("nan"))),
    Case("alpha as text", "gate.alpha: must be a number in (0, 1), got '5%'", at("gate.alpha", "5%")),
    Case("min_prompts 1", "gate.min_prompts: must be an integer >= 2, got 1", at("gate.min_prompts", 1)),
    Case(
        "max_failed_ratio 1", "gate.max_failed_ratio: must be a number in [0, 1), got 1", at("gate.max_failed_ratio", 1)
    ),
    Case(
        "gate key misspelt",
        "gate.sequental: unknown key (did you mean 'sequential'?)",
        at("gate.sequental", {"looks": 3}),
    ),
    Case(
        "mode not difference/equivalence",
        "gate.mode: must be difference or equivalence, got 'equivalent'",
        at("gate.mode", "equivalent"),
    ),
    Case("mode null", "gate.mode: must be difference or equivalence, got null", at("gate.mode", None)),
    Case(
        "mode is a list", "gate.mode: must be difference or equivalence, got a list", at("gate.mode", ["equivalence"])
    ),
    Case("test not t/mmd", "gate.test: must be t or mmd, got 'ks'", at("gate.test", "ks")),
    Case(
        "mmd with equivalence",
        "gate.mode: equivalence needs gate.test: t",
        at("gate", {"test": "mmd", "mode": "equivalence"}),
    ),
    Case(
        "mmd with sequential",
        "gate.sequential: needs gate.test: t",
        at("gate", {"test": "mmd", "sequential": True}),
    ),
    Case("margin 0", "gate.margin: must be a number in (0, 1), got 0", at("gate.margin", 0)),
    Case("margin 1", "gate.margin: must be a number in (0, 1), got 1", at("gate.margin", 1)),
    Case("margin as text", "gate.margin: must be a number in (0, 1), got '5%'", at("gate.margin", "5%")),
    Case("margin true", "gate.margin: must be a number in (0, 1), got true", at("gate.margin", True)),
    Case(
        "sequential as text",
        "gate.sequential: must be true or a mapping {looks, spending}, got a string 'yes'",
        at("gate.sequential", "yes"),
    ),
    Case(
        "sequential is a list",
        "gate.sequential: must be true or a mapping {looks, spending}, got a list",
        at("gate.sequential", [3]),
    ),
    Case(
        "sequential: looks 1",
        "gate.sequential.looks: must be an integer >= 2, got 1",
        at("gate.sequential", {"looks": 1}),
    ),
    Case(
        "sequential: looks 11",
        "gate.sequential.looks: must be at most 10, got 11",
        at("gate.sequential", {"looks": 11}),
    ),
    Case(
        "sequential: looks true",
        "gate.sequential.looks: must be an integer >= 2, got true",
        at("gate.sequential", {"looks": True}),
    ),
    Case(
        "sequential: looks as text",
        "gate.sequential.looks: must be an integer >= 2, got '3'",
        at("gate.sequential", {"looks": "3"}),
    ),
    Case(
        "sequential: looks 2.5",
        "gate.sequential.looks: must be an integer >= 2, got 2.5",
        at("gate.sequential", {"looks": 2.5}),
    ),
    Case(
        "sequential: unknown spending",
        "gate.sequential.spending: must be obrien-fleming or pocock, got 'obf'",
        at("gate.sequential", {"looks": 3, "spending": "obf"}),
    ),
    Case(
        "sequential: spending null",
        "gate.sequential.spending: must be obrien-fleming or pocock, got null",
        at("gate.sequential", {"spending": None}),
    ),
    Case(
        "sequential: key misspelt",
        "gate.sequential.look: unknown key (did you mean 'looks'?)",
        at("gate.sequential", {"look": 3}),
    ),
    Case(
        "sequential: key unlike any",
        "gate.sequential.batches: unknown key (known keys: looks, spending)",
        at("gate.sequential", {"batches": 3}),
    ),
]

RECORDED = "recorded/gateway.jsonl"
LINE = b'{"prompt_id": "capital", "prompt": "Capital?", "response": "Paris.", "sample": 0}\n'


def recorded_case(id: str, names: str, change: str, raw: bytes = LINE, load: str = RECORDED) -> Case:
    return Case(id, names, raw=raw, error=DataError, load=load, recorded=True, change=change)


def with_sample(value: bytes) -> bytes:
    return LINE.replace(b'"sample": 0', b'"sample": ' + value)


# Recorded-responses files as read_recorded sees them (the file a recorded stage names).
RECORDED_CASES = [
    recorded_case(
        "recorded: file missing",
        "recorded/missing.jsonl: file not found",
        "read `recorded/missing.jsonl`, which does not exist",
        load="recorded/missing.jsonl",
    ),
    recorded_case(
        "recorded: broken JSON",
        "recorded/gateway.jsonl:2: invalid JSON: Expecting value (column 1)",
        "the base line, then a line `}`",
        LINE + b"}\n",
    ),
    recorded_case(
        "recorded: truncated last line",
        "recorded/gateway.jsonl:2: invalid JSON",
        'the base line, then `{"prompt_id": "capital", "pro` (a write cut short)',
        LINE + b'{"prompt_id": "capital", "pro',
    ),
    recorded_case(
        "recorded: line is an array",
        "recorded/gateway.jsonl:1: expected a JSON object {...}, got an array",
        "`[1, 2]`",
        b"[1, 2]\n",
    ),
    recorded_case(
        "recorded: invalid UTF-8",
        "recorded/gateway.jsonl:1: invalid UTF-8 at byte",
        'the byte 0xff inside `{"prompt_id": "?"}`',
        b'{"prompt_id": "\xff"}\n',
    ),
    recorded_case(
        "recorded: NaN",
        "recorded/gateway.jsonl:1: invalid JSON: NaN is not standard JSON",
        '`{"sample": NaN}` (Python reads it, JSON does not)',
        b'{"sample": NaN}\n',
    ),
    recorded_case(
        "recorded: nested too deeply",
        "recorded/gateway.jsonl:1: invalid JSON: nested too deeply",
        "100,000 `[` then 100,000 `]`",
        b"[" * 100_000 + b"]" * 100_000,
    ),
    recorded_case(
        "recorded: sample negative",
        'recorded/gateway.jsonl:1: "sample" must be an integer >= 0, got -1',
        '`"sample": -1`',
        with_sample(b"-1"),
    ),
    recorded_case(
        "recorded: sample as text",
        'recorded/gateway.jsonl:1: "sample" must be an integer >= 0, got "0"',
        '`"sample": "0"`',
        with_sample(b'"0"'),
    ),
    recorded_case(
        "recorded: sample true",
        'recorded/gateway.jsonl:1: "sample" must be an integer >= 0, got true',
        '`"sample": true`',
        with_sample(b"true"),
    ),
    recorded_case(
        "recorded: sample 1.0",
        'recorded/gateway.jsonl:1: "sample" must be an integer >= 0, got 1.0',
        '`"sample": 1.0`',
        with_sample(b"1.0"),
    ),
    recorded_case(
        "recorded: sample missing",
        'recorded/gateway.jsonl:1: "sample" is missing',
        'no "sample" key',
        LINE.replace(b', "sample": 0', b""),
    ),
    recorded_case(
        "recorded: response missing",
        'recorded/gateway.jsonl:1: "response" is missing',
        'no "response" key',
        LINE.replace(b'"response": "Paris.", ', b""),
    ),
    recorded_case(
        "recorded: response a number",
        'recorded/gateway.jsonl:1: "response" must be a string, got 42',
        '`"response": 42`',
        LINE.replace(b'"Paris."', b"42"),
    ),
    recorded_case(
        "recorded: prompt_id empty",
        'recorded/gateway.jsonl:1: "prompt_id" must be a non-empty string',
        '`"prompt_id": ""`',
        LINE.replace(b'"capital"', b'""'),
    ),
    recorded_case(
        "recorded: duplicate (prompt_id, sample)",
        'recorded/gateway.jsonl:3: duplicate response for prompt_id "capital" sample 0 (first at line 1)',
        "the base line, a blank line, the base line again",
        LINE + b"\n" + LINE,
    ),
    recorded_case(
        "recorded: prompt differs for one id",
        'recorded/gateway.jsonl:2: "prompt" differs from line 1',
        'the base line, then `"prompt": "Other?"` for the same prompt_id, sample 1',
        LINE + LINE.replace(b"Capital?", b"Other?").replace(b'"sample": 0', b'"sample": 1'),
    ),
]


def observe(case: Case, directory: Path) -> SimctError:
    """Lay out the case in `directory` (the working directory), load it, return the error it raised."""
    for name, content in {**VALID_FILES, **case.files}.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
    try:
        if case.recorded:
            (directory / RECORDED).write_bytes(case.raw or b"")
            read_recorded(Path(case.load))
        else:
            config = copy.deepcopy(VALID)
            if case.edit is not None:
                case.edit.apply(config)
            text = case.raw if case.raw is not None else yaml.safe_dump(config, sort_keys=False).encode()
            (directory / "simct.yml").write_bytes(text)
            load_config(Path(case.load), env=ENV)
    except SimctError as error:
        return error
    raise AssertionError(f"{case.id}: loaded without an error")


@pytest.mark.parametrize("case", CONFIG_CASES + RECORDED_CASES, ids=lambda case: case.id)
def test_bad_input_gives_one_line_naming_the_key(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error = observe(case, tmp_path)
    message = str(error)
    assert type(error) is case.error, message
    assert error.exit_code == EXIT_USAGE
    assert len(message.splitlines()) == 1, message
    assert case.names in message
    assert SECRET not in message
    assert "Traceback" not in message


def test_there_are_at_least_30_distinct_config_cases() -> None:
    every_case = CONFIG_CASES + RECORDED_CASES
    assert len({case.id for case in every_case}) == len(every_case)
    assert len(CONFIG_CASES) >= 30


UNREADABLE_SNIPPET = """
from pathlib import Path
from simct_ci.config import Config, Sequential, load_config
from simct_ci.errors import ConfigError
try:
    load_config(Path("simct.yml"), env={})
except ConfigError as error:
    print(error)
"""


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    locked = tmp_path / "prompts/locked.jsonl"
    locked.write_text('{"id": "a", "text": "A?"}\n')
    locked.chmod(0)
    config = copy.deepcopy(VALID)
    config["stages"]["gateway"]["responses"] = "prompts/locked.jsonl"
    del config["stages"]["bare-metal"]["api_key_env"]
    (tmp_path / "simct.yml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-c", UNREADABLE_SNIPPET]
    if os.geteuid() == 0:  # root reads any file: run without the capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=30)
    if "Operation not permitted" in done.stderr:
        pytest.skip("this container may not drop capabilities")
    message = "simct.yml: stages.gateway.responses: prompts/locked.jsonl: cannot read: Permission denied"
    assert done.stdout.strip() == message, done


def test_a_valid_config_next_to_the_cases_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards the cases themselves: each must fail because of its one change, not because the base is broken.
    monkeypatch.chdir(tmp_path)
    for name, content in VALID_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    Path("simct.yml").write_text(yaml.safe_dump(VALID, sort_keys=False))
    assert [prompt.id for prompt in load_config(Path("simct.yml"), env=ENV).prompts] == ["capital", "haiku", "sum"]
    assert len(read_recorded(Path(RECORDED))) == 1


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ({"alpha": 0.05}, None),
        ({"sequential": None}, None),
        ({"sequential": False}, None),
        ({"sequential": True}, Sequential()),
        ({"sequential": {}}, Sequential()),
        ({"sequential": {"looks": 3}}, Sequential(3, "obrien-fleming")),
        ({"sequential": {"looks": 10, "spending": "pocock"}}, Sequential(10, "pocock")),
    ],
    ids=["absent", "null", "false", "true", "empty mapping", "looks only", "both keys"],
)
def test_gate_sequential_loads(
    gate: dict, expected: Sequential | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _load_with_gate(gate, tmp_path, monkeypatch).gate
    assert loaded.sequential == expected
    assert (loaded.mode, loaded.margin) == ("difference", 0.05)  # the defaults, as the engine's
    if gate.get("sequential") is True:
        assert Sequential() == Sequential(4, "obrien-fleming")


def test_gate_mode_and_margin_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = _load_with_gate({"mode": "equivalence", "margin": 0.1}, tmp_path, monkeypatch).gate
    assert (gate.mode, gate.margin, gate.sequential) == ("equivalence", 0.1, None)


def test_a_bad_sequential_key_exits_2_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simct_ci.cli import main

    monkeypatch.chdir(tmp_path)
    for name, content in VALID_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    config = copy.deepcopy(VALID)
    config["gate"]["sequential"] = {"looks": 0}
    Path("simct.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("REFERENCE_API_KEY", SECRET)
    assert main(["run", "--config", "simct.yml", "--output-dir", "out"]) == EXIT_USAGE
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["simct: error: simct.yml: gate.sequential.looks: must be an integer >= 2, got 0"]
    assert not Path("out/report.json").exists()


def _load_with_gate(gate: dict, directory: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(directory)
    for name, content in VALID_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
    config = copy.deepcopy(VALID)
    config["gate"] = gate
    Path("simct.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return load_config(Path("simct.yml"), env=ENV)
