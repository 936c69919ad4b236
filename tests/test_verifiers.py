"""Verifiers: every kind passes right answers, fails wrong ones, and reports broken specs as errors."""

from __future__ import annotations

import json

import pytest

from conftest import BENCH
from desktop import verifiers
from desktop.sandbox import SandboxLimits, SandboxResult
from desktop.verifiers import KINDS, SpecError, VerifierResult, parse_spec, propose_spec, verify

VERIFIABLE = BENCH / "verifiable-public.jsonl"
SHORT = SandboxLimits(wall_s=2.0)
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
FOUR_GB = 4 * 1024**3


def bench_items() -> list[dict]:
    """The public verifiable bench, or nothing where the shared folder is absent."""
    if not VERIFIABLE.exists():
        return []
    return [json.loads(line) for line in VERIFIABLE.read_text().splitlines() if line.strip()]


def assert_passed(result: VerifierResult) -> None:
    assert (result.passed, result.status) == (True, "passed"), result.reason


def assert_failed(result: VerifierResult) -> None:
    assert (result.passed, result.status) == (False, "failed"), result.reason


def assert_error(result: VerifierResult) -> None:
    assert (result.passed, result.status) == (False, "error"), result.reason


def test_kinds_are_the_documented_six():
    assert set(KINDS) == {"exact", "numeric", "contains", "regex", "json", "python"}


@pytest.mark.skipif(not VERIFIABLE.exists(), reason="shared bench folder absent")
@pytest.mark.parametrize("item", bench_items(), ids=lambda item: item["id"])
def test_every_bench_spec_parses(item):
    spec = parse_spec(item["verifier"])
    assert spec["kind"] == item["verifier"]["kind"]


@pytest.mark.skipif(not VERIFIABLE.exists(), reason="shared bench folder absent")
def test_the_obvious_right_answer_passes_the_bench_specs():
    checked = 0
    for item in bench_items():
        spec = item["verifier"]
        if spec["kind"] in ("numeric", "exact"):
            assert_passed(verify(spec, f"{spec['answer']}"))
            checked += 1
        elif spec["kind"] == "json":
            assert_passed(verify(spec, json.dumps(spec["equals"])))
            checked += 1
    assert checked


def test_spec_as_json_text_and_normalized_defaults():
    assert parse_spec('{"kind": "numeric", "answer": 3}') == {"kind": "numeric", "answer": 3, "tolerance": 1e-6}


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        [1, 2],
        {"answer": "x"},
        {"type": "exact", "answer": "x"},
        {"kind": "essay"},
        {"kind": "exact"},
        {"kind": "exact", "answer": ["x"]},
        {"kind": "exact", "answer": "x", "tolerance": 1},
        {"kind": "numeric", "answer": "forty-two"},
        {"kind": "numeric", "answer": True},
        {"kind": "numeric", "answer": 1, "tolerance": -1},
        {"kind": "contains", "any": "no"},
        {"kind": "contains", "any": []},
        {"kind": "regex", "pattern": "(unclosed"},
        {"kind": "regex", "pattern": "x", "flags": "q"},
        {"kind": "json"},
        {"kind": "json", "schema": {"type": "no-such-type"}},
        {"kind": "python", "tests": ""},
        {"kind": "python", "tests": "assert f(1) =="},
    ],
)
def test_malformed_specs_raise_and_verify_reports_error(spec):
    with pytest.raises(SpecError):
        parse_spec(spec)
    assert_error(verify(spec, "anything"))


def test_exact_normalizes_case_whitespace_and_punctuation():
    spec = {"kind": "exact", "answer": "MARBLE"}
    assert_passed(verify(spec, '  "marble." \n'))
    assert_passed(verify({"kind": "exact", "answer": "new  york"}, "New\tYork!"))
    result = verify(spec, "marbles")
    assert_failed(result)
    assert result.reason == "expected 'marble', found 'marbles'"


def test_numeric_takes_the_last_number():
    spec = {"kind": "numeric", "answer": 35}
    assert_passed(verify(spec, "18 + 17 = 35"))
    assert_passed(verify(spec, "First I thought 34, but it is 35."))
    result = verify(spec, "It is 35, or maybe 36")
    assert_failed(result)
    assert result.reason == "expected 35, found 36"


@pytest.mark.parametrize(
    ("expected", "answer"),
    [
        (1234, "The total is 1,234."),
        (-7, "It drops to -7"),
        (0.75, "3/4"),
        (2.5, "about 2.5 km"),
        (1_000_000, "1,000,000"),
    ],
)
def test_numeric_number_formats(expected, answer):
    assert_passed(verify({"kind": "numeric", "answer": expected}, answer))


def test_numeric_tolerance_and_missing_number():
    assert_passed(verify({"kind": "numeric", "answer": 3.14159, "tolerance": 0.01}, "pi is about 3.14"))
    assert_failed(verify({"kind": "numeric", "answer": 3.14159}, "pi is about 3.14"))
    result = verify({"kind": "numeric", "answer": 3}, "three")
    assert_failed(result)
    assert result.reason == "no number found in the answer"


def test_contains_matches_whole_words_case_insensitively():
    spec = {"kind": "contains", "any": ["no", "never"]}
    assert_passed(verify(spec, "No, that is wrong."))
    assert_failed(verify(spec, "Noted, I will do it."))
    assert_failed(verify(spec, "Nevertheless, yes."))
    assert_passed(verify({"kind": "contains", "any": ["C++"]}, "I would use c++ here"))


def test_regex_search_and_flags():
    spec = {"kind": "regex", "pattern": "^\\s*2024-06-05\\s*$"}
    assert_passed(verify(spec, " 2024-06-05\n"))
    assert_failed(verify(spec, "June 5, 2024"))
    assert_passed(verify({"kind": "regex", "pattern": "^paris$", "flags": "im"}, "Answer:\nParis"))


def test_regex_that_does_not_compile_is_an_error_result():
    result = verify({"kind": "regex", "pattern": "[a-"}, "a")
    assert_error(result)
    assert "does not compile" in result.reason


def test_json_equals_from_fenced_block_and_prose():
    spec = {"kind": "json", "equals": {"name": "Hana", "age": 47}}
    assert_passed(verify(spec, 'Here you go:\n```json\n{"age": 47, "name": "Hana"}\n```'))
    assert_passed(verify(spec, 'Sure! {"name": "Hana", "age": 47.0} is the object.'))
    assert_failed(verify(spec, '{"name": "Hana", "age": 48}'))
    assert_failed(verify({"kind": "json", "equals": {"ok": True}}, '{"ok": 1}'))
    result = verify(spec, "Hana is 47")
    assert_failed(result)
    assert result.reason == "no JSON found in the answer"


def test_json_schema():
    schema = {"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}
    spec = {"kind": "json", "schema": schema}
    assert_passed(verify(spec, '{"name": "Ana", "age": 3}'))
    result = verify(spec, '{"name": "Ana"}')
    assert_failed(result)
    assert "'age' is a required property" in result.reason


def test_python_passes_with_a_fenced_answer():
    answer = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    result = verify({"kind": "python", "tests": ADD_TESTS}, answer, limits=SHORT)
    assert_passed(result)
    assert result.details["exit_code"] == 0


def test_python_failure_names_the_assertion():
    result = verify({"kind": "python", "tests": ADD_TESTS}, "def add(a, b):\n    return a - b", limits=SHORT)
    assert_failed(result)
    assert result.reason == "assertion failed: assert add(2, 3) == 5"


def test_python_missing_function_fails_with_the_error_line():
    result = verify({"kind": "python", "tests": ADD_TESTS}, "I cannot write code.", limits=SHORT)
    assert_failed(result)
    assert result.reason.startswith("SyntaxError") or result.reason.startswith("NameError")


def test_python_timeout_and_memory_are_named():
    tests = "assert spin() == 1"
    looping = verify({"kind": "python", "tests": tests}, "def spin():\n    while True:\n        pass", limits=SHORT)
    assert_failed(looping)
    assert looping.reason == "timed out after 2 s"
    hog_answer = f"def spin():\n    return len(bytearray({FOUR_GB}))"
    hog = verify({"kind": "python", "tests": tests}, hog_answer, limits=SHORT)
    assert_failed(hog)
    assert hog.reason == "memory limit 512 MB"


def test_python_output_flood_is_named():
    flood = "def spin():\n    while True:\n        print('x' * 1000)"
    result = verify({"kind": "python", "tests": "assert spin() == 1"}, flood, limits=SHORT)
    assert_failed(result)
    assert result.reason == f"output exceeded {SHORT.output_bytes} bytes"


def test_python_sandbox_failure_is_an_error(monkeypatch):
    broken = SandboxResult(None, "", "", False, None, False, sandbox_error="cannot start: no launcher")
    monkeypatch.setattr(verifiers, "run_python", lambda code, limits: broken)
    assert_error(verify({"kind": "python", "tests": ADD_TESTS}, "def add(a, b): return a + b"))


def test_results_serialize_to_json():
    for spec, answer in [
        ({"kind": "numeric", "answer": 2}, "2"),
        ({"kind": "json", "equals": [1, None]}, "[1, null]"),
        ({"kind": "contains", "any": ["x"]}, "y"),
    ]:
        payload = verify(spec, answer).to_json()
        assert json.loads(json.dumps(payload)) == payload
        assert {"passed", "status", "reason"} <= payload.keys()


def test_propose_spec_from_the_prompt():
    assert propose_spec("What is 18 + 17? Reply with just the number.") == {"kind": "numeric", "answer": None}
    assert propose_spec('Reply with only a JSON object with keys "name" and "age".') == {"kind": "json", "equals": None}
    prompt = "Write add(a, b).\n```python\n# checks\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"
    assert propose_spec(prompt) == {"kind": "python", "tests": "# checks\nassert add(1, 2) == 3\nassert add(0, 0) == 0"}
    assert propose_spec("Tell me about the history of Rome.") is None
    assert propose_spec("Fix this:\n```python\ndef f():\n    return 1\n```") is None


@pytest.mark.skipif(not VERIFIABLE.exists(), reason="shared bench folder absent")
def test_propose_spec_on_bench_prompts_never_contradicts_the_kind():
    for item in bench_items():
        proposed = propose_spec(item["prompt"])
        assert proposed is None or proposed["kind"] == item["verifier"]["kind"], item["id"]


@pytest.mark.parametrize("answer", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "def f(x): return 2 * x\nraise SystemExit"])
def test_python_answer_that_exits_before_the_tests_fails(answer):
    result = verify({"kind": "python", "tests": "assert f(2) == 4"}, answer)
    assert result.status == "failed"
    assert "before the tests" in result.reason
