"""Signals from the command line: verify, check, mark, correct, teach, taught, import, inbox, export."""

from __future__ import annotations

import json

import pytest

from conftest import BENCH
from test_cli import run


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_verify_reads_stdin_or_a_file_and_prints_json_last(home, tmp_path):
    import subprocess
    import sys

    answer = tmp_path / "answer.txt"
    answer.write_text("After some thought: 42")
    passed = run("verify", "--spec", '{"kind": "numeric", "answer": 42}', "--answer", str(answer), home=home)
    assert passed.returncode == 0 and last_json(passed.stdout)["passed"] is True
    piped = subprocess.run([sys.executable, "-m", "desktop", "verify", "--spec", '{"kind": "exact", "answer": "MARBLE"}',
                            "--answer", "-"], input="marble.", capture_output=True, text=True)
    assert last_json(piped.stdout)["passed"] is True
    broken = run("verify", "--spec", '{"kind": "telepathy"}', "--answer", str(answer), home=home)
    assert broken.returncode == 2 and last_json(broken.stdout)["status"] == "error"


def test_mark_correct_teach_and_export_from_the_shell(home, tmp_path):
    chat = run("chat", "What is 17+25? Answer with just the number.", "--temperature", "0", "--max-tokens", "12", home=home)
    assert chat.returncode == 0
    check = run("check", "2", "--spec", '{"kind": "numeric", "answer": 42}', home=home)
    assert last_json(check.stdout)["passed"] is ("42" in chat.stdout)
    assert last_json(run("mark", "2", "incorrect", "--reason", "wrong", home=home).stdout)["mark"] == "incorrect"
    assert last_json(run("correct", "2", "42", home=home).stdout)["correction"] == 3
    taught = last_json(run("teach", "My dog is called Biscuit.", home=home).stdout)
    assert taught["acknowledgement"] == "Noted: your dog is called Biscuit."
    assert "(excluded)" in run("taught", "exclude", str(taught["taught"]), home=home).stdout
    assert "(excluded)" not in run("taught", "include", str(taught["taught"]), home=home).stdout
    assert run("taught", "delete", "99", home=home).returncode == 2
    assert run("mark", "1", "correct", home=home).returncode == 2
    counts = last_json(run("export", "--format", "all", str(tmp_path / "out"), home=home).stdout)
    assert counts == {"sft": 2, "preference": 1, "kto": 0}
    pair = json.loads((tmp_path / "out" / "preference.jsonl").read_text())
    assert pair["chosen"] == [{"role": "assistant", "content": "42"}]


@pytest.mark.skipif(not BENCH.exists(), reason="shared bench data not present")
def test_import_bench_files_and_read_the_inbox(home):
    assert last_json(run("import", str(BENCH / "recall-public.jsonl"), home=home).stdout)["taught"] == 40
    assert last_json(run("import", str(BENCH / "verifiable-public.jsonl"), home=home).stdout)["tasks"] == 155
    inbox = last_json(run("inbox", home=home).stdout)
    assert inbox["taught"] == 40 and inbox["pending_tasks"] == 103 and inbox["eval_tasks"] == 52
