"""Time one optimizer step and one gradient clip: tinytorch vs torch.optim, interleaved in one run.

    python benchmarks/optimizers.py            # full run
    python benchmarks/optimizers.py --quick    # a few repetitions, for a smoke test

Workloads: 10 float32 tensors of 1e6 elements (bandwidth-bound) and 1000 tensors of 100
elements (per-tensor overhead-bound). Operations: SGD(momentum=0.9), Adam, AdamW and
clip_grad_norm(max_norm=1.0). When torch is importable the same operations run with
torch.optim (single-tensor, foreach=True, fused=True where torch supports it on CPU) and
torch.nn.utils.clip_grad_norm_. A tinytorch step over 10 tensors of 1e6 elements runs on two
threads (Optimizer.PARALLEL_ELEMENTS), as torch uses both cores. Implementations take turns
within every repetition, so machine noise hits all of them alike; the table reports the median
of the repetitions.
A naive numpy Adam (``m = b1*m + (1-b1)*g`` etc., a new array per operation) is timed
for contrast.
"""

import argparse
import statistics
import time

import numpy as np

from tinytorch.core.optimizers import SGD, Adam, AdamW, clip_grad_norm
from tinytorch.core.tensor import Parameter

try:
    import torch
except ImportError:
    torch = None

WORKLOADS = {"10x1e6": (10, 1_000_000), "1000x100": (1000, 100)}
LR, MOMENTUM, WD, MAX_NORM = 1e-3, 0.9, 1e-2, 1.0


def _arrays(count, size, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size, dtype=np.float32) for _ in range(count)]


class NaiveAdam:
    """Adam written the obvious way: every operation allocates a new array."""

    def __init__(self, params, lr=LR, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, (self.b1, self.b2), self.eps = params, lr, betas, eps
        self.m = [np.zeros_like(p.data) for p in params]
        self.v = [np.zeros_like(p.data) for p in params]
        self.t = 0

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            m_hat = self.m[i] / (1 - self.b1**self.t)
            v_hat = self.v[i] / (1 - self.b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def tinytorch_cases(count, size):
    """name -> (op, impl, step, reset); reset (untimed) restores the gradients before a clip."""
    cases = []
    for op, make in [
        ("SGD", lambda ps: SGD(ps, lr=LR, momentum=MOMENTUM)),
        ("Adam", lambda ps: Adam(ps, lr=LR)),
        ("AdamW", lambda ps: AdamW(ps, lr=LR, weight_decay=WD)),
    ]:
        params = [Parameter(a) for a in _arrays(count, size, 0)]
        for p, g in zip(params, _arrays(count, size, 1)):
            p.grad = g
        cases.append((op, "tinytorch", make(params).step, None))
    params = [Parameter(a) for a in _arrays(count, size, 0)]
    naive = NaiveAdam(params)
    for p, g in zip(params, _arrays(count, size, 1)):
        p.grad = g
    cases.append(("Adam", "naive numpy", naive.step, None))

    clip_params = [Parameter(a) for a in _arrays(count, size, 0)]
    saved = _arrays(count, size, 1)
    for p, g in zip(clip_params, saved):
        p.grad = g.copy()

    def reset():
        for p, g in zip(clip_params, saved):
            np.copyto(p.grad, g)

    cases.append(("clip", "tinytorch", lambda: clip_grad_norm(clip_params, MAX_NORM), reset))
    return cases


def torch_cases(count, size):
    cases = []
    variants = [
        ("torch single", {"foreach": False}),
        ("torch foreach", {"foreach": True}),
        ("torch fused", {"fused": True}),
    ]
    for op, cls, kwargs in [
        ("SGD", torch.optim.SGD, {"lr": LR, "momentum": MOMENTUM}),
        ("Adam", torch.optim.Adam, {"lr": LR}),
        ("AdamW", torch.optim.AdamW, {"lr": LR, "weight_decay": WD}),
    ]:
        for impl, flags in variants:
            params = [torch.tensor(a, requires_grad=True) for a in _arrays(count, size, 0)]
            for p, g in zip(params, _arrays(count, size, 1)):
                p.grad = torch.from_numpy(g)
            try:
                opt = cls(params, **kwargs, **flags)
                opt.step()
            except (RuntimeError, ValueError) as err:  # this variant is not supported on CPU
                print(f"  {op} {impl}: not available ({str(err).splitlines()[0][:80]})")
                continue
            cases.append((op, impl, opt.step, None))
    params = [torch.tensor(a, requires_grad=True) for a in _arrays(count, size, 0)]
    saved = [torch.from_numpy(g) for g in _arrays(count, size, 1)]
    for p, g in zip(params, saved):
        p.grad = g.clone()

    def reset():
        with torch.no_grad():
            for p, g in zip(params, saved):
                p.grad.copy_(g)

    cases.append(
        (
            "clip",
            "torch clip_grad_norm_",
            lambda: torch.nn.utils.clip_grad_norm_(params, MAX_NORM),
            reset,
        )
    )
    return cases


def measure(cases, repeats):
    """Median seconds per call for every case; the cases take turns within each repetition."""
    for _, _, step, reset in cases:  # warm-up: state buffers, scratch arrays, first-call costs
        for _ in range(2):
            if reset:
                reset()
            step()
    times = {(op, impl): [] for op, impl, _, _ in cases}
    for _ in range(repeats):
        for op, impl, step, reset in cases:
            if reset:
                reset()
            start = time.perf_counter()
            step()
            times[(op, impl)].append(time.perf_counter() - start)
    return {key: statistics.median(ts) for key, ts in times.items()}


# (workload, op, reference implementation, maximum ratio tinytorch / reference)
TARGETS = [
    ("10x1e6", "Adam", "torch foreach", 0.6),
    ("10x1e6", "Adam", "torch fused", 2.6),
    ("10x1e6", "SGD", "torch fused", 1.6),
    ("10x1e6", "clip", "torch clip_grad_norm_", 1.2),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per workload")
    args = parser.parse_args()

    print(
        f"numpy {np.__version__}; "
        + (
            f"torch {torch.__version__}, {torch.get_num_threads()} threads"
            if torch
            else "torch not installed: tinytorch only"
        )
    )
    results = {}
    for workload, (count, size) in WORKLOADS.items():
        repeats = args.repeats or (5 if args.quick else (30 if count == 10 else 100))
        cases = tinytorch_cases(count, size) + (torch_cases(count, size) if torch else [])
        results[workload] = measure(cases, repeats)
        print(f"\n{workload} float32 ({count} tensors of {size} elements), median of {repeats}:")
        print(f"  {'operation':<6} {'implementation':<22} {'ms':>9}   ratio to torch")
        for (op, impl), seconds in results[workload].items():
            refs = ["torch clip_grad_norm_"] if op == "clip" else ["torch foreach", "torch fused"]
            ratios = ", ".join(
                f"{ref.removeprefix('torch ')} {seconds / results[workload][(op, ref)]:.2f}x"
                for ref in refs
                if (op, ref) in results[workload]
            )
            print(f"  {op:<6} {impl:<22} {seconds * 1e3:9.3f}   {ratios}")

    if torch:
        print("\nTargets (tinytorch / torch, 10x1e6 float32):")
        for workload, op, ref, limit in TARGETS:
            ours, theirs = (
                results[workload].get((op, "tinytorch")),
                results[workload].get((op, ref)),
            )
            if theirs is None:
                print(f"  {op:<5} vs {ref:<22} <= {limit:.1f}x: reference not available")
                continue
            ratio = ours / theirs
            print(
                f"  {op:<5} vs {ref:<22} <= {limit:.1f}x: {ratio:5.2f}x  "
                f"{'met' if ratio <= limit else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
