"""The jail: how every process that runs a submission's code is confined.

`Jail.command` wraps an argv so that it runs under bubblewrap (`bwrap`):
- in new user, PID, network, IPC and UTS namespaces: it sees only its own processes, has a
  loopback of its own and no other network, and everything it starts dies with it;
- on a read-only view of the system (/usr), of the Python installation and environment,
  and of the job's input folder, and nothing else of the host: no course folder, no home,
  no gradebook, no other job, no reference package;
- with one writable file system of `scratch_mb` (its home, /tmp and /dev/shm). bubblewrap
  0.8 (Debian 12) cannot size a tmpfs, so `unshare` mounts it first, in a user and mount
  namespace of its own that the host never sees;
- under rlimits, set inside the namespaces so that the process count is the jail's alone:
  address space (`memory_limit_mb` per process), CPU time, file size, processes, open files;
- under a syscall filter (syscalls.py) that denies keyrings, file locks, io_uring and other
  kernel state the jails would otherwise share, and new namespaces or mounts from inside;
- with limits for all its processes together: a control group of its own (cgroups.py) for
  processes, memory (`memory_limit_mb` in all, no swap) and one CPU, as root or where a group
  is delegated to the grading user. Linux never applies RLIMIT_NPROC to user id 0, so the
  group is required as root. Without root or delegation, a watch sums the memory of its
  processes and kills them past the limit (processes.py); no CPU quota applies then, and a
  starved call is told from a slow one instead. The watch sees user pages only: socket and
  pipe buffers are kernel memory, which only a group counts, so grading refuses to run that
  way unless the instructor accepts it (UNBOUNDED_KERNEL_MEMORY).
It works without root (user namespaces); as root the sandboxed process has no capabilities.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from ..settings import GradingLimits
from . import cgroups, syscalls
from .processes import MemoryWatch

# Code that runs inside the jail (the notebook run, the judge's student process) lives in
# one folder, mounted at the same package path so that it imports as it does outside.
JAILED_CODE = Path(__file__).parent / "jailed"
JAILED_PACKAGE = "tito.course.grading.jailed"
GRADER_ROOT = "/grader"  # holds tito/course/grading/jailed inside the jail
INPUTS = "/job/in"  # the job's input folder inside the jail (read-only)
PACKAGE = "/job/pkg"  # the student-safe copy of the course package (read-only)
SCRATCH = "/scratch"
# One thread per numerical library in every process of a job, trusted or jailed: a job takes
# one CPU's worth, and a jail's CPU quota holds.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Open files per process: pipes and sockets hold kernel memory no memory watch sees.
OPEN_FILES = 1024

# Mounts the size-limited scratch, then runs bwrap in that namespace. $1 options, $2 folder.
_MOUNT_SCRATCH = (
    'mount -t tmpfs -o "$1" tmpfs "$2" && mkdir "$2/home" "$2/tmp" "$2/shm" && shift 2 && exec "$@"'
)


class JailError(Exception):
    """No jail can be made on this machine (the message says why and how to fix it)."""


def _python_trees() -> list[Path]:
    """Folders the interpreter and its packages live in, outermost first, without repeats."""
    trees = {
        Path(p).resolve()
        for p in (sys.base_prefix, sys.prefix, Path(sys.executable).resolve().parent.parent)
    }
    trees = [
        t
        for t in sorted(trees)
        if not str(t).startswith(("/usr/", "/bin", "/lib")) and t != Path("/usr")
    ]
    return [t for t in trees if not any(t != o and t.is_relative_to(o) for o in trees)]


def stage_files(folder: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path -> text) under `folder`."""
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")


def _installed_copies(packages: list[str]) -> list[Path]:
    """Installed copies in site-packages of the packages staged for the jail (a non-editable
    install of the course holds the reference solutions there); covered inside the jail so that
    only the staged copy is seen."""
    return [
        Path(sp) / name
        for sp in site.getsitepackages()
        for name in packages
        if (Path(sp) / name).is_dir()
    ]


@dataclass
class Jail:
    """One job's confinement. `workdir` is the job's private folder on the host."""

    limits: GradingLimits
    workdir: Path
    enabled: bool = True  # False only with --unsafe-no-jail: same commands, no confinement
    _n: count = field(default_factory=count, repr=False)
    # What bounds each started process's tree in all: its control group, or a memory watch.
    _bounds: dict[int, cgroups.Group | MemoryWatch] = field(default_factory=dict, repr=False)
    memory_hit: bool = False  # some process tree was killed for holding more than memory_limit_mb
    peak_memory_mb: float = 0.0  # the most any one tree held (cgroup peak, or the watch's samples)

    def __post_init__(self):
        self.inputs = self.workdir / "in"
        self.package = self.workdir / "pkg"
        self.inputs.mkdir(parents=True, exist_ok=True)
        self.package.mkdir(exist_ok=True)

    @property
    def isolation(self) -> str:
        if not self.enabled:
            return "none (--unsafe-no-jail)"
        if _grouped():
            return "bubblewrap, seccomp, " + cgroups.describe(self.limits.memory_limit_mb)
        return (
            f"bubblewrap, seccomp, memory watch ({self.limits.memory_limit_mb} MB in all, "
            "user pages only), no CPU quota"
        )

    def add_package(self, files: dict[str, str]) -> None:
        """Stage the package files a submission may import (path -> source; read-only inside)."""
        stage_files(self.package, files)

    def add_input(self, name: str, data: bytes) -> str:
        """Put a file into the job's read-only inputs; return its path as the jailed process sees
        it."""
        (self.inputs / name).write_bytes(data)
        return f"{INPUTS}/{name}" if self.enabled else str(self.inputs / name)

    def environment(self, home: str) -> dict[str, str]:
        grader = GRADER_ROOT if self.enabled else str(Path(__file__).parents[3])
        package = PACKAGE if self.enabled else str(self.package)
        tmp = "/tmp" if self.enabled else home
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": tmp,
            "USER": "student",
            "LOGNAME": "student",
            "LANG": "C.UTF-8",
            # The staged package first, then the jailed code; no user site, no bytecode written.
            "PYTHONPATH": f"{package}:{grader}",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            "IPYTHONDIR": f"{home}/.ipython",
            "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter",
            "JUPYTER_PLATFORM_DIRS": "1",
            **SINGLE_THREADED,
            # nbgrader's documented switch: cells that only demonstrate may skip themselves.
            "NBGRADER_EXECUTION": "autograde",
        }

    def _rlimits(self) -> list[str]:
        lim = self.limits
        return [
            f"--as={lim.memory_limit_mb << 20}",
            f"--cpu={lim.submission_timeout_seconds}",
            f"--fsize={lim.max_output_mb << 20}",
            f"--nproc={lim.max_processes}",
            "--core=0",
            f"--nofile={OPEN_FILES}",
        ]

    def command(self, argv: list[str], seccomp_fd: int) -> tuple[list[str], dict[str, str]]:
        """(argv to start, its environment): `argv` in a fresh jail with a fresh scratch, under the
        syscall filter that `seccomp_fd` reads (inherited by the command)."""
        mountpoint = self.workdir / f"scratch-{next(self._n)}"
        mountpoint.mkdir(mode=0o700)
        tmpfs = f"size={self.limits.scratch_mb}m,nr_inodes=20000,mode=0700"
        bwrap = [
            "bwrap",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--seccomp",
            str(seccomp_fd),
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--ro-bind",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            # The scratch first: what is bound below may live under /tmp (a checkout there).
            "--bind",
            str(mountpoint),
            SCRATCH,
            "--bind",
            f"{mountpoint}/tmp",
            "/tmp",
        ]
        for tree in _python_trees():
            bwrap += ["--ro-bind", str(tree), str(tree)]
        for installed in _installed_copies(
            sorted(p.name for p in self.package.iterdir() if p.is_dir())
        ):
            bwrap += ["--tmpfs", str(installed)]
        bwrap += [
            "--ro-bind",
            str(self.inputs),
            INPUTS,
            "--ro-bind",
            str(self.package),
            PACKAGE,
            "--ro-bind",
            str(JAILED_CODE),
            f"{GRADER_ROOT}/{JAILED_PACKAGE.replace('.', '/')}",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--bind",
            f"{mountpoint}/shm",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--remount-ro",
            "/",
            "--chdir",
            f"{SCRATCH}/home",
            "--clearenv",
        ]
        for key, value in self.environment(f"{SCRATCH}/home").items():
            bwrap += ["--setenv", key, value]
        wrapped = [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _MOUNT_SCRATCH,
            "sh",
            tmpfs,
            str(mountpoint),
            *bwrap,
            "--",
            "prlimit",
            *self._rlimits(),
            "--",
            *argv,
        ]
        return wrapped, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start `argv` jailed; without the jail, in its own session under the same rlimits."""
        if not self.enabled:
            cmd, env = argv, self.environment(str(self._home()))
            return subprocess.Popen(
                cmd,
                env=env,
                preexec_fn=self._unjailed_limits,
                start_new_session=True,
                cwd=env["HOME"],
                **kwargs,
            )
        program = self.workdir / "syscalls.bpf"
        if not program.exists():
            program.write_bytes(syscalls.compiled())
        seccomp_fd = os.open(
            program, os.O_RDONLY
        )  # one per process: bubblewrap reads it to the end
        try:
            cmd, env = self.command(argv, seccomp_fd)
            return self._start(
                cmd, env, pass_fds=(*kwargs.pop("pass_fds", ()), seccomp_fd), **kwargs
            )
        finally:
            os.close(seccomp_fd)

    def _home(self) -> Path:
        home = self.workdir / f"home-{next(self._n)}"
        home.mkdir()
        return home

    def _start(self, cmd: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
        if not _grouped():
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, cwd="/", **kwargs)
            self._bounds[proc.pid] = MemoryWatch(proc, self.limits.memory_limit_mb)
            return proc
        try:
            group = cgroups.Group.create(self.limits.max_processes, self.limits.memory_limit_mb)
        except cgroups.CgroupError as e:
            raise JailError(
                f"the jail bounds each process tree with a control group: {e}"
                + ("; grade as an unprivileged user" if os.geteuid() == 0 else "")
            ) from None
        try:  # joined before exec: everything the jail starts is counted there
            proc = subprocess.Popen(
                cmd, env=env, preexec_fn=group.join, start_new_session=True, cwd="/", **kwargs
            )
        except BaseException:
            group.remove()
            raise
        self._bounds[proc.pid] = group
        return proc

    def ended_by_memory(self, proc: subprocess.Popen) -> bool:
        """Whether `proc`'s tree was killed for holding more than memory_limit_mb in all."""
        bound = self._bounds.get(proc.pid)
        if isinstance(bound, MemoryWatch):
            bound.join()
            return bound.hit
        return bound is not None and bound.memory_limit_hit()

    def close(self) -> None:
        """Record what each process tree used, then remove their control groups (call once
        every process the jail started has ended)."""
        for bound in self._bounds.values():
            if isinstance(bound, MemoryWatch):
                bound.join()
                hit, peak = bound.hit, bound.peak_mb
            else:
                hit, peak = bound.memory_limit_hit(), bound.peak_memory_mb() or 0.0
                bound.remove()
            self.memory_hit |= hit
            self.peak_memory_mb = max(self.peak_memory_mb, peak)
        self._bounds.clear()

    def _unjailed_limits(self) -> None:
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_AS, (lim.memory_limit_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (lim.submission_timeout_seconds,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@functools.cache
def _grouped() -> bool:
    """Whether jails here get control groups: always as root (Linux applies no process limit to
    uid 0 otherwise, so no group means no jail), and without root where a group is delegated."""
    return os.geteuid() == 0 or cgroups.available()


UNBOUNDED_KERNEL_MEMORY = (
    "without root or a control group delegated to this user, the grading jail bounds memory "
    "for user pages only: socket and pipe buffers that a submission fills are kernel memory and "
    "are not counted (one submission can hold gigabytes of them). Grade as root, or from a "
    "delegated group (e.g. `systemd-run --user --scope -p Delegate=yes tito nbgrader "
    "autograde ...`), or pass --accept-unbounded-kernel-memory to grade with that risk"
)


def kernel_memory_bounded() -> bool:
    """Whether a jail's memory limit counts kernel memory (socket and pipe buffers) too: only a
    control group of the memory controller does (as root, or delegated); the memory watch sees
    user pages."""
    return _grouped() and "memory" in cgroups.hierarchies()


@functools.cache
def check(limits: GradingLimits) -> None:
    """Raise JailError unless a jail with `limits` can be made here (tried once per process)."""
    missing = [
        t
        for t in ("bwrap", "unshare", "prlimit")
        if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None
    ]
    if missing:
        raise JailError(
            f"{', '.join(missing)} not found: install them with `apt-get install bubblewrap "
            "util-linux` (make install does this as root)"
        )
    try:
        syscalls.compiled()
    except syscalls.FilterError as e:
        raise JailError(f"no syscall filter for the jail: {e}") from None
    with tempfile.TemporaryDirectory(prefix="tito-jail-check-") as d:
        jail = Jail(limits, Path(d))
        try:
            proc = jail.popen(
                [sys.executable, "-c", "print('ok')"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = proc.communicate(timeout=60)
        finally:
            jail.close()
    if proc.returncode != 0 or out.strip() != b"ok":
        detail = (
            err.decode(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"]
        )[-1]
        raise JailError(
            f"the grading jail cannot start here ({detail}). It needs user namespaces: check that "
            "`sysctl user.max_user_namespaces` is above 0 (and, on some kernels, "
            "kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0)"
        )
