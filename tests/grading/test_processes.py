"""The trusted side's reading of a jailed process tree holds against the names its processes
give themselves.

A process names itself (prctl PR_SET_NAME) with any 15 bytes; the name is in /proc/PID/stat
and /proc/PID/status. Read as UTF-8 text, a name that is not UTF-8 made the tree walk raise
(every watch of every job on the machine, since the walk reads all of /proc) and hid the
process's memory from the memory watch; split at \r as well as \n, a name holding
"\rRssAnon: ..." forged a line of status. processes.py reads /proc as bytes, splits lines at \n
only (which the kernel escapes in a name), and a memory watch that cannot read the tree stops it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tito.course.grading import processes

# Names itself with `name`, holds 300 MB, says so, and waits.
HOLDING = """\
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p({name!r}), 0, 0, 0)
held = bytearray(300 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
print("held", flush=True)
time.sleep(60)
"""
# Not UTF-8; a line of status of its own to a reader that splits at \r (a count that is not a
# number, a negative count).
NAMES = [b"\xff\xfe\x80hoard", b"x\rRssAnon: x", b"x\rRssAnon:-9999"]


@pytest.fixture(params=NAMES, ids=["not-utf8", "fake-line", "fake-negative-line"])
def holding(request):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDING.format(name=request.param)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline() == b"held\n"
        with open(f"/proc/{proc.pid}/comm", "rb") as f:
            assert f.read() == request.param + b"\n"  # the kernel kept the name as given
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_process_with_an_odd_name_is_counted_in_tree_memory_and_cpu(holding):
    assert holding.pid in processes.tree(os.getpid())
    with open(f"/proc/{holding.pid}/status", "rb") as f:  # the kernel's own lines (after \n)
        held_kb = re.findall(rb"\n(?:RssAnon|RssShmem):\s+(\d+) kB", f.read())
    assert len(held_kb) == 2 and processes.memory_mb([holding.pid]) == sum(map(int, held_kb)) / 1024
    assert processes.memory_mb([holding.pid]) >= 300
    assert processes.state(holding.pid) in ("R", "S")  # a letter, whatever the name
    assert processes.cpu_seconds([holding.pid]) > 0
    assert processes.lowered([holding.pid]) is False


def test_the_memory_watch_stops_a_tree_whose_process_has_an_odd_name(holding):
    watch = processes.MemoryWatch(holding, limit_mb=200)
    deadline = time.monotonic() + 30
    while holding.poll() is None:
        assert time.monotonic() < deadline, "the memory watch left the process running"
        time.sleep(0.05)
    watch.join()
    assert (watch.hit, holding.returncode) == (True, -9)
    assert watch.peak_mb >= 300
