"""The jail's syscall filter: kernel state that jails share is out of reach, ordinary work is not.

A probe runs in a real jail, as root and as an unprivileged user: each denied call fails with
EPERM (a keyring write, io_uring, a file lock or a file-event request on the shared read-only
environment, a new namespace, ignoring SIGCHLD...), while processes, threads and files still
work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.grading import unprivileged

pytestmark = pytest.mark.slow  # starts jails

PROBE = r"""
import ctypes, errno, fcntl, json, os, subprocess, sys, threading
import pyseccomp
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name in ["add_key", "request_key", "keyctl", "io_uring_setup", "userfaultfd",
             "perf_event_open", "bpf", "unshare", "setns", "mount", "ptrace",
             "process_vm_readv", "memfd_create", "shmget", "msgget", "semget", "setpriority",
             "sched_setattr", "sched_setaffinity"]:
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    # -3: user keyring
    args = {"add_key": (b"user", b"hidden", b"data", 4, -3)}.get(name, (0, 0, 0, 0, 0))
    r = libc.syscall(nr, *args)
    out[name] = errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
env = open(os.path.join(sys.prefix, "pyvenv.cfg"), "rb")  # the same file for every jail
for name, lock in [("flock", lambda: fcntl.flock(env, fcntl.LOCK_SH | fcntl.LOCK_NB)),
                   ("fcntl_lock", lambda: fcntl.lockf(env, fcntl.LOCK_SH | fcntl.LOCK_NB))]:
    try:
        lock()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
class Flock(ctypes.Structure):
    _fields_ = [("l_type", ctypes.c_short), ("l_whence", ctypes.c_short),
                ("l_start", ctypes.c_long), ("l_len", ctypes.c_long), ("l_pid", ctypes.c_int)]
lock = Flock(fcntl.F_RDLCK, 0, 0, 0, 0)
fcntl_nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "fcntl")
r = libc.syscall(fcntl_nr, env.fileno(), ctypes.c_ulong((1 << 32) | fcntl.F_SETLK),
                 ctypes.byref(lock))
out["fcntl_lock_high_bits"] = errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
clone_nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "clone")
r = libc.syscall(clone_nr, ctypes.c_ulong(0x10000000 | 17), 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if r == 0:
    os._exit(0)  # the child, had the call succeeded
out["clone_newuser"] = errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
r = libc.inotify_init1(0)
out["inotify"] = errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
# File events on the shared environment: another jail's reads as signals (dnotify, leases).
folder = os.open(os.path.dirname(os.__file__), os.O_RDONLY)
# The idle scheduling class is denied, the normal one (what ZeroMQ's threads set) allowed.
sched_nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "sched_setscheduler")
for name, policy in [("sched_idle", 5), ("sched_other", 0)]:
    r = libc.syscall(sched_nr, 0, policy, ctypes.byref(ctypes.c_int(0)))
    out[name] = errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
pipe_r, pipe_w = os.pipe()
for name, cmd, arg in [("f_notify", 1026, 0x80000001), ("f_setlease", 1024, fcntl.F_RDLCK),
                       ("f_setsig", 10, 10), ("f_setpipe_sz", 1031, 4096)]:
    fd = {"f_notify": folder, "f_setpipe_sz": pipe_w}.get(name, env.fileno())
    try:
        fcntl.fcntl(fd, cmd, arg)
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
# Children the kernel reaps at once would take their CPU out of every count.
import signal
try:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    out["sigchld_ignored"] = "ok"
except OSError as e:
    out["sigchld_ignored"] = errno.errorcode[e.errno]
out["process"] = subprocess.run([sys.executable, "-c", "print('child')"],
                                capture_output=True, text=True).stdout.strip()
t = threading.Thread(target=lambda: out.__setitem__("thread", "ok"))
t.start(); t.join()
with open(os.path.join(os.environ["TMPDIR"], "f"), "w") as f:
    out["write"] = str(f.write("x"))
print(json.dumps(out))
"""
RUN = r"""
import subprocess, sys, tempfile
from pathlib import Path
from tito.course.grading.jail import Jail
from tito.course.settings import GradingLimits
with tempfile.TemporaryDirectory() as d:
    jail = Jail(GradingLimits(60, 1024, 60, 64, 16, 16), Path(d))
    probe = jail.add_input("probe.py", sys.stdin.buffer.read())
    proc = jail.popen([sys.executable, probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    jail.close()
    sys.stdout.write(out.decode() or err.decode())
"""
EXPECTED = {
    **{
        name: "EPERM"
        for name in [
            "add_key",
            "request_key",
            "keyctl",
            "io_uring_setup",
            "userfaultfd",
            "perf_event_open",
            "bpf",
            "unshare",
            "setns",
            "mount",
            "ptrace",
            "process_vm_readv",
            "memfd_create",
            "shmget",
            "msgget",
            "semget",
            "setpriority",
            "sched_setattr",
            "sched_setaffinity",
            "flock",
            "fcntl_lock",
        ]
    },
    "fcntl_lock_high_bits": "EPERM",
    "clone_newuser": "EPERM",
    "inotify": "EPERM",
    "f_notify": "EPERM",
    "f_setlease": "EPERM",
    "f_setsig": "EPERM",
    "f_setpipe_sz": "EPERM",
    "sched_idle": "EPERM",
    "sched_other": "ok",
    "sigchld_ignored": "EPERM",
    "process": "child",
    "thread": "ok",
    "write": "1",
}


def _keys() -> set[str]:
    return (
        set(Path("/proc/keys").read_text().splitlines()) if Path("/proc/keys").exists() else set()
    )


def test_the_filter_denies_shared_kernel_state_and_allows_ordinary_work():
    before = _keys()
    proc = subprocess.run(
        [sys.executable, "-c", RUN], input=PROBE.encode(), capture_output=True, timeout=180
    )
    assert json.loads(proc.stdout) == EXPECTED, proc.stdout + proc.stderr
    assert _keys() == before  # nothing of the job's in the keyrings


def test_the_filter_holds_for_an_unprivileged_grader_too():
    """The same probe, the jail made by `nobody` (as root) or by the current unprivileged user."""
    home = Path(tempfile.mkdtemp(prefix="tito-laptop-"))  # not under pytest's folder (owner only)
    try:
        (home / "probe.py").write_text(PROBE)
        (home / "run.py").write_text(
            RUN.replace("sys.stdin.buffer.read()", f"open({str(home / 'probe.py')!r}, 'rb').read()")
        )
        unprivileged.give_to_nobody(home)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TMPDIR": str(home),
        }
        proc = unprivileged.run(
            [
                sys.executable,
                "-c",
                "import os; print(os.geteuid())",
            ],
            cwd=home,
            env=env,
            needed=[REPO, home],
            timeout=60,
        )
        assert proc.stdout.strip() != "0"  # the probe's jail below is made by an unprivileged user
        proc = unprivileged.run(
            [sys.executable, str(home / "run.py")],
            cwd=home,
            env=env,
            needed=[REPO, home],
            timeout=180,
        )
        assert json.loads(proc.stdout) == EXPECTED, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)
