"""The judge's wire: time one proxied call into the jailed student process.

    python benchmarks/wire.py [--calls 3000]

A call carries a small argument set and a 1e4-element float64 array that the student's
function updates in place, so the array crosses both ways (the call and the mirrored update),
as in an optimizer step. Reports the median and the 90th percentile round trip, next to the
same function called in this process.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tito.course.grading.host import student_package
from tito.course.grading.jail import Jail
from tito.course.grading.judge import StudentProcess
from tito.course.settings import Course, GradingLimits

STUDENT = "def step(param, lr, momentum=0.0, nesterov=False):\n    param -= lr\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    limits = GradingLimits(
        cell_timeout_seconds=60,
        memory_limit_mb=2000,
        submission_timeout_seconds=600,
        max_processes=64,
        scratch_mb=64,
        max_output_mb=16,
    )
    param = np.zeros(10_000)
    namespace: dict = {}
    exec(STUDENT, namespace)
    local = []
    for _ in range(args.calls):
        t = time.perf_counter()
        namespace["step"](param, 0.1, momentum=0.9, nesterov=True)
        local.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        jail = Jail(limits, Path(d))
        jail.add_package(student_package(Course()))
        sp = StudentProcess(
            [STUDENT], cell_timeout=60, jail=jail, tensor_class=Course().package.tensor_class
        )
        try:
            sp.call(
                "step", (param, 0.1), {"momentum": 0.9, "nesterov": True}, deadline=1e18
            )  # starts it
            wire = []
            for _ in range(args.calls):
                t = time.perf_counter()
                sp.call("step", (param, 0.1), {"momentum": 0.9, "nesterov": True}, deadline=1e18)
                wire.append(time.perf_counter() - t)
        finally:
            sp.close()
            jail.close()
    expected = -0.1 * (2 * args.calls + 1)
    assert np.allclose(param, expected), "the in-place updates did not come back"

    def ms(xs, q):
        return statistics.quantiles(xs, n=10)[8] * 1e3 if q == 90 else statistics.median(xs) * 1e3

    print(f"calls: {args.calls}, array: 1e4 float64 updated in place")
    print(
        f"jailed student process: median {ms(wire, 50):.3f} ms, p90 {ms(wire, 90):.3f} ms per call"
    )
    print(f"same function in this process: median {ms(local, 50):.4f} ms")


if __name__ == "__main__":
    main()
