"""Runs untrusted Python (model answers) with kernel-enforced limits, so hostile code cannot touch the host.

Layers, probed once per process and reported by `isolation()`:

* Namespaces (`unshare` from util-linux, used when a trial run through it succeeds). As root:
  new mount, network, PID, IPC and UTS namespaces; no user namespace is needed because the code
  then runs as uid/gid 65534 (nobody), which has no capabilities at all, cannot read root's 0600
  files and is bound by RLIMIT_NPROC. As a normal user: the same plus a user namespace for the
  setup, and a second, unmapped user namespace entered just before exec so the code holds no
  capabilities and cannot undo the mounts. Inside the mount namespace every mount is bind-remounted
  read-only, the invoking user's home and /run/user/<uid> (and, as root, the first
  non-world-searchable ancestor of the interpreter) are covered by empty tmpfs with only the
  interpreter's prefix bound back, and the working directory is a size-capped private tmpfs that
  vanishes with the namespace. The network namespace has only a downed loopback, so connections and
  DNS fail. The launcher stays PID 1 of the namespace, reaping orphans, and when it exits the kernel
  kills every process left inside, including ones that called setsid().
* Plain fallback (no usable `unshare`): the same launcher without namespaces. As root it still
  switches to nobody when the interpreter is world-reachable; otherwise only the limits below hold.

Always: `python -I -S -u`, a fresh temporary directory as cwd and HOME, a minimal environment, stdin
closed, RLIMIT_CPU/AS/NPROC/FSIZE/NOFILE and RLIMIT_CORE=0, PR_SET_NO_NEW_PRIVS, a new session whose
process group is SIGKILLed on timeout, on output overflow and at the end, and output read
incrementally and capped so a flood never sits in memory. There is no in-process audit hook: code
can bypass one, and it would hide from the tests whether the kernel barriers hold.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import re
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

NOBODY = 65534
MIB = 1024 * 1024
READ_CHUNK = 65536
POLL_S = 0.05
CPU_HARD_GRACE_S = 1
MAX_OPEN_FILES = 256
HIDDEN_TMPFS_SIZE = "1m"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
MAIN_FILE = "main.py"
TEMP_PREFIX = "nightschool-sandbox-"
SETUP_FAILED_EXIT = 125
STDERR_REASON_LINES = 3

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000

MOUNT_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
NAMESPACE_FLAGS = ("--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc")


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may consume; every field is a hard cap enforced by the kernel or the reader."""

    wall_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    max_processes: int = 32
    output_bytes: int = 64_000
    file_size_mb: int = 16
    scratch_mb: int = 64

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {value}")


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended; `killed_reason` names the limit that stopped it, `sandbox_error` a broken sandbox."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    truncated: bool
    sandbox_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the code ran to completion and exited 0."""
        return self.exit_code == 0 and self.killed_reason is None and self.sandbox_error is None


@dataclass(frozen=True)
class _Mode:
    """One isolation recipe: the launcher prefix and how the launcher sheds privileges."""

    launcher: tuple[str, ...]
    drop_to: int | None
    nested_userns: bool


@dataclass(frozen=True)
class _Capture:
    """Raw output of one run as the reader saw it."""

    stdout: bytes
    stderr: bytes
    timed_out: bool
    truncated: bool
    launcher_exit: int


def run_python(code: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Runs code under the strongest isolation this host supports."""
    return _run(code, limits, _active_mode())


def isolation() -> tuple[str, ...]:
    """Names the barriers active here, so the UI can warn and tests know what to expect."""
    mode = _active_mode()
    features = ["rlimits", "process-group-kill", "no-new-privs"]
    if mode.launcher:
        features += ["mount-namespace", "network-namespace", "pid-namespace", "ipc-namespace",
                     "read-only-filesystem", "hidden-home"]
    if mode.nested_userns:
        features.append("user-namespace")
    if mode.drop_to is not None:
        features.append("unprivileged-uid")
    if mode.drop_to is not None or os.geteuid() != 0:
        features.append("process-limit")
    return tuple(features)


@functools.cache
def _active_mode() -> _Mode:
    """Picks namespaces when a trial run through them works, else the plain launcher."""
    mode = _namespace_mode()
    if mode is not None:
        trial = _run("pass", SandboxLimits(), mode)
        if trial.ok:
            return mode
        log.warning("sandbox: namespaces unusable (%s); falling back to plain isolation",
                    trial.sandbox_error or trial.killed_reason or trial.stderr.strip()[-200:])
    return _plain_mode()


def _namespace_mode() -> _Mode | None:
    """The unshare recipe for this user, or None without util-linux unshare."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    if os.geteuid() == 0:
        return _Mode((unshare, *NAMESPACE_FLAGS, "--"), NOBODY, False)
    return _Mode((unshare, "--user", "--map-root-user", *NAMESPACE_FLAGS, "--"), None, True)


def _plain_mode() -> _Mode:
    """Without namespaces root can still become nobody, if nobody can reach the interpreter."""
    reachable = all(_first_closed_ancestor(root) is None for root in _interpreter_roots())
    return _Mode((), NOBODY if os.geteuid() == 0 and reachable else None, False)


@functools.cache
def _interpreter() -> str:
    """The real interpreter binary (a venv's python is a link to it, and -I ignores the venv)."""
    return os.path.realpath(sys.executable)


def _interpreter_roots() -> tuple[str, ...]:
    """Top-level directories the interpreter needs: its prefixes, minus ones nested in another."""
    paths = {os.path.realpath(p) for p in
             (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(_interpreter())))}
    return tuple(sorted(p for p in paths if not any(p != q and _within(p, q) for q in paths)))


def _within(path: str, parent: str) -> bool:
    """Path containment by components, not by string prefix."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _first_closed_ancestor(path: str) -> str | None:
    """The outermost directory on the way to path that other users cannot search."""
    current = "/"
    for part in Path(path).parts[1:]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current
    return None


def _hidden_dirs(mode: _Mode) -> list[str]:
    """Directories to cover with empty tmpfs: the user's home and runtime dir, and (as root) closed ancestors."""
    roots = _interpreter_roots()
    candidates = {os.path.expanduser("~"), f"/run/user/{os.getuid()}"}
    if mode.drop_to is not None:
        candidates.update(filter(None, (_first_closed_ancestor(root) for root in roots)))
    usable = {os.path.realpath(d) for d in candidates if os.path.isdir(d)}
    return sorted(d for d in usable
                  if d != "/" and not any(_within(d, root) for root in roots)
                  and not any(d != other and _within(d, other) for other in usable))


def _run(code: str, limits: SandboxLimits, mode: _Mode) -> SandboxResult:
    """Launches the bootstrap for one run in a fresh temporary directory and collects what it did."""
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, ignore_cleanup_errors=True) as workdir:
        main = Path(workdir, MAIN_FILE)
        main.write_text(code, encoding="utf-8")
        if mode.drop_to is not None and not mode.launcher:
            os.chown(workdir, mode.drop_to, mode.drop_to)
            main.chmod(0o644)
        status_r, status_w = os.pipe()
        with os.fdopen(status_r, "rb") as status_pipe:
            config = {
                "workdir": workdir,
                "python": _interpreter(),
                "namespaced": bool(mode.launcher),
                "drop_to": mode.drop_to,
                "nested_userns": mode.nested_userns,
                "keep": list(_interpreter_roots()),
                "hide": _hidden_dirs(mode) if mode.launcher else [],
                "limits": asdict(limits),
                "status_fd": status_w,
            }
            command = [*mode.launcher, _interpreter(), "-I", "-S", os.path.abspath(__file__), json.dumps(config)]
            try:
                proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=workdir, env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"},
                    start_new_session=True, pass_fds=(status_w,),
                )
            except OSError as exc:
                return SandboxResult(None, "", "", False, None, False, sandbox_error=f"cannot start: {exc}")
            finally:
                os.close(status_w)
            with proc:
                capture = _collect(proc, limits)
            status = _read_status(status_pipe)
    return _result(capture, status, limits)


def _collect(proc: subprocess.Popen, limits: SandboxLimits) -> _Capture:
    """Reads both pipes until the launcher is done, the wall clock or the output cap, then stops everything."""
    deadline = time.monotonic() + limits.wall_s
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    total = 0
    timed_out = truncated = False
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while (selector.get_map() or not _exited(proc.pid)) and not truncated:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = not _exited(proc.pid)
                break
            for key, _ in selector.select(min(remaining, POLL_S)):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = limits.output_bytes - total
                buffers[key.fd] += chunk[:room]
                total += min(len(chunk), room)
                if len(chunk) > room:
                    truncated = True
                    break
            if _exited(proc.pid):
                _kill_group(proc.pid)
    _stop(proc)
    stdout, stderr = buffers.values()
    return _Capture(bytes(stdout), bytes(stderr), timed_out, truncated, proc.returncode)


def _stop(proc: subprocess.Popen) -> None:
    """Kills the launcher's child first: unshare returns only once that PID-1 exit has emptied the namespace."""
    children = _children(proc.pid)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    if children:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    _kill_group(proc.pid)
    proc.wait()


def _children(pid: int) -> list[int]:
    """Direct children of a process, read before it is reaped (empty when it has exited)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _exited(pid: int) -> bool:
    """Whether the launcher has exited, without reaping it (so its pid cannot be reused yet)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pgid: int) -> None:
    """SIGKILLs everything left in the run's process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_status(pipe: IO[bytes]) -> dict:
    """Merges the JSON lines the launcher reported: {"exit": code} and/or {"error": message}."""
    os.set_blocking(pipe.fileno(), False)
    status: dict = {}
    for line in (pipe.read() or b"").splitlines():
        status.update(json.loads(line))
    return status


def _result(capture: _Capture, status: dict, limits: SandboxLimits) -> SandboxResult:
    """Turns raw capture plus launcher status into a result whose reason names the limit hit."""
    stdout = capture.stdout.decode("utf-8", errors="replace")
    stderr = capture.stderr.decode("utf-8", errors="replace")
    exit_code = status.get("exit")
    error = status.get("error")
    if error is not None:
        exit_code = None
    elif exit_code is None and not (capture.timed_out or capture.truncated):
        error = f"launcher ended without a report (exit {capture.launcher_exit}): {stderr.strip()[-200:]}"
    return SandboxResult(exit_code, stdout, stderr, capture.timed_out,
                         _killed_reason(capture, exit_code, stderr, limits), capture.truncated, error)


def _killed_reason(capture: _Capture, exit_code: int | None, stderr: str, limits: SandboxLimits) -> str | None:
    """Names the limit that ended the run, or None when the code ended on its own."""
    if capture.truncated:
        return f"output exceeded {limits.output_bytes} bytes"
    if capture.timed_out:
        return f"wall-clock limit {limits.wall_s:g} s"
    if exit_code == -signal.SIGXCPU:
        return f"cpu limit {limits.cpu_s} s"
    last_lines = stderr.strip().splitlines()[-STDERR_REASON_LINES:]
    if exit_code == 1 and any(line.startswith("MemoryError") for line in last_lines):
        return f"memory limit {limits.memory_mb} MB"
    if exit_code is not None and exit_code < 0:
        return f"killed by {signal.Signals(-exit_code).name}"
    return None


# Everything below runs in the launcher process (`python -I -S sandbox.py CONFIG`), not in the app.


def _boot(config: dict) -> None:
    """Launcher: builds the jail, forks the code, stays its init, and reports how it ended."""
    status_fd = config["status_fd"]
    os.set_inheritable(status_fd, False)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 with no handler, signals from inside are ignored
    try:
        if config["namespaced"]:
            _jail_filesystem(config)
        child = os.fork()
        if child == 0:
            _exec_code(config)
        _prctl(PR_SET_DUMPABLE, 0)
        os.write(status_fd, json.dumps({"exit": _wait_for(child)}).encode() + b"\n")
    except Exception as exc:  # any setup failure must reach the parent as a sandbox error
        _report(status_fd, exc)
        os._exit(SETUP_FAILED_EXIT)


def _exec_code(config: dict) -> None:
    """Forked child: applies limits, sheds privileges, and becomes the user's program."""
    try:
        _apply_rlimits(SandboxLimits(**config["limits"]))
        if config["drop_to"] is not None:
            os.setgroups([])
            os.setgid(config["drop_to"])
            os.setuid(config["drop_to"])
        if config["nested_userns"]:
            _libc("unshare", CLONE_NEWUSER)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        workdir, python = config["workdir"], config["python"]
        env = {"HOME": workdir, "TMPDIR": workdir, "PATH": SAFE_PATH, "LANG": "C.UTF-8"}
        os.execve(python, [python, "-I", "-S", "-u", "-X", "utf8", MAIN_FILE], env)
    except BaseException as exc:  # the forked child must never return into the launcher's code
        _report(config["status_fd"], exc)
    os._exit(SETUP_FAILED_EXIT)


def _apply_rlimits(limits: SandboxLimits) -> None:
    """Kernel caps on the code and everything it spawns."""
    _, open_files_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    caps = {
        resource.RLIMIT_CPU: (limits.cpu_s, limits.cpu_s + CPU_HARD_GRACE_S),
        resource.RLIMIT_AS: (limits.memory_mb * MIB,) * 2,
        resource.RLIMIT_NPROC: (limits.max_processes,) * 2,
        resource.RLIMIT_FSIZE: (limits.file_size_mb * MIB,) * 2,
        resource.RLIMIT_NOFILE: (min(MAX_OPEN_FILES, open_files_hard),) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, (soft, hard) in caps.items():
        resource.setrlimit(which, (soft, hard))


def _jail_filesystem(config: dict) -> None:
    """Inside the new mount namespace: everything read-only, homes hidden, a private tmpfs as cwd."""
    workdir = config["workdir"]
    code = Path(workdir, MAIN_FILE).read_bytes()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in config["keep"]]
    _remount_all_readonly()
    for hidden in config["hide"]:
        _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=755,size={HIDDEN_TMPFS_SIZE}")
        for path, fd in kept:
            if _within(path, hidden):
                os.makedirs(path, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if _within(workdir, hidden):
            os.makedirs(workdir, exist_ok=True)
        _mount(None, hidden, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for _, fd in kept:
        os.close(fd)
    owner = config["drop_to"] if config["drop_to"] is not None else os.getuid()
    scratch_mb = config["limits"]["scratch_mb"]
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=700,uid={owner},gid={owner},size={scratch_mb}m")
    Path(workdir, MAIN_FILE).write_bytes(code)
    os.chdir(workdir)


def _remount_all_readonly() -> None:
    """Bind-remounts every mount of this namespace read-only (MS_BIND: never the shared superblock)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = _unescape_mountinfo(fields[4])
        options = fields[5].split(",")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for option in options:
            flags |= MOUNT_OPTION_FLAGS.get(option, 0)
        if "noatime" not in options and "relatime" not in options:
            flags |= MS_STRICTATIME
        try:
            _mount(None, mount_point, None, flags)
        except OSError:
            if os.path.ismount(mount_point):
                raise
            log.debug("skipping shadowed mount %s", mount_point)


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def _wait_for(child: int) -> int:
    """Reaps every orphan (the launcher may be PID 1) until the code's own process ends."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def _report(status_fd: int, exc: BaseException) -> None:
    """Tells the parent that the sandbox, not the code, failed."""
    os.write(status_fd, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) through libc; the stdlib has no binding."""
    _libc("mount", _c_string(source), _c_string(target), _c_string(fstype), ctypes.c_ulong(flags), _c_string(data))


def _c_string(text: str | None) -> bytes | None:
    """A NULL or a char* argument for ctypes."""
    return None if text is None else text.encode()


def _prctl(option: int, value: int) -> None:
    """prctl(2) with one argument."""
    _libc("prctl", option, ctypes.c_ulong(value), 0, 0, 0)


def _libc(name: str, *args: object) -> None:
    """Calls a libc function that returns 0 on success, raising OSError with errno otherwise."""
    function = getattr(ctypes.CDLL(None, use_errno=True), name)
    if function(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


if __name__ == "__main__":
    _boot(json.loads(sys.argv[1]))
