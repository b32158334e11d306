"""simct.yml -> a frozen, validated `Config`.

Every problem a user can cause ends as one `ConfigError` line that names the config file and the dotted key
(`simct.yml: stages.quantized.base_url: ...`), or a file and line for YAML syntax and prompt files. API key
values are read from the environment here and never appear in a message or a repr.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal, NoReturn, cast
from urllib.parse import urlsplit

import yaml

from simct_ci.errors import ConfigError, DataError
from simct_ci.jsonl import describe_open_error, one_line, read_jsonl
from simct_ci.responses import OPEN, QUERY_TYPES, Prompt

SUPPORTED_VERSION = 1
Api = Literal["chat", "completion"]
API_CHAT: Api = "chat"
API_COMPLETION: Api = "completion"  # plain /completions, for base models without a chat template
APIS: tuple[Api, ...] = (API_CHAT, API_COMPLETION)

# Stage names become file names (responses/<stage>.jsonl), so they stay portable.
STAGE_NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_STAGE_NAME_LENGTH = 100
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TOP_KEYS = ("version", "reference", "stages", "prompts", "sampling", "gate")
LIVE_ONLY_KEYS = ("model", "api", "api_key_env", "system_prompt", "concurrency", "timeout", "max_retries")
STAGE_KEYS = ("base_url", *LIVE_ONLY_KEYS, "responses")
INLINE_PROMPT_KEYS = ("id", "text", "type")
PROMPT_ENTRY_KEYS = (*INLINE_PROMPT_KEYS, "file")
SAMPLING_KEYS = ("samples", "temperature", "top_p", "max_tokens", "seed")
GATE_KEYS = ("test", "alpha", "min_prompts", "max_failed_ratio", "mode", "margin", "sequential")
SEQUENTIAL_KEYS = ("looks", "spending")
GATE_TESTS = ("t", "mmd")  # compare.T_TEST, compare.MMD_TEST
GATE_MODES = ("difference", "equivalence")  # compare.DIFFERENCE, compare.EQUIVALENCE: the engine is imported late
SPENDING_FUNCTIONS = ("obrien-fleming", "pocock")  # sequential.SPENDING_FUNCTIONS, kept in step by a test
MAX_LOOKS = 10

_SHOW_LIMIT = 60
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


@dataclass(frozen=True)
class StageConfig:
    """One deployment stage: live (base_url + model) or recorded (a responses JSONL file)."""

    name: str
    base_url: str | None = None
    model: str | None = None
    api: Api = API_CHAT
    api_key: str | None = field(default=None, repr=False)  # the secret value itself, read from api_key_env
    api_key_env: str | None = None
    system_prompt: str | None = None
    responses: Path | None = None
    concurrency: int = 4
    timeout: float = 60.0
    max_retries: int = 5

    @property
    def is_recorded(self) -> bool:
        return self.responses is not None


@dataclass(frozen=True)
class Sampling:
    samples: int = 3  # responses per prompt per stage
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = 1  # None: let the server pick


@dataclass(frozen=True)
class Sequential:
    """Query the prompts in `looks` batches and stop a stage once it is shown inconsistent."""

    looks: int = 4
    spending: str = "obrien-fleming"


@dataclass(frozen=True)
class Gate:
    test: str = "t"  # "mmd": the kernel two-sample test of Model Equality Testing (mmd.py) decides instead
    alpha: float = 0.05
    min_prompts: int = 10  # fewer usable prompts than this and the verdict is incomplete
    max_failed_ratio: float = 0.2  # more failed requests than this and the verdict is incomplete
    mode: str = "difference"  # "equivalence": consistent only when shown within `margin`
    margin: float = 0.05
    sequential: Sequential | None = None  # None: every prompt is queried, one test at the end


@dataclass(frozen=True)
class Config:
    path: Path
    version: int
    reference: str
    stages: tuple[StageConfig, ...]
    prompts: tuple[Prompt, ...]
    sampling: Sampling = Sampling()
    gate: Gate = Gate()

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(stage.name for stage in self.stages)
        raise ConfigError(one_line(f"{self.path}: no stage named {_show(name)} (stages: {known})"))

    @property
    def candidates(self) -> tuple[StageConfig, ...]:
        """Every stage tested against the reference, in file order."""
        return tuple(stage for stage in self.stages if stage.name != self.reference)

    def secrets(self) -> tuple[str, ...]:
        """API key values, to mask in logs and to search for in outputs."""
        return tuple(dict.fromkeys(stage.api_key for stage in self.stages if stage.api_key))


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path`; relative file paths inside it start at its directory."""
    path = Path(path)  # a str from argparse works too
    document = _read_yaml(path)
    return _Validator(path, os.environ if env is None else env).config(document)


# --- YAML ---------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently resolve to the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` overrides on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_show(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:  # e.g. `!!int abc`: give it the line
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value: {error}", node.start_mark
            ) from None


def _read_yaml(path: Path) -> object:
    shown = one_line(str(path))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{shown}: config file not found") from None
    except (OSError, ValueError) as error:
        raise ConfigError(describe_open_error(path, error)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(f"{shown}:{line}: not valid UTF-8 (byte {error.start + 1})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: builds no Python objects
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = ": ".join(part for part in (error.context, error.problem) if part) or "syntax error"
        raise ConfigError(one_line(f"{where}: invalid YAML: {problem}")) from None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        raise ConfigError(f"{shown}:{line}: invalid YAML: character #x{error.character:04x} is not allowed") from None
    except yaml.YAMLError as error:
        raise ConfigError(one_line(f"{shown}: invalid YAML: {error}")) from None
    except RecursionError:
        raise ConfigError(f"{shown}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as error:  # a value error PyYAML raised outside construction
        raise ConfigError(one_line(f"{shown}: invalid YAML value: {error}")) from None


# --- validation ---------------------------------------------------------------------------------------------


class _Validator:
    """Turns the loaded YAML into a Config, failing on the first problem with the key that has it."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.base_dir = path.parent
        self.env = env

    def fail(self, key: str, problem: str) -> NoReturn:
        where = f"{self.path}: {key}" if key else str(self.path)
        raise ConfigError(one_line(f"{where}: {problem}"))

    def config(self, document: object) -> Config:
        if document is None:
            self.fail("", "is empty; expected a mapping with version, reference, stages and prompts")
        if not isinstance(document, dict):
            self.fail(
                "", f"must be a mapping (version, reference, stages, prompts...) at the top, got {_kind(document)}"
            )
        top = self.mapping(document, "", TOP_KEYS)
        for required in ("version", "reference", "stages", "prompts"):
            if required not in top:
                self.fail(required, "missing (required)")
        version = top["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version != SUPPORTED_VERSION:
            self.fail(
                "version",
                f"must be {SUPPORTED_VERSION}, the config version this simct-action reads, got {_show(version)}",
            )
        stages = self.stages(top["stages"])
        return Config(
            path=self.path,
            version=SUPPORTED_VERSION,
            reference=self.reference(top["reference"], stages),
            stages=stages,
            prompts=self.prompts(top["prompts"]),
            sampling=self.sampling(top.get("sampling")),
            gate=self.gate(top.get("gate")),
        )

    # --- generic checks ---

    def mapping(self, value: object, key: str, known: tuple[str, ...]) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                self.fail(_child(key, name), f"keys must be strings, got {_show(name)}{_quote_hint(name)}")
            if name not in known:
                self.fail(_child(key, name), f"unknown key{_suggestion(name, known)}")
        return cast(dict[str, object], value)

    def string(self, value: object, key: str, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {_show(value)}{_quote_hint(value)}")
        if not allow_empty and not value.strip():
            self.fail(key, f"must be a non-empty string, got {_show(value)}")
        if not _is_valid_unicode(value):
            self.fail(key, "must be valid Unicode text (it holds a lone surrogate escape)")
        return value

    def integer(self, value: object, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(key, f"must be an integer >= {minimum}, got {_show(value)}")
        return value

    def number(self, value: object, key: str, expectation: str, valid: Callable[[float], bool]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be {expectation}, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            self.fail(key, f"must be {expectation}, got {_show(value)}")
        if not math.isfinite(number) or not valid(number):
            self.fail(key, f"must be {expectation}, got {_show(value)}")
        return number

    def readable_file(self, value: object, key: str) -> Path:
        path = self.base_dir / self.string(value, key)
        try:
            with path.open("rb"):
                pass
        except (OSError, ValueError) as error:
            relative_missing = isinstance(error, FileNotFoundError) and not path.is_absolute()
            hint = " (relative paths start at the config file's directory)" if relative_missing else ""
            self.fail(key, describe_open_error(path, error) + hint)
        return path

    # --- stages ---

    def stages(self, value: object) -> tuple[StageConfig, ...]:
        if not isinstance(value, dict):
            self.fail("stages", f"must be a mapping of stage name to stage, got {_kind(value)}")
        seen_folded: dict[str, str] = {}
        for name in value:
            self.check_stage_name(name)
            folded = name.casefold()
            if folded in seen_folded:
                self.fail(
                    _child("stages", name),
                    f"differs from stage {_show(seen_folded[folded])} only in case; stage names become file names",
                )
            seen_folded[folded] = name
        if len(value) < 2:
            self.fail("stages", f"needs at least 2 stages (the reference and one to test), got {len(value)}")
        return tuple(self.stage(name, body) for name, body in value.items())

    def check_stage_name(self, name: object) -> None:
        key = _child("stages", name)
        if not isinstance(name, str):
            self.fail(key, f"stage names must be strings, got {_show(name)}{_quote_hint(name)}")
        if not STAGE_NAME.fullmatch(name) or set(name) == {"."}:
            self.fail(key, "stage names may hold only letters, digits, '.', '_' and '-' (they become file names)")
        if len(name) > MAX_STAGE_NAME_LENGTH:
            self.fail(key, f"stage names are at most {MAX_STAGE_NAME_LENGTH} characters (they become file names)")

    def stage(self, name: str, body: object) -> StageConfig:
        key = f"stages.{name}"
        if body is None:
            self.fail(key, "is empty; give it base_url (a live endpoint) or responses (a recorded JSONL file)")
        if isinstance(body, dict) and "api_key" in body:
            self.fail(
                f"{key}.api_key",
                "never put a key in the config file; set an environment variable and name it in api_key_env",
            )
        fields = self.mapping(body, key, STAGE_KEYS)
        live = fields.get("base_url") is not None
        recorded = fields.get("responses") is not None
        if live and recorded:
            self.fail(key, "has both base_url and responses; a stage is either live or recorded")
        if not live and not recorded:
            self.fail(key, "needs base_url (a live endpoint) or responses (a recorded JSONL file)")
        if recorded:
            return self.recorded_stage(name, key, fields)
        return self.live_stage(name, key, fields)

    def recorded_stage(self, name: str, key: str, fields: dict[str, object]) -> StageConfig:
        for live_key in LIVE_ONLY_KEYS:
            if fields.get(live_key) is not None:
                self.fail(f"{key}.{live_key}", "only a live stage (with base_url) takes this key; this one is recorded")
        return StageConfig(name=name, responses=self.readable_file(fields["responses"], f"{key}.responses"))

    def live_stage(self, name: str, key: str, fields: dict[str, object]) -> StageConfig:
        if fields.get("model") is None:
            self.fail(f"{key}.model", "missing: a live stage needs the model name its server expects")
        api = fields.get("api", API_CHAT)
        if api not in APIS:
            self.fail(f"{key}.api", f"must be 'chat' or 'completion', got {_show(api)}")
        api_key_env, api_key = self.api_key(fields.get("api_key_env"), f"{key}.api_key_env")
        system_prompt = fields.get("system_prompt")
        defaults = StageConfig(name=name)
        return StageConfig(
            name=name,
            base_url=self.url(fields["base_url"], f"{key}.base_url"),
            model=self.string(fields["model"], f"{key}.model"),
            api=cast(Api, api),
            api_key=api_key,
            api_key_env=api_key_env,
            system_prompt=None
            if system_prompt is None
            else self.string(system_prompt, f"{key}.system_prompt", allow_empty=True),
            concurrency=self.integer(fields.get("concurrency", defaults.concurrency), f"{key}.concurrency", 1),
            timeout=self.number(
                fields.get("timeout", defaults.timeout), f"{key}.timeout", "a number of seconds > 0", lambda t: t > 0
            ),
            max_retries=self.integer(fields.get("max_retries", defaults.max_retries), f"{key}.max_retries", 0),
        )

    def url(self, value: object, key: str) -> str:
        url = self.string(value, key)
        shown = _show(_USERINFO.sub(r"\1***@", url))  # never echo a password
        expectation = f"must be an http(s) URL with a host, got {shown}"
        if any(character.isspace() or not character.isprintable() for character in url):
            self.fail(key, f"{expectation} (it holds whitespace or control characters)")
        try:
            parts = urlsplit(url)
            host, _ = parts.hostname, parts.port
        except ValueError as error:
            self.fail(key, f"{expectation} ({one_line(str(error))})")
        if parts.scheme.lower() not in ("http", "https") or not host:
            self.fail(key, expectation)
        if parts.username is not None or parts.password is not None:
            self.fail(key, "must not hold credentials (user:password@); name an environment variable in api_key_env")
        if parts.fragment:
            self.fail(key, f"must not have a #fragment, got {shown}")
        return url

    def api_key(self, value: object, key: str) -> tuple[str | None, str | None]:
        """(variable name, secret value); both None when the stage needs no key."""
        if value is None:
            return None, None
        name = self.string(value, key)
        if not ENV_VAR_NAME.fullmatch(name):
            self.fail(key, f"must be the name of an environment variable (letters, digits, _), got {_show(name)}")
        secret = self.env.get(name)
        if secret is None:
            self.fail(key, f"environment variable {name} is not set (in a workflow, pass it in the step's env:)")
        secret = secret.strip()  # a trailing newline from `cat key.txt` would break the HTTP header
        if not secret:
            self.fail(key, f"environment variable {name} is empty")
        if not all("!" <= character <= "~" for character in secret):
            self.fail(
                key, f"environment variable {name} must hold printable ASCII without spaces (it goes in a header)"
            )
        return name, secret

    def reference(self, value: object, stages: tuple[StageConfig, ...]) -> str:
        names = tuple(stage.name for stage in stages)
        if not isinstance(value, str):
            self.fail("reference", f"must be the name of a stage, got {_show(value)}{_quote_hint(value)}")
        if value not in names:
            self.fail("reference", f"names no stage: {_show(value)}{_suggestion(value, names, listing='stages')}")
        return value

    # --- prompts ---

    def prompts(self, value: object) -> tuple[Prompt, ...]:
        if not isinstance(value, list):
            self.fail("prompts", f"must be a list of {{id, text, type}} or {{file}} entries, got {_kind(value)}")
        if not value:
            self.fail("prompts", "is empty; add at least one prompt")
        prompts: list[Prompt] = []
        origin_of: dict[str, str] = {}
        for index, entry in enumerate(value):
            for prompt, origin in self.prompt_entry(entry, f"prompts[{index}]"):
                if prompt.id in origin_of:
                    raise ConfigError(
                        one_line(f"{origin}: duplicate prompt id {_show(prompt.id)}, first at {origin_of[prompt.id]}")
                    )
                origin_of[prompt.id] = origin
                prompts.append(prompt)
        return tuple(prompts)

    def prompt_entry(self, entry: object, key: str) -> Iterator[tuple[Prompt, str]]:
        """(prompt, where it was defined) for an inline prompt or each prompt of a file."""
        if not isinstance(entry, dict):
            self.fail(key, f"must be a mapping, {{id, text, type}} or {{file}}, got {_kind(entry)}")
        fields = self.mapping(entry, key, PROMPT_ENTRY_KEYS)
        if "file" in fields:
            inline = [name for name in INLINE_PROMPT_KEYS if name in fields]
            if inline:
                self.fail(key, f"has both file and {inline[0]}; an entry is either one prompt or a file of prompts")
            yield from self.prompt_file(fields["file"], f"{key}.file")
            return
        if "text" not in fields:
            self.fail(key, "needs text (an inline prompt) or file (a JSONL file of prompts)")

        def fail(name: str, problem: str) -> NoReturn:
            self.fail(f"{key}.{name}", problem)

        yield _prompt(fields, fail), f"{one_line(str(self.path))}: {key}"

    def prompt_file(self, value: object, key: str) -> Iterator[tuple[Prompt, str]]:
        path = self.readable_file(value, key)
        count = 0
        for number, row in read_jsonl(path):
            where = f"{one_line(str(path))}:{number}"

            def fail(name: str, problem: str, where: str = where) -> NoReturn:
                raise DataError(one_line(f'{where}: "{name}" {problem}'))

            count += 1
            yield _prompt(row, fail), where
        if count == 0:
            self.fail(key, f"{path} holds no prompts")

    # --- sampling and gate ---

    def section(self, value: object, key: str, known: tuple[str, ...]) -> dict[str, object]:
        return {} if value is None else self.mapping(value, key, known)

    def sampling(self, value: object) -> Sampling:
        fields = self.section(value, "sampling", SAMPLING_KEYS)
        default = Sampling()
        seed = fields.get("seed", default.seed)
        return Sampling(
            samples=self.integer(fields.get("samples", default.samples), "sampling.samples", 1),
            temperature=self.number(
                fields.get("temperature", default.temperature),
                "sampling.temperature",
                "a number >= 0",
                lambda t: t >= 0,
            ),
            top_p=self.number(
                fields.get("top_p", default.top_p), "sampling.top_p", "a number in (0, 1]", lambda p: 0 < p <= 1
            ),
            max_tokens=self.integer(fields.get("max_tokens", default.max_tokens), "sampling.max_tokens", 1),
            seed=None if seed is None else self.integer(seed, "sampling.seed", 0),
        )

    def gate(self, value: object) -> Gate:
        fields = self.section(value, "gate", GATE_KEYS)
        default = Gate()
        gate = Gate(
            test=self.choice(fields.get("test", default.test), "gate.test", GATE_TESTS),
            alpha=self.number(
                fields.get("alpha", default.alpha), "gate.alpha", "a number in (0, 1)", lambda a: 0 < a < 1
            ),
            min_prompts=self.integer(fields.get("min_prompts", default.min_prompts), "gate.min_prompts", 2),
            max_failed_ratio=self.number(
                fields.get("max_failed_ratio", default.max_failed_ratio),
                "gate.max_failed_ratio",
                "a number in [0, 1)",
                lambda r: 0 <= r < 1,
            ),
            mode=self.choice(fields.get("mode", default.mode), "gate.mode", GATE_MODES),
            margin=self.number(
                fields.get("margin", default.margin), "gate.margin", "a number in (0, 1)", lambda m: 0 < m < 1
            ),
            sequential=self.sequential(fields.get("sequential")),
        )
        if gate.test == "mmd" and gate.mode != default.mode:
            self.fail("gate.mode", "equivalence needs gate.test: t (the MMD test has no margin to show a shift within)")
        if gate.test == "mmd" and gate.sequential is not None:
            self.fail("gate.sequential", "needs gate.test: t (its alpha spending assumes the t statistic)")
        return gate

    def sequential(self, value: object) -> Sequential | None:
        if value is None or value is False:
            return None
        if value is not True and not isinstance(value, dict):
            self.fail("gate.sequential", f"must be true or a mapping {{looks, spending}}, got {_kind(value)}")
        fields = {} if value is True else self.mapping(value, "gate.sequential", SEQUENTIAL_KEYS)
        default = Sequential()
        looks = self.integer(fields.get("looks", default.looks), "gate.sequential.looks", 2)
        if looks > MAX_LOOKS:
            self.fail("gate.sequential.looks", f"must be at most {MAX_LOOKS}, got {looks}")
        spending = self.choice(fields.get("spending", default.spending), "gate.sequential.spending", SPENDING_FUNCTIONS)
        return Sequential(looks, spending)

    def choice(self, value: object, key: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(key, f"must be {' or '.join(allowed)}, got {_show(value)}")
        return cast(str, value)


def _prompt(fields: Mapping[str, object], fail: Callable[[str, str], NoReturn]) -> Prompt:
    """A Prompt from {id, text, type}, inline or from a file; `fail(field, problem)` words the error."""
    if "id" not in fields:
        fail("id", "missing: every prompt needs an id")
    prompt_id, text, query_type = fields["id"], fields.get("text"), fields.get("type")
    if not isinstance(prompt_id, str) or not prompt_id.strip() or not _is_valid_unicode(prompt_id):
        fail("id", f"must be a non-empty string, got {_show(prompt_id)}{_quote_hint(prompt_id)}")
    if any(not character.isprintable() for character in prompt_id):
        fail("id", f"must not hold line breaks or control characters, got {_show(prompt_id)}")
    if not isinstance(text, str) or not text.strip():
        fail("text", f"must be a non-empty string, got {_show(text)}{_quote_hint(text)}")
    if not _is_valid_unicode(text):
        fail("text", "must be valid Unicode text (it holds a lone surrogate escape)")
    if query_type is None:
        query_type = OPEN
    if query_type not in QUERY_TYPES:
        fail("type", f"must be 'open' or 'closed', got {_show(query_type)}")
    return Prompt(id=prompt_id, text=text, type=cast(str, query_type))


# --- message helpers ----------------------------------------------------------------------------------------


def _child(parent: str, key: object) -> str:
    """Dotted key of `key` under `parent`; anything unusual in brackets, so the message stays readable."""
    if isinstance(key, str) and STAGE_NAME.fullmatch(key) and set(key) != {"."}:
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{_show(key)}]"


def _show(value: object) -> str:
    """A short one-line rendering of a value as the user wrote it in YAML (or JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large integer"
    if isinstance(value, str | int | float):
        text = repr(value)
    elif isinstance(value, date):
        text = f"{value.isoformat()} (a date)"
    else:
        return _kind(value)
    text = one_line(text)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _kind(value: object) -> str:
    kinds = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    if value is None:
        return "null"
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return f"{name} {_show(value)}" if kind in (str, bool, int, float) else name
    return f"a {type(value).__name__}"


def _quote_hint(value: object) -> str:
    # YAML reads `1.10`, `yes`, `2024-01-01` as a number, a boolean and a date; quoting keeps them text.
    return " (put it in quotes to make it text)" if isinstance(value, int | float | date) else ""


def _suggestion(name: str, known: tuple[str, ...], listing: str = "known keys") -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listing}: {', '.join(known)})"


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
