"""A grading job with the jail as it was before the syscall filter and the per-jail bounds.

benchmarks/autograde.py runs jobs through this file to measure, in the same run, what the
filter, the control groups' memory and CPU limits and the watches on the trusted side cost:
bubblewrap loads a filter that allows every call, as root only the pids controller is used
(as before), and no memory or CPU watch runs. Never used for grading.
"""

from __future__ import annotations

import sys
import tempfile

import pyseccomp

from tito.course.grading import cgroups, jail, job, syscalls


class _NoWatch:
    hit, peak_mb, starved_seconds = False, 0.0, 0.0

    def __init__(self, proc, *args):
        pass

    def join(self) -> float:
        return 0.0


def _allow_everything() -> bytes:
    with tempfile.TemporaryFile() as program:
        pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW).export_bpf(program)
        program.seek(0)
        return program.read()


if __name__ == "__main__":
    pids_only = {k: v for k, v in cgroups.hierarchies().items() if k == "pids"}
    cgroups.hierarchies = lambda: pids_only
    syscalls.compiled = _allow_everything
    jail.MemoryWatch = job.CpuWatch = _NoWatch
    job.kernel_memory_bounded = lambda: True  # the jail as it was graded without asking
    sys.exit(job.main())
