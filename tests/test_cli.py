"""The headless command line on the same core: chat, doctor, --version, bad input."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

from desktop import __version__, paths

CLI = [sys.executable, "-m", "desktop"]


def run(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIGHTSCHOOL_HOME": str(home)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_version(home):
    result = run("--version", home=home)
    assert result.returncode == 0 and result.stdout.strip() == f"nightschool {__version__}"


def test_chat_streams_and_stores_the_exchange(home):
    result = run("chat", "What is the capital of Japan?", "--temperature", "0", "--max-tokens", "30", home=home)
    assert result.returncode == 0, result.stderr
    assert "Tokyo" in result.stdout
    assert "tok/s" in result.stderr
    with sqlite3.connect(home / paths.DB_NAME) as db:
        rows = db.execute("select role, content, model_id from messages order by id").fetchall()
    assert rows[0][:2] == ("user", "What is the capital of Japan?")
    assert rows[1][0] == "assistant" and "Tokyo" in rows[1][1] and rows[1][2] is not None


def test_chat_continues_a_conversation(home):
    first = run("chat", "What is the capital of Japan?", "--temperature", "0", "--max-tokens", "20", home=home)
    assert first.returncode == 0
    second = run("chat", "And of England?", "--conversation", "1", "--temperature", "0", "--max-tokens", "20", home=home)
    assert second.returncode == 0
    with sqlite3.connect(home / paths.DB_NAME) as db:
        assert db.execute("select count(*) from messages where conversation_id = 1").fetchone() == (4,)
        parents = db.execute("select parent_id from messages order by id").fetchall()
    assert parents == [(None,), (1,), (2,), (3,)]


def test_doctor_describes_model_build_and_data(home):
    result = run("doctor", home=home)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert re.search(r"^architecture +llama, 30 layers, trained context 8192$", out, re.M)
    assert re.search(r"^quantization +Q4_1, 134\.\d M parameters", out, re.M)
    assert "GPU offload:" in out
    assert str(home) in out


def test_bad_model_gives_a_clear_message_and_exit_code(home, tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    result = run("--model", str(fake), "chat", "hi", home=home)
    assert result.returncode == 2
    assert "fake.gguf" in result.stderr and "not a GGUF file" in result.stderr
    doctor = run("--model", str(fake), "doctor", home=home)
    assert doctor.returncode == 2 and "PROBLEM" in doctor.stdout
