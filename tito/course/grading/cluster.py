"""Grading jobs on a Dask cluster (`distributed`): the same jobs, run on other machines.

A job carries its inputs as data and returns its result as data (job.py), so a worker needs
only this project installed, not the course's files. Each job runs in a process of its own on
the worker (`job.run_in_process`), inside the same jail as locally; only the host that called
`autograde` writes outcomes and the gradebook. A worker that dies while running a job is
replaced by the scheduler, which runs the job again elsewhere: a job changes nothing but its
result, so running it twice is harmless and the host still records it once.
"""

from __future__ import annotations

import contextlib
import uuid

from ..settings import CourseError
from .jail import kernel_memory_bounded
from .job import Job, JobResult, close_warm_processes, run_in_process

CONNECT_SECONDS = 10


class Cluster:
    """A connection to a Dask scheduler; `run` submits one job and waits for its result."""

    def __init__(self, address: str):
        try:
            from distributed import Client  # optional: only a Dask cluster needs it
        except ImportError:
            raise CourseError(
                "grading on a Dask cluster needs the `distributed` package: pip install distributed"
            ) from None
        try:
            self.client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise CourseError(
                f"cannot reach the Dask scheduler at {address} ({type(e).__name__}: {e}); "
                "start it with `dask scheduler` and workers with `dask worker "
                f"{address}`, or leave out --scheduler to grade on this machine"
            ) from None
        self.address = address

    def unbounded_workers(self) -> list[str]:
        """The workers whose jails would not count kernel memory (no control group there)."""
        answers = self.client.run(kernel_memory_bounded)
        return sorted(worker for worker, bounded in answers.items() if not bounded)

    @property
    def threads(self) -> int:
        return max(1, sum(w["nthreads"] for w in self.client.scheduler_info()["workers"].values()))

    def run(self, job: Job) -> JobResult:
        # pure=False: the same submission graded twice in one batch is two jobs.
        future = self.client.submit(
            run_in_process,
            job,
            pure=False,
            key=f"grade-{job.module}-{job.student}-{uuid.uuid4().hex[:8]}",
        )
        try:
            return future.result()
        except Exception as e:  # every worker that tried it died, or the cluster went away
            return JobResult(
                "",
                "",
                [],
                [],
                "",
                failure=f"the Dask cluster could not run the job: {type(e).__name__}: {e}"[:300],
            )

    def close(self) -> None:
        # The workers' warm job processes end with the batch, like this machine's: the next
        # batch starts them from the grader as installed then. This is tidying only (a later
        # batch ends whatever is left, job.py), so a cluster that cannot be reached, however it
        # fails, leaves the batch's outcomes and exit code as they are.
        if self.client.status == "running":
            with contextlib.suppress(Exception):
                self.client.run(close_warm_processes, on_error="ignore")
        self.client.close()
