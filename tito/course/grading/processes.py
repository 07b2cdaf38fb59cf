"""What a jailed process tree is using, read from /proc by the trusted side.

- `tree(pid)`: the process and all its descendants (a jail's processes stay below its first
  process whatever they do: setsid changes the session, not the parent chain, and orphans are
  adopted by the jail's own init);
- `MemoryWatch`: without root there is no control group, so a thread sums the anonymous and
  shared-memory pages of the tree (RssAnon + RssShmem, kernel counters: cheap whatever the
  process maps) every `PERIOD` seconds and kills the tree past the limit;
- `starvation(pid)`: why a tree that did not answer in time was starved of CPU (the machine
  was busy), or "" when it ran or slept (the submission was slow);
- `CpuWatch`: the same judgement second by second over a whole run, summed.
A tree is starved in an interval when its threads together waited for a CPU more than half of
it while the tree, children it has already reaped included, used less than half a CPU. A tree
that keeps itself busy (however many processes, and whatever their priorities) uses its CPU
all the time; one that sleeps neither runs nor waits: neither is starved. The kernel adds a
thread's wait to its account when the thread next runs, so a judgement needs about a second.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

PERIOD = 0.05  # seconds between two samples of the memory watch
PROBE_SECONDS = 1.0


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...


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
    """Kills the process group of `proc` once its tree holds more than `limit_mb` (PSS)."""

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


class _Sample:
    """CPU the tree used so far (its live processes and the children they reaped) and, per
    thread, how long it has waited for a CPU."""

    def __init__(self, pid: int):
        self.cpu, self.waits = 0.0, {}
        for p in tree(pid):
            fields = _stat_fields(p)
            if fields is None:
                continue
            self.cpu += sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    self.waits[int(tid)] = int(Path(f"/proc/{p}/task/{tid}/schedstat").read_text().split()[1])
                except (OSError, ValueError, IndexError):
                    pass

    def since(self, earlier: "_Sample") -> tuple[float, float]:
        """(CPU seconds used, seconds waited for a CPU) between `earlier` and this sample."""
        waited = sum(w - earlier.waits[t] for t, w in self.waits.items() if t in earlier.waits) / 1e9
        return self.cpu - earlier.cpu, waited


def _starved(ran: float, waited: float, seconds: float) -> bool:
    return waited > seconds / 2 and ran < seconds / 2


def starvation(pid: int, seconds: float = PROBE_SECONDS) -> str:
    """Watch the tree under `pid` for `seconds`: a sentence saying how it was starved of CPU, or
    "" when it was not (it ran, or it slept: either is the submission's own doing)."""
    before = _Sample(pid)
    time.sleep(seconds)
    ran, waited = _Sample(pid).since(before)
    if _starved(ran, waited, seconds):
        return (f"the grading machine was busy: in {seconds:g} s the code ran for {ran:.2f} s "
                f"and waited {waited:.2f} s for a CPU")
    return ""


class CpuWatch:
    """Seconds in which the tree under `proc` was starved of CPU, sampled every `period` s."""

    def __init__(self, proc, period: float = PROBE_SECONDS):
        self.proc, self.period = proc, period
        self.starved_seconds = 0.0
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        before, last = _Sample(self.proc.pid), time.monotonic()
        while not self._ended.wait(self.period) and self.proc.poll() is None:
            after, now = _Sample(self.proc.pid), time.monotonic()
            if _starved(*after.since(before), now - last):
                self.starved_seconds += now - last
            before, last = after, now

    def join(self) -> float:
        """The starved seconds (call once the process has ended)."""
        self._ended.set()
        self._thread.join()
        return self.starved_seconds
