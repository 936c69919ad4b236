"""Verifiers: turn an answer into pass/fail against a JSON spec, so learning signals need no human."""

from __future__ import annotations

import json
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, NamedTuple

import jsonschema

from desktop.sandbox import SandboxLimits, SandboxResult, run_python

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-6
TAIL_CHARS = 2000
MAX_SCHEMA_ERRORS = 3
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}
PYTHON_FENCE_LANGS = ("python", "python3", "py")

FENCE_RE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
NUMBER_RE = re.compile(
    r"(?<![\w.])([-+\u2212])?"
    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d)"
    r"(?:[eE]([-+]?\d+))?"
    r"(?:\s*/\s*([1-9]\d*)(?!\d|\.\d))?"
)
ANSWER_FILE = "answer.py"
TESTS_FILE = "tests.py"
TOKEN_BYTES = 16
TRACEBACK_LINE_RE = re.compile(rf'File "{re.escape(TESTS_FILE)}", line (\d+)')
NUMERIC_CUE_RE = re.compile(
    r"\b(?:just|only)\s+(?:the\s+|a\s+|one\s+)?(?:final\s+)?(?:number|integer|numeric\s+(?:value|answer))\b",
    re.IGNORECASE,
)
JSON_CUE_RE = re.compile(
    r"\b(?:respond|reply|answer|output|format)\b[^.?!\n]{0,40}\bjson\b|\b(?:in|as)\s+json\b", re.IGNORECASE
)
ASSERT_LINE_RE = re.compile(r"assert\b|(?:from\s+\S+\s+)?import\s")


class SpecError(ValueError):
    """A malformed spec: unknown kind, missing or unexpected key, wrong type."""


@dataclass(frozen=True)
class VerifierResult:
    """The verdict on one answer; `status` separates a wrong answer from a broken spec or verifier."""

    passed: bool
    reason: str
    status: str
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Flat JSON-serializable form for storage and the UI."""
        return {"passed": self.passed, "status": self.status, "reason": self.reason, **self.details}


def _passed(reason: str, **details: Any) -> VerifierResult:
    """A passing verdict."""
    return VerifierResult(True, reason, "passed", details)


def _failed(reason: str, **details: Any) -> VerifierResult:
    """The answer is wrong."""
    return VerifierResult(False, reason, "failed", details)


def _error(reason: str, **details: Any) -> VerifierResult:
    """The spec or the verifier is broken, not the answer."""
    return VerifierResult(False, reason, "error", details)


# Spec parsing: one parser per kind, each returning the normalized spec.


def _require(spec: dict, key: str, types: tuple[type, ...], what: str) -> Any:
    """Fetches a required key of the given JSON type (bool is never a number)."""
    if key not in spec:
        raise SpecError(f"{spec['kind']} spec needs {key!r}")
    value = spec[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise SpecError(f"{spec['kind']} spec: {key!r} must be {what}, got {type(value).__name__}")
    return value


def _parse_exact(spec: dict) -> dict:
    """exact {answer}: a string (numbers are accepted and compared as text)."""
    return {"answer": str(_require(spec, "answer", (str, int, float), "a string"))}


def _parse_numeric(spec: dict) -> dict:
    """numeric {answer, tolerance?}: a number or a numeric string."""
    answer = _require(spec, "answer", (int, float, str), "a number")
    if isinstance(answer, str):
        parsed = _last_number(answer)
        if parsed is None or answer.strip() != parsed[1]:
            raise SpecError(f"numeric spec: 'answer' {answer!r} is not a number")
        answer = _plain_number(parsed[0])
    tolerance = spec.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise SpecError(f"numeric spec: 'tolerance' must be a non-negative number, got {tolerance!r}")
    return {"answer": answer, "tolerance": tolerance}


def _parse_contains(spec: dict) -> dict:
    """contains {any: [..]}: a non-empty list of non-empty strings."""
    needles = _require(spec, "any", (list,), "a list of strings")
    if not needles or not all(isinstance(n, str) and n.strip() for n in needles):
        raise SpecError("contains spec: 'any' must be a non-empty list of non-empty strings")
    return {"any": needles}


def _parse_regex(spec: dict) -> dict:
    """regex {pattern, flags?}: the pattern must compile; flags are letters from 'imsxa'."""
    pattern = _require(spec, "pattern", (str,), "a string")
    flags = spec.get("flags", "")
    if not isinstance(flags, str) or set(flags) - set(REGEX_FLAGS):
        raise SpecError(f"regex spec: 'flags' must be letters from {''.join(REGEX_FLAGS)!r}, got {flags!r}")
    try:
        re.compile(pattern, _regex_flags(flags))
    except re.error as exc:
        raise SpecError(f"regex spec: pattern does not compile: {exc}") from exc
    return {"pattern": pattern, "flags": flags}


def _parse_json(spec: dict) -> dict:
    """json {equals?, schema?}: at least one; the schema must itself be valid."""
    if "equals" not in spec and "schema" not in spec:
        raise SpecError("json spec needs 'equals' and/or 'schema'")
    normalized = {key: spec[key] for key in ("equals", "schema") if key in spec}
    if "schema" in normalized:
        schema = _require(spec, "schema", (dict, bool), "a JSON Schema object")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise SpecError(f"json spec: invalid schema: {exc.message}") from exc
    return normalized


def _parse_python(spec: dict) -> dict:
    """python {tests}: Python source (asserts) that must at least compile."""
    tests = _require(spec, "tests", (str,), "a string of Python asserts")
    if not tests.strip():
        raise SpecError("python spec: 'tests' is empty")
    try:
        compile(tests, "<tests>", "exec")
    except SyntaxError as exc:
        raise SpecError(f"python spec: tests do not compile: {exc.msg} (line {exc.lineno})") from exc
    return {"tests": tests}


# Checks: one per kind, each taking the normalized spec.


def _check_exact(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """Normalized string equality."""
    expected, found = _normalize(spec["answer"]), _normalize(answer)
    details = {"expected": expected, "found": found}
    if expected == found:
        return _passed(f"matched {expected!r}", **details)
    return _failed(f"expected {expected!r}, found {found!r}", **details)


def _check_numeric(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """The last number in the answer within tolerance of the expected one."""
    expected = Fraction(spec["answer"])
    parsed = _last_number(answer)
    if parsed is None:
        return _failed("no number found in the answer", expected=spec["answer"])
    found, text = parsed
    details = {"expected": spec["answer"], "found": _plain_number(found), "found_text": text}
    if abs(found - expected) <= Fraction(spec["tolerance"]):
        return _passed(f"found {_show(found)} as expected", **details)
    return _failed(f"expected {_show(expected)}, found {_show(found)}", **details)


def _check_contains(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """Any needle occurs, case-insensitively, as a whole word where it starts or ends alphanumerically."""
    for needle in spec["any"]:
        if _needle_pattern(needle).search(answer):
            return _passed(f"found {needle!r}", matched=needle)
    return _failed("none of " + ", ".join(map(repr, spec["any"])) + " found", matched=None)


def _check_regex(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """re.search with the spec's flags."""
    match = re.search(spec["pattern"], answer, _regex_flags(spec["flags"]))
    if match:
        return _passed(f"pattern matched {match.group(0)!r}", matched=match.group(0))
    return _failed(f"pattern {spec['pattern']!r} not found", matched=None)


def _check_json(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """The answer's JSON equals `equals` and/or satisfies `schema`."""
    found = _extract_json(answer)
    if found is None:
        return _failed("no JSON found in the answer", parsed=None)
    (value,) = found
    if "equals" in spec and not _json_equal(value, spec["equals"]):
        return _failed(f"expected {_json_text(spec['equals'])}, found {_json_text(value)}", parsed=value)
    if "schema" in spec:
        validator = jsonschema.validators.validator_for(spec["schema"])(spec["schema"])
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))[:MAX_SCHEMA_ERRORS]
        if errors:
            messages = [e.message for e in errors]
            return _failed("does not match schema: " + "; ".join(messages), parsed=value, schema_errors=messages)
    return _passed("JSON matches", parsed=value)


_HARNESS = """import os as _os, sys as _sys
_scope = {{"__name__": "__main__"}}
try:
    exec(compile({answer!r}, "{answer_file}", "exec"), _scope)
except SystemExit:
    _sys.stderr.write("the answer exited before the tests ran\\n")
    _os._exit(1)
exec(compile({tests!r}, "{tests_file}", "exec"), _scope)
print({token!r})
"""


def _check_python(spec: dict, answer: str, limits: SandboxLimits | None) -> VerifierResult:
    """The tests run after the answer's code and reach the end: a per-run token proves the answer did not exit early."""
    token = secrets.token_hex(TOKEN_BYTES)
    tests = spec["tests"]
    program = _HARNESS.format(answer=_extract_code(answer), tests=tests, token=token,
                              answer_file=ANSWER_FILE, tests_file=TESTS_FILE)
    limits = limits or SandboxLimits()
    result = run_python(program, limits)
    finished = result.stdout.rstrip().endswith(token)
    details = {
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "truncated": result.truncated,
        "stdout_tail": result.stdout.replace(token, "")[-TAIL_CHARS:],
        "stderr_tail": result.stderr[-TAIL_CHARS:],
    }
    if result.sandbox_error is not None:
        return _error(f"sandbox failed: {result.sandbox_error}", **details)
    if result.ok and finished:
        return _passed("all tests passed", **details)
    if result.ok:
        return _failed("the program ended before the tests finished", **details)
    return _failed(_python_failure(result, tests, limits), **details)


class _Kind(NamedTuple):
    """How to validate one kind of spec, which keys it may carry, and how to check an answer against it."""

    keys: frozenset[str]
    parse: Callable[[dict], dict]
    check: Callable[[dict, str, SandboxLimits | None], VerifierResult]


_KINDS: dict[str, _Kind] = {
    "exact": _Kind(frozenset({"answer"}), _parse_exact, _check_exact),
    "numeric": _Kind(frozenset({"answer", "tolerance"}), _parse_numeric, _check_numeric),
    "contains": _Kind(frozenset({"any"}), _parse_contains, _check_contains),
    "regex": _Kind(frozenset({"pattern", "flags"}), _parse_regex, _check_regex),
    "json": _Kind(frozenset({"equals", "schema"}), _parse_json, _check_json),
    "python": _Kind(frozenset({"tests"}), _parse_python, _check_python),
}
KINDS: tuple[str, ...] = tuple(_KINDS)


def parse_spec(spec: dict | str) -> dict:
    """Validates a spec (dict or JSON text) and returns it normalized with defaults filled in."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError(f"spec must be a JSON object, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise SpecError(f"unknown spec kind {kind!r}; expected one of {', '.join(KINDS)}")
    unexpected = set(spec) - {"kind"} - _KINDS[kind].keys
    if unexpected:
        raise SpecError(f"{kind} spec has unexpected keys: {', '.join(sorted(unexpected))}")
    return {"kind": kind, **_KINDS[kind].parse(spec)}


def verify(spec: dict | str, answer: str, *, limits: SandboxLimits | None = None) -> VerifierResult:
    """Checks an answer against a spec; a broken spec or verifier yields status 'error', never an exception."""
    try:
        normalized = parse_spec(spec)
    except SpecError as exc:
        return _error(str(exc))
    try:
        return _KINDS[normalized["kind"]].check(normalized, answer, limits)
    except Exception as exc:  # a verifier bug must not take the caller down; it is reported as an error
        log.exception("verifier %s crashed", normalized["kind"])
        return _error(f"verifier crashed: {type(exc).__name__}: {exc}")


def propose_spec(prompt: str) -> dict | None:
    """Proposes a check the prompt itself carries; None values mark what the user must still supply."""
    for _, body in FENCE_RE.findall(prompt):
        stripped = (line.strip() for line in body.splitlines())
        code = [line for line in stripped if line and not line.startswith("#")]
        if all(ASSERT_LINE_RE.match(line) for line in code) and any(line.startswith("assert") for line in code):
            try:
                return parse_spec({"kind": "python", "tests": body.strip()})
            except SpecError:
                continue
    if JSON_CUE_RE.search(prompt):
        return {"kind": "json", "equals": None}
    if NUMERIC_CUE_RE.search(prompt):
        return {"kind": "numeric", "answer": None}
    return None


# Helpers.


def _normalize(text: str) -> str:
    """Casefolded, inner whitespace collapsed, surrounding whitespace and punctuation stripped."""
    collapsed = " ".join(text.split()).casefold()
    keep = [not (ch.isspace() or unicodedata.category(ch).startswith("P")) for ch in collapsed]
    if not any(keep):
        return ""
    return collapsed[keep.index(True): len(keep) - keep[::-1].index(True)]


def _last_number(text: str) -> tuple[Fraction, str] | None:
    """The last number in text (signs, decimals, 1,234 separators, exponents, a/b fractions) and its text."""
    matches = list(NUMBER_RE.finditer(text))
    if not matches:
        return None
    match = matches[-1]
    sign, digits, exponent, denominator = match.groups()
    value = Fraction(digits.replace(",", ""))
    if exponent is not None:
        value *= Fraction(10) ** int(exponent)
    if denominator is not None:
        value /= int(denominator)
    if sign in ("-", "\u2212"):
        value = -value
    return value, match.group(0)


def _plain_number(value: Fraction) -> int | float:
    """A JSON-friendly number: int when whole, else float."""
    return int(value) if value.denominator == 1 else float(value)


def _show(value: Fraction) -> str:
    """Human form of a number for reasons."""
    return str(_plain_number(value))


def _needle_pattern(needle: str) -> re.Pattern[str]:
    """Case-insensitive needle bounded by non-word characters at its alphanumeric edges."""
    start = r"(?<!\w)" if re.match(r"\w", needle) else ""
    end = r"(?!\w)" if re.search(r"\w$", needle) else ""
    return re.compile(start + re.escape(needle) + end, re.IGNORECASE)


def _regex_flags(letters: str) -> re.RegexFlag:
    """Combines flag letters into re flags."""
    flags = re.RegexFlag(0)
    for letter in letters:
        flags |= REGEX_FLAGS[letter]
    return flags


def _extract_json(answer: str) -> tuple[Any] | None:
    """The answer as JSON, else its first ```json block, any fenced block, or first {...}/[...] span."""
    fences = FENCE_RE.findall(answer)
    candidates = [answer]
    candidates += [body for lang, body in fences if lang.lower() == "json"][:1]
    candidates += [body for _, body in fences][:1]
    for candidate in candidates:
        try:
            return (json.loads(candidate),)
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", answer):
        try:
            return (decoder.raw_decode(answer, match.start())[0],)
        except json.JSONDecodeError:
            continue
    return None


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, but 47 equals 47.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    return type(a) is type(b) and a == b


def _json_text(value: Any) -> str:
    """Compact JSON for reasons."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _extract_code(answer: str) -> str:
    """The first ```python block, else the first fenced block, else the bare answer."""
    fences = FENCE_RE.findall(answer)
    for lang, body in fences:
        if lang.lower() in PYTHON_FENCE_LANGS:
            return body
    return fences[0][1] if fences else answer


def _python_failure(result: SandboxResult, tests: str, limits: SandboxLimits) -> str:
    """One sentence on why the program failed: the limit hit, the failing assert, or the last error line."""
    if result.timed_out:
        return f"timed out after {limits.wall_s:g} s"
    if result.killed_reason is not None:
        return result.killed_reason
    error_lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    last = error_lines[-1].strip() if error_lines else f"exit code {result.exit_code}"
    if last.startswith("AssertionError"):
        frames = TRACEBACK_LINE_RE.findall(result.stderr)
        source = tests.splitlines()
        line = source[int(frames[-1]) - 1].strip() if frames and int(frames[-1]) <= len(source) else ""
        message = last.removeprefix("AssertionError").lstrip(": ")
        return "assertion failed: " + ": ".join(part for part in (line, message) if part)
    return last
