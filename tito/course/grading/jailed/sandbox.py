"""The student's process: runs the student's exported code and the instructor's support cells
that run beside it (a training loop), then answers the judge's calls.

Started by the judge, inside the jail, as
`python -m tito.course.grading.jailed.sandbox CODE_JSON REQ_FD RESP_FD CELL_TIMEOUT TENSOR_CLASS`.
Nothing here is trusted by the judge: whatever this process sends back is only data to be checked.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

# numpy is loaded before any student code, as in a notebook (the jail sets MPLBACKEND).
import numpy as np  # noqa: F401

from .protocol import SCALARS, Mirror, load_class, receive, send


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (f"line {f.lineno} of {f.name}" for f in reversed(frames) if f.filename.startswith("<")), ""
    )
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return (text + (f" ({where})" if where else ""))[:2000]


def main() -> None:
    code_path, req_fd, resp_fd, cell_timeout = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    tensor_class = sys.argv[5]
    # Say hello before any student code runs, so the judge can tell a sandbox that could not
    # start (its own problem) from student code that stops the process (the student's).
    send(resp_fd, {"hello": True}, [])
    with open(code_path, encoding="utf-8") as f:
        code = json.load(f)
    named = [(f"<student cell {i + 1}>", src) for i, src in enumerate(code["cells"])]
    named += [(f"<test support {i + 1}>", src) for i, src in enumerate(code["support"])]
    mirror = Mirror(
        parity=1, tensor_class=load_class(tensor_class)
    )  # from the jail's copy of the package
    ns: dict = {"__name__": "__main__"}
    errors = []

    def too_slow(signum, frame):
        raise TimeoutError(f"the cell ran longer than {cell_timeout:g} s")

    signal.signal(signal.SIGALRM, too_slow)
    for name, src in named:
        signal.setitimer(signal.ITIMER_REAL, cell_timeout)
        try:
            exec(compile(src, name, "exec"), ns)
        except BaseException as e:  # a broken cell is recorded, like nbgrader's allow_errors
            errors.append(_describe(e))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    send(resp_fd, {"ready": True, "cell_errors": errors}, [])

    while True:
        header, arrays = receive(req_fd)
        fn = ns.get(header["fn"])
        try:
            if not callable(fn):
                raise NameError(f"your notebook does not define {header['fn']}()")
            args = [mirror.decode(a, arrays) for a in header["args"]]
            kwargs = {k: mirror.decode(v, arrays) for k, v in header["kwargs"].items()}
            result = fn(*args, **kwargs)
            # Sending an argument back sends everything reachable from it, so the judge's copy
            # of whatever the call changed in place is brought up to date.
            out: list = []
            sync = [
                mirror.encode(a, out)
                for a in (*args, *kwargs.values())
                if not isinstance(a, SCALARS)
            ]
            reply = {"ok": True, "sync": sync, "ret": mirror.encode(result, out)}
        except (
            BaseException
        ) as e:  # SystemExit and KeyboardInterrupt included: report, keep serving
            out, reply = (
                [],
                {
                    "ok": False,
                    "error": _describe(e),
                    "type": type(e).__name__,
                    "message": str(e)[:2000],
                },
            )
        try:
            send(resp_fd, reply, out)
        except (TypeError, ValueError) as e:  # the result cannot be expressed as data
            send(resp_fd, {"ok": False, "error": f"{type(e).__name__}: {e}"}, [])


if __name__ == "__main__":
    # Keep the protocol channel clean: student output goes nowhere.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    main()
