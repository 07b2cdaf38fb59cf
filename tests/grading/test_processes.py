"""The trusted side's reading of a jailed process tree holds against the names its processes
give themselves.

A process names itself (prctl PR_SET_NAME) with any 15 bytes; the name is in /proc/PID/stat
and /proc/PID/status. Read as UTF-8 text, a name that is not UTF-8 made the tree walk raise
(every watch of every job on the machine, since the walk reads all of /proc) and hid the
process's memory from the memory watch. processes.py reads /proc as bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tito.course.grading import processes

# Renames itself with bytes that are not UTF-8, holds 300 MB, says so, and waits.
NAMED_AND_HOLDING = """\
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"\\xff\\xfe\\x80hoard"), 0, 0, 0)
held = bytearray(300 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
print("held", flush=True)
time.sleep(60)
"""


def _start() -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", NAMED_AND_HOLDING], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout.readline() == b"held\n"
    return proc


def test_a_process_named_with_bytes_that_are_not_text_is_counted_in_tree_memory_and_cpu():
    proc = _start()
    try:
        with open(f"/proc/{proc.pid}/comm", "rb") as f:
            assert f.read() == b"\xff\xfe\x80hoard\n"  # the name is really not UTF-8
        assert proc.pid in processes.tree(os.getpid())
        assert 300 <= processes.memory_mb([proc.pid]) < 340
        assert processes.state(proc.pid) == "S"
        assert processes.cpu_seconds([proc.pid]) > 0
        assert processes.lowered([proc.pid]) is False
    finally:
        proc.kill()
        proc.wait()


def test_the_memory_watch_stops_a_tree_whose_process_is_named_with_bytes_that_are_not_text():
    proc = _start()
    watch = processes.MemoryWatch(proc, limit_mb=200)
    deadline = time.monotonic() + 30
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the memory watch left the process running"
        time.sleep(0.05)
    watch.join()
    assert (watch.hit, proc.returncode) == (True, -9)
    assert watch.peak_mb >= 300
