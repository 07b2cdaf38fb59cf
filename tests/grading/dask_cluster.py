"""A real Dask cluster on loopback for the tests: one `dask scheduler` and `dask worker` processes.

Workers get the environment they are given (the tests set TMPDIR, where each job's jail
makes its scratch folder; the scheduler keeps its own, where Dask puts its scratch space),
and no process writes bytecode next to the sources, which the hostile tests watch for changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _dask(*args) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


@contextlib.contextmanager
def local_cluster(folder: Path, workers: int, env: dict | None = None):
    """Yield (scheduler address, worker processes) once every worker has joined."""
    scheduler_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env = {**scheduler_env, **(env or {})}
    scheduler_file = folder / "scheduler.json"
    procs = [
        subprocess.Popen(
            _dask(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ),
            env=scheduler_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        address = _scheduler_address(scheduler_file, time.monotonic() + 60)
        started = [
            subprocess.Popen(
                _dask(
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--name",
                    f"w{i}",
                    "--local-directory",
                    str(folder / f"w{i}"),
                ),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        procs += started
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, started
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _scheduler_address(scheduler_file: Path, deadline: float) -> str:
    """The address the scheduler writes into its file. It writes the file in place, so a reader
    can find it missing, empty or half written: read it again until it parses."""
    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
