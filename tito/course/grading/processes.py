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
sleeps wants none; one that lowered its own priority chose to wait (`lowered`): none of them is
starved. (The threads' states are looked at, not the kernel's
wait accounts, which grow only when a thread next runs: a thread that never got a CPU would
look asleep.)
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time

PERIOD = 0.05  # seconds between two samples of the memory watch
PROBE_SECONDS = 1.0  # a kernel run's starvation is judged per this many seconds
LOOK_SECONDS = 0.2  # a call past its time is watched this long before it is judged again
OVERTIME = 8  # a call kept waiting for a CPU may take this many times its time limit


def _proc_file(path: str) -> bytes | None:
    """A file under /proc as bytes (None: the process is gone). Bytes, not text: a process names
    itself (its comm, in stat and status) with any bytes, UTF-8 or not."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat_fields(pid: int | str) -> list[bytes] | None:
    data = _proc_file(f"/proc/{pid}/stat")
    if not data:
        return None
    return data[data.rindex(b")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...


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
        # Lines end with \n only: the kernel escapes \n in the process's name, not \r, so a
        # name can hold "\rRssAnon: ..." (bytes.splitlines would make that a line of its own).
        for line in (_proc_file(f"/proc/{pid}/status") or b"").split(b"\n"):  # b"": gone
            if line.startswith((b"RssAnon:", b"RssShmem:")):
                total_kb += int(line.split()[1])
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
            try:
                used = memory_mb(tree(self.proc.pid))
                self.peak_mb = max(self.peak_mb, used)
            except Exception:  # a watch that cannot read the tree cannot bound it: stop it
                used = math.inf
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
    return fields[0].decode("ascii") if fields else None


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
            if fields is not None and fields[0] == b"R":
                return True
    return False


def _autogroup_nice(pid: int | str) -> int:
    """The nice value of the process's autogroup (0 where the kernel has none)."""
    try:  # "/autogroup-51 nice 0"
        return int((_proc_file(f"/proc/{pid}/autogroup") or b"").split()[-1])
    except (ValueError, IndexError):
        return 0


def lowered(pids: list[int]) -> bool:
    """Whether one of the processes runs below the grader's own priority: a higher nice value for
    a thread or its autogroup (/proc/PID/autogroup, a file a process may write), or another
    scheduling class. A tree that lowers itself is never starved by the machine: it chose to
    wait. (A grader started with `nice` gives its jails its own nice value: not lowered.)"""
    nice, policy = os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)
    group_nice = max(0, _autogroup_nice("self"))
    for p in pids:
        if _autogroup_nice(p) > group_nice:
            return True
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            fields = _stat_fields(f"{p}/task/{tid}")  # field 19 nice, field 41 policy
            if fields is not None and (int(fields[16]) > nice or int(fields[38]) != policy):
                return True
    return False


def _judge(
    pid: int, seconds: float, stop: threading.Event | None = None
) -> tuple[float, float, float]:
    """Watch the tree for `seconds` (less if `stop` is set): (CPU it used, share of looks at which
    it wanted a CPU, elapsed). The tree is looked up again at each look: processes come and go.
    A tree that lowered its own priority never wants a CPU (`lowered`)."""
    started, stop = time.monotonic(), stop or threading.Event()
    cpu_before, wanting, looks = cpu_seconds(tree(pid)), 0, 0
    while looks < STATE_SAMPLES and not stop.wait(seconds / STATE_SAMPLES):
        pids = tree(pid)
        wanting, looks = wanting + (_runnable(pids) and not lowered(pids)), looks + 1
    return cpu_seconds(tree(pid)) - cpu_before, wanting / max(1, looks), time.monotonic() - started


def _starved(ran: float, wanting: float, seconds: float, share: float = 0.5) -> bool:
    """Wanted a CPU most of the time, and got less than `share` of one."""
    return wanting >= 0.5 and ran < seconds * share


HELD_BACK = 0.75  # a call past its time is waited for while it gets less than this of a CPU


class Starved(Exception):
    """The machine, not the code, kept a call from finishing: it wanted a CPU and got too little."""


class Allowance:
    """The time one call of the tree under `pid` may take: `seconds`, counted in CPU while the
    machine keeps the call waiting.

    When the time is up (`extend`), a tree that slept or that used `seconds` of CPU has had its
    time. One that still computes is watched for a moment (a look): if the machine held it back
    meanwhile (it wanted a CPU and got less than HELD_BACK of one; a tree alone on an idle
    machine gets all of one), it is given more time, until it has used `seconds` of CPU; if it
    ran freely, its time is up. Past OVERTIME times `seconds` (`latest` at most), a call still
    held back is the machine's (Starved). So a call that computes too long times out after the
    same CPU whatever the machine's load (if it leaves the call an eighth of a CPU), however it
    spreads its work over processes, and neither sleeping first nor lowering its priority
    (`lowered`) makes it look held back. `starved`: the seconds of looks in which it was.
    """

    def __init__(self, pid: int, seconds: float, latest: float = math.inf, main: int = 0):
        """`main`: the process the call runs in. Its CPU alone is then the count to start from
        (one read, where the whole tree is a walk of /proc): other processes the tree already
        has make the call look less starved, never more."""
        self.started = time.monotonic()
        self.pid, self.seconds = pid, max(0.0, min(seconds, latest - self.started))
        self.cpu_before = cpu_seconds([main] if main else tree(pid))
        self.deadline = self.started + self.seconds
        self.latest = min(self.started + OVERTIME * self.seconds, latest)
        self.starved = 0.0

    def extend(self) -> float | None:
        """At the deadline: a later one while the tree is held back, or None (its time is up)."""
        ran_now, wanting, elapsed = _judge(self.pid, LOOK_SECONDS)
        ran = cpu_seconds(tree(self.pid)) - self.cpu_before
        now = time.monotonic()
        verdict = overtime_verdict(ran, self.seconds, ran_now, wanting, elapsed, now >= self.latest)
        if verdict == "up":
            return None
        self.starved += elapsed
        if verdict == "starved":
            raise Starved(
                f"the grading machine was busy: in {now - self.started:.1f} s the code wanted a "
                f"CPU {wanting:.0%} of the time and ran for {ran:.2f} s"
            )
        self.deadline = min(now + LOOK_SECONDS, self.latest)
        return self.deadline


def overtime_verdict(
    ran: float, seconds: float, ran_now: float, wanting: float, elapsed: float, last: bool
) -> str:
    """What a look at a call past its time says: "up" (it slept, it had `seconds` of CPU, or it
    runs freely: its time is up), "more" (the machine holds it back: wait), or "starved" (held
    back at its `last` look). `ran`: its CPU since the call began; `ran_now`, `wanting` and
    `elapsed`: the look's."""
    if wanting < 0.5 or ran >= seconds or not _starved(ran_now, wanting, elapsed, HELD_BACK):
        return "up"
    return "starved" if last else "more"


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
