"""What a jailed process tree is using, read from /proc by the trusted side.

- `tree(pid)`: the process and all its descendants (a jail's processes stay below its first
  process whatever they do: setsid changes the session, not the parent chain, and orphans are
  adopted by the jail's own init);
- `MemoryWatch`: without root there is no control group, so a thread sums the proportional
  set size (PSS) of the tree every `PERIOD` seconds and kills the tree past the limit;
- `starved(pid)`: whether a tree that did not answer in time was waiting for a CPU (the
  machine was busy) rather than running or sleeping (the submission was slow);
- `CpuWatch`: the same judgement second by second over a whole run, summed.
A tree is starved in an interval when its threads together waited for a CPU more than half of
it and ran less than half of it. A tree that keeps itself busy (many processes, one CPU's
quota) runs about all the time; one that sleeps neither runs nor waits: neither is starved.
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


def pss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Pss:", "SwapPss:")):
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
            used = pss_mb(tree(self.proc.pid))
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


def _cpu_and_wait(pids: list[int]) -> dict[int, tuple[int, int]]:
    """thread id -> (ns on a CPU, ns waiting for one) for every thread of `pids`."""
    found = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                on_cpu, waiting = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2]
                found[int(tid)] = (int(on_cpu), int(waiting))
            except (OSError, ValueError):
                pass
    return found


def _starved(before: dict, after: dict, seconds: float) -> tuple[bool, float, float]:
    ran = sum(after[t][0] - before[t][0] for t in after if t in before) / 1e9
    waited = sum(after[t][1] - before[t][1] for t in after if t in before) / 1e9
    return waited > seconds / 2 and ran < seconds / 2, ran, waited


def starved(pid: int, seconds: float = PROBE_SECONDS) -> str:
    """Watch the tree under `pid` for `seconds`: a sentence saying how it was starved of CPU, or
    "" when it was not (it ran, or it slept: either is the submission's own doing)."""
    before = _cpu_and_wait(tree(pid))
    time.sleep(seconds)
    is_starved, ran, waited = _starved(before, _cpu_and_wait(tree(pid)), seconds)
    if is_starved:
        return (f"the grading machine was busy: in {seconds:g} s the code ran for {ran:.2f} s "
                f"and waited {waited:.2f} s for a CPU")
    return ""


class CpuWatch:
    """Seconds in which the tree under `proc` was starved of CPU, sampled every `period` s."""

    def __init__(self, proc, period: float = PROBE_SECONDS):
        self.proc, self.period = proc, period
        self.starved_seconds = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        before, last = _cpu_and_wait(tree(self.proc.pid)), time.monotonic()
        while self.proc.poll() is None:
            time.sleep(self.period)
            after, now = _cpu_and_wait(tree(self.proc.pid)), time.monotonic()
            if _starved(before, after, now - last)[0]:
                self.starved_seconds += now - last
            before, last = after, now

    def join(self) -> float:
        self._thread.join()
        return self.starved_seconds
