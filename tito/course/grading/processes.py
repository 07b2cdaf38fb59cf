"""What a jailed process tree is using, read from /proc by the trusted side.

- `tree(pid)`: the process and all its descendants (a jail's processes stay below its first
  process whatever they do: setsid changes the session, not the parent chain, and orphans are
  adopted by the jail's own init);
- `MemoryWatch`: where no control group can be made, a thread sums the anonymous and
  shared-memory pages of the tree (RssAnon + RssShmem, kernel counters: cheap whatever the
  process maps) every `PERIOD` seconds and kills the tree past the limit;
- `Allowance`: the time one call of the student's code may take, more while the machine keeps
  it waiting for a CPU, and `Starved` when the machine kept it waiting too long;
- `CpuWatch`: the judgement below, second by second over a whole run, summed.
A tree is starved in an interval when at most looks some thread of it wanted a CPU (state R:
running or runnable) while the tree, children it has already reaped included, used less than
half a CPU. A tree that keeps itself busy (however many processes) uses its CPU; one that
sleeps wants none: neither is starved. (The threads' states are looked at, not the kernel's
wait accounts, which grow only when a thread next runs: a thread that never got a CPU would
look asleep.)
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

PERIOD = 0.05  # seconds between two samples of the memory watch
PROBE_SECONDS = 1.0  # a kernel run's starvation is judged per this many seconds
LOOK_SECONDS = 0.2  # a call past its time is watched this long before it is judged again
OVERTIME = 8  # a call kept waiting for a CPU may take this many times its time limit


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def memory_mb(pids: list[int]) -> float:
    """Anonymous and shared-memory pages held by `pids` (a page two of them map counts twice)."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):  # gone meanwhile
            pass
    return total_kb / 1024


class MemoryWatch:
    """Kills the process group of `proc` once its tree holds more than `limit_mb` (RssAnon +
    RssShmem)."""

    def __init__(self, proc, limit_mb: int):
        self.proc, self.limit_mb = proc, limit_mb
        self.hit, self.peak_mb = False, 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.proc.poll() is None:
            used = memory_mb(tree(self.proc.pid))
            self.peak_mb = max(self.peak_mb, used)
            if used > self.limit_mb:
                self.hit = True
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            time.sleep(PERIOD)

    def join(self) -> None:
        self._thread.join()


TICK = os.sysconf("SC_CLK_TCK")
STATE_SAMPLES = 10  # looks at the threads' states per judged interval


def state(pid: int) -> str | None:
    """The process's state letter (R running, S sleeping, Z exited and not yet reaped, ...)."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def cpu_seconds(pids: list[int]) -> float:
    """CPU the processes used so far, with the children they have reaped. An exited child not
    yet reaped is in the tree (a zombie keeps its CPU times); the jail's filter keeps a
    submission from having the kernel reap its children at once (ignoring SIGCHLD), which
    would drop their CPU from every count."""
    total = 0
    for p in pids:
        fields = _stat_fields(p)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def _runnable(pids: list[int]) -> bool:
    """Whether some thread of the processes is running or waiting for a CPU (state R)."""
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            fields = _stat_fields(f"{p}/task/{tid}")
            if fields is not None and fields[0] == "R":
                return True
    return False


def _judge(
    pid: int, seconds: float, stop: threading.Event | None = None
) -> tuple[float, float, float]:
    """Watch the tree for `seconds` (less if `stop` is set): (CPU it used, share of looks at which
    it wanted a CPU, elapsed). The tree is looked up again at each look: processes come and go."""
    started, stop = time.monotonic(), stop or threading.Event()
    cpu_before, wanting, looks = cpu_seconds(tree(pid)), 0, 0
    while looks < STATE_SAMPLES and not stop.wait(seconds / STATE_SAMPLES):
        wanting, looks = wanting + _runnable(tree(pid)), looks + 1
    return cpu_seconds(tree(pid)) - cpu_before, wanting / max(1, looks), time.monotonic() - started


def _starved(ran: float, wanting: float, seconds: float) -> bool:
    """Wanted a CPU most of the time, and got less than half of one."""
    return wanting >= 0.5 and ran < seconds / 2


class Starved(Exception):
    """The machine, not the code, kept a call from finishing: it wanted a CPU and got too little."""


class Allowance:
    """The time one call of the tree under `pid` may take: `seconds`, counted in CPU when the
    machine is busy.

    When the time is up (`extend`), a tree that slept, or that used `seconds` of CPU, has had its
    time. One that wants a CPU and has used less is waited for, until it has used that much or
    OVERTIME times `seconds` have passed (`latest` at most): then the machine is named
    (Starved). So a call that computes too long times out after the same CPU whatever the
    machine's load (if it leaves the call an eighth of a CPU), and how it spreads its work over
    processes changes nothing. (Its priority, scheduling class and CPUs are the jail's: the
    syscall filter denies changing them.)
    """

    def __init__(self, pid: int, seconds: float, latest: float = math.inf, main: int = 0):
        """`main`: the process the call runs in. Its CPU alone is then the count to start from
        (one read, where the whole tree is a walk of /proc): other processes the tree already
        has make the call look less starved, never more."""
        self.pid, self.seconds = pid, seconds
        self.started = time.monotonic()
        self.cpu_before = cpu_seconds([main] if main else tree(pid))
        self.deadline = min(self.started + seconds, latest)
        self.latest = min(self.started + OVERTIME * max(0.0, seconds), latest)

    @property
    def granted(self) -> float:
        """Seconds taken so far beyond `seconds` because the machine kept the call waiting."""
        return max(0.0, min(time.monotonic(), self.deadline) - self.started - self.seconds)

    def extend(self) -> float | None:
        """At the deadline: a later one while the tree is starved, or None (its time is up)."""
        _, wanting, _ = _judge(self.pid, LOOK_SECONDS)
        ran = cpu_seconds(tree(self.pid)) - self.cpu_before
        if wanting < 0.5 or ran >= self.seconds:
            return None
        now = time.monotonic()
        if now >= self.latest:
            raise Starved(
                f"the grading machine was busy: in {now - self.started:.1f} s the code wanted a "
                f"CPU {wanting:.0%} of the time and ran for {ran:.2f} s"
            )
        self.deadline = min(now + LOOK_SECONDS, self.latest)
        return self.deadline


class CpuWatch:
    """Seconds in which the tree under `proc` was starved of CPU, judged every `period` s."""

    def __init__(self, proc, period: float = PROBE_SECONDS):
        self.proc, self.period = proc, period
        self.starved_seconds = 0.0
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._ended.is_set() and self.proc.poll() is None:
            ran, wanting, elapsed = _judge(self.proc.pid, self.period, self._ended)
            if not self._ended.is_set() and _starved(ran, wanting, elapsed):
                self.starved_seconds += elapsed

    def join(self) -> float:
        """The starved seconds (call once the process has ended)."""
        self._ended.set()
        self._thread.join()
        return self.starved_seconds
