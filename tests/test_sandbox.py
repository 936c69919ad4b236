"""Sandbox attacks: each must end as a failed run naming the limit, and leave the host exactly as it was."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from desktop import sandbox
from desktop.sandbox import SandboxLimits, SandboxResult, run_python

SHORT = SandboxLimits(wall_s=2.0)
SMALL_BOMB = SandboxLimits(wall_s=2.0, max_processes=8)
FOUR_GB = 4 * 1024**3
HUNDRED_MB_OF_LINES = 100_000
SENTINEL_TEXT = "untouched"
SECRET_TEXT = "correct-horse-battery-staple"


def require(feature: str) -> None:
    """Skips where this host cannot provide the barrier under test."""
    if feature not in sandbox.isolation():
        pytest.skip(f"isolation here lacks {feature}: {sandbox.isolation()}")


def sandbox_uid_pids() -> set[int]:
    """Processes running as the sandbox uid (nobody)."""
    pids = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        uid_line = next((line for line in lines if line.startswith("Uid:")), "")
        if uid_line.split()[1:2] == [str(sandbox.NOBODY)]:
            pids.add(int(status.parent.name))
    return pids


@pytest.fixture
def temp_base(monkeypatch, tmp_path):
    """Sandbox temp dirs go to a private, world-searchable base (pytest's tmp_path is made first)."""
    base = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    base.chmod(stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def launched(monkeypatch):
    """Records the pid (= process group) of every launcher the sandbox starts."""
    pids: list[int] = []

    class RecordingPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pids.append(self.pid)

    monkeypatch.setattr(sandbox.subprocess, "Popen", RecordingPopen)
    return pids


@pytest.fixture
def attack(temp_base, launched):
    """Runs code and asserts nothing of it survives: no temp dir, no process group, no sandbox-uid process."""
    sandbox.isolation()

    def run(code: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
        before = sandbox_uid_pids()
        launched.clear()
        result = run_python(code, limits)
        assert list(temp_base.iterdir()) == []
        assert launched
        for pgid in launched:
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
        assert sandbox_uid_pids() <= before
        return result

    return run


@pytest.fixture
def outside(tmp_path):
    """A directory the test owns, holding a sentinel file and a 0600 secret."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "sentinel.txt").write_text(SENTINEL_TEXT)
    secret = folder / "secret.txt"
    secret.write_text(SECRET_TEXT)
    secret.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return folder


def test_clean_run_passes_and_sees_its_own_home(attack):
    result = attack(
        "import os\nopen('note.txt', 'w').write('hi')\n"
        "print(open('note.txt').read(), os.path.expanduser('~') == os.getcwd())"
    )
    assert result.ok
    assert result.stdout.split() == ["hi", "True"]
    assert result.killed_reason is None and result.sandbox_error is None


def test_nonzero_exit_is_reported(attack):
    result = attack("import sys\nprint('bye')\nsys.exit(3)")
    assert result.exit_code == 3 and not result.ok
    assert result.stdout == "bye\n"


def test_infinite_loop_hits_the_wall_clock(attack):
    result = attack("while True:\n    pass", SHORT)
    assert result.timed_out and not result.ok
    assert result.killed_reason == "wall-clock limit 2 s"


def test_cpu_limit_kills_a_busy_loop(attack):
    result = attack("while True:\n    pass", SandboxLimits(wall_s=3.0, cpu_s=1))
    assert not result.ok and not result.timed_out
    assert result.killed_reason == "cpu limit 1 s"


def test_memory_hog_hits_the_memory_limit(attack):
    result = attack(f"hog = bytearray({FOUR_GB})\nprint('allocated')")
    assert not result.ok
    assert "allocated" not in result.stdout
    assert result.killed_reason == "memory limit 512 MB"


def test_output_flood_is_capped_and_killed(attack):
    result = attack(f"for _ in range({HUNDRED_MB_OF_LINES}):\n    print('x' * 1000)")
    assert result.truncated and not result.ok
    assert result.killed_reason == "output exceeded 64000 bytes"
    assert len(result.stdout.encode()) + len(result.stderr.encode()) <= SandboxLimits().output_bytes


def test_fork_bomb_with_escaping_children_is_torn_down(attack):
    require("pid-namespace")
    bomb = (
        "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n"
        "    except OSError:\n        pass"
    )
    result = attack(bomb, SMALL_BOMB)
    assert not result.ok
    assert result.killed_reason == "wall-clock limit 2 s"


def test_subprocess_bomb_is_held_to_the_process_limit(attack):
    require("process-limit")
    bomb = (
        "import subprocess, sys\nspawned = 0\nwhile True:\n    try:\n"
        "        subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(60)'])\n"
        "        spawned += 1\n        print(spawned, flush=True)\n    except OSError:\n        pass"
    )
    result = attack(bomb, SMALL_BOMB)
    assert not result.ok
    assert result.killed_reason == "wall-clock limit 2 s"
    counts = [int(line) for line in result.stdout.split()]
    assert counts and max(counts) < SMALL_BOMB.max_processes


def test_cannot_connect_to_the_hosts_loopback(attack):
    require("network-namespace")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = attack(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not result.ok
    assert "Network is unreachable" in result.stderr


def test_cannot_resolve_host_names(attack):
    require("network-namespace")
    result = attack("import socket\nprint(socket.getaddrinfo('example.com', 80))")
    assert not result.ok
    assert "gaierror" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("target", ["sentinel.txt", "new-file.txt"])
def test_cannot_write_into_a_directory_the_test_owns(attack, outside, target):
    require("unprivileged-uid")
    path = outside / target
    result = attack(f"open({str(path)!r}, 'w').write('pwned')")
    assert not result.ok
    assert "Error" in result.stderr
    assert (outside / "sentinel.txt").read_text() == SENTINEL_TEXT
    assert not (outside / "new-file.txt").exists()


def test_cannot_write_into_the_real_home(attack):
    require("read-only-filesystem")
    target = Path(os.path.expanduser("~")) / f"nightschool-sandbox-probe-{uuid.uuid4().hex}"
    result = attack(f"open({str(target)!r}, 'w').write('pwned')")
    assert not result.ok
    assert not target.exists()


def test_cannot_read_the_users_secret(attack, outside):
    require("unprivileged-uid")
    result = attack(f"print(open({str(outside / 'secret.txt')!r}).read())")
    assert not result.ok
    assert SECRET_TEXT not in result.stdout + result.stderr
    assert "PermissionError" in result.stderr


def test_plain_fallback_still_enforces_limits(attack, monkeypatch):
    monkeypatch.setattr(sandbox, "_active_mode", sandbox._plain_mode)
    assert "network-namespace" not in sandbox.isolation()
    assert attack("print(6 * 7)").stdout == "42\n"
    assert attack("while True:\n    pass", SHORT).killed_reason == "wall-clock limit 2 s"
    assert attack(f"for _ in range({HUNDRED_MB_OF_LINES}):\n    print('x' * 1000)").truncated


def test_missing_or_broken_unshare_falls_back_without_crashing(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert sandbox._active_mode.__wrapped__().launcher == ()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/bin/false")
    assert sandbox._active_mode.__wrapped__().launcher == ()


def test_a_broken_launcher_is_a_sandbox_error_not_a_failure(temp_base):
    result = sandbox._run("print(1)", SandboxLimits(), sandbox._Mode(("/bin/false",), None, False))
    assert result.sandbox_error is not None and not result.ok
    assert list(temp_base.iterdir()) == []


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        SandboxLimits(wall_s=0)
