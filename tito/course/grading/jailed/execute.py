"""Run a notebook in a kernel (nbclient) and print the executed notebook as JSON.

Started by the job, inside the jail, as
`python -m tito.course.grading.jailed.execute NOTEBOOK CELL_TIMEOUT STARTED_FD`. The
submission's code runs in the kernel this starts and can reach this process too, so what it
prints is only data to the job: outputs to show in the feedback, never a score.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    sys.modules.setdefault(
        "rfc3987_syntax", None
    )  # as in tito/__init__.py: 1.6 s saved, nothing lost
    # imported after that stub, which they would otherwise load
    import nbformat
    from nbclient import NotebookClient

    path, timeout, started = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    # The result goes to a private copy of stdout; the kernel inherits /dev/null instead, so
    # output written straight to file descriptor 1 cannot garble the result.
    result = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    nb = nbformat.read(path, as_version=4)

    # Like nbgrader's Execute: a slow cell is interrupted and the run goes on; errors are kept
    # as outputs (they are what the feedback shows).
    def kernel_started(**_) -> None:
        # One byte on a pipe of its own once the kernel answers, before any cell runs: no code
        # of the submission's has run yet, so its absence means the kernel never started.
        os.write(started, b"1")
        os.close(started)

    client = NotebookClient(
        nb,
        timeout=timeout,
        interrupt_on_timeout=True,
        allow_errors=True,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": os.getcwd()}},
        on_notebook_start=kernel_started,
    )
    error = ""
    try:
        client.execute()
    except Exception as e:  # the kernel died or could not start: the cells run so far still count
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[
            :500
        ]
    result.write(json.dumps({"error": error, "notebook": nb}))
    result.close()


if __name__ == "__main__":
    main()
