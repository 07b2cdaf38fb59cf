"""An unprivileged grader in a control group delegated to it bounds each jail in all.

As root, the test makes a group in every controller hierarchy, gives it to `nobody` (as
systemd's `Delegate=` or an administrator would) and starts the grader's process there; the
jail then makes its job groups inside it. Four fresh processes that each touch 900 MB under a
2,500 MB limit are stopped by the kernel, the group's peak never passes the limit, and the
jail records that the limit was hit. (Without delegation the jail uses the memory watch:
test_hostile_unprivileged.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.grading import hostile, unprivileged
from tito.course.grading import cgroups

pytestmark = pytest.mark.slow

RUN = r"""
import json, subprocess, sys, tempfile
from pathlib import Path
from tito.course.grading.jail import Jail
from tito.course.settings import GradingLimits
with tempfile.TemporaryDirectory() as d:
    jail = Jail(GradingLimits(60, 2500, 120, 64, 64, 16), Path(d))
    probe = jail.add_input("probe.py", open(sys.argv[1], "rb").read())
    proc = jail.popen([sys.executable, probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    jail.close()
    print(json.dumps({"isolation": jail.isolation, "hit": jail.memory_hit,
                      "peak": jail.peak_memory_mb, "printed": out.decode()}))
"""


@pytest.fixture
def delegated():
    if os.geteuid() != 0:
        pytest.skip("delegating a control group to another user needs root")
    known = cgroups.hierarchies()
    if any(v2 for _, v2 in known.values()):
        pytest.skip(
            "cgroup v2 delegation needs a leaf group of its own; this test covers v1 hierarchies"
        )
    groups = []
    for root, _ in {v for v in known.values()}:
        group = root / f"tito-delegated-{uuid.uuid4().hex[:8]}"
        group.mkdir()
        for entry in [group, *group.iterdir()]:
            os.chown(entry, unprivileged.NOBODY, unprivileged.NOBODY)
        groups.append(group)
    yield groups
    for group in groups:
        for child in group.glob("job-*"):
            child.rmdir()
        group.rmdir()


def _run_as_nobody(probe: str, groups: list[Path]) -> dict:
    """`probe` in a jail (RUN) started by nobody in the delegated `groups`; what RUN printed."""
    home = Path(tempfile.mkdtemp(prefix="tito-laptop-"))
    try:
        (home / "probe.py").write_text(probe)
        (home / "run.py").write_text(RUN)
        unprivileged.give_to_nobody(home)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TMPDIR": str(home),
        }
        proc = unprivileged.run(
            [sys.executable, str(home / "run.py"), str(home / "probe.py")],
            cwd=home,
            env=env,
            needed=[REPO, home],
            timeout=180,
            groups=groups,
        )
        got = json.loads(proc.stdout or "{}") if proc.returncode == 0 else proc.stderr
        assert isinstance(got, dict), got
        assert got["isolation"] == "bubblewrap, seccomp, cgroup (2500 MB in all, 1 CPU)"
        return got
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_delegated_group_holds_an_unprivileged_jail_to_its_memory_limit(delegated):
    got = _run_as_nobody(hostile.hoards_memory(4, 900), delegated)
    assert got["hit"] is True and 2400 < got["peak"] <= 2500, got
    assert "memfd: 1" in got["printed"]  # denied, as everywhere
    assert [job for group in delegated for job in group.glob("job-*")] == []  # closed: removed


def test_a_delegated_group_counts_socket_buffers_too(delegated):
    """Socket buffers are kernel memory, which the memory watch never sees: in a delegated group
    they count, and a fill towards 4,000 MB is stopped at the 2,500 MB limit."""
    if hostile.socket_fill_reach_mb() < 3000:
        pytest.skip(
            f"net.core.wmem_max lets one jailed process hold about "
            f"{hostile.socket_fill_reach_mb()} MB of socket buffers, under the 2,500 MB limit"
        )
    got = _run_as_nobody(hostile.fills_sockets(4000), delegated)
    assert got["hit"] is True and 2400 < got["peak"] <= 2500, got
    assert "socket buffers" not in got["printed"], got


def test_tcp_buffers_a_jail_holds_are_capped_as_root_and_in_a_delegated_group(delegated):
    """cgroup v1 leaves TCP socket buffers out of a group's memory unless its own TCP limit is
    set: without it, loopback connections that nobody reads held 2.2 GB here (the machine's
    whole net.ipv4.tcp_mem, which every job shares). Each jail sets TCP_BUFFERS_MB."""
    from tito.course.grading.cgroups import TCP_BUFFERS_MB
    from tito.course.grading.jail import Jail
    from tito.course.settings import GradingLimits

    probe = hostile.fills_tcp_buffers(2000)
    with tempfile.TemporaryDirectory() as d:  # as root
        jail = Jail(GradingLimits(60, 2500, 120, 64, 64, 16), Path(d))
        try:
            proc = jail.popen(
                [sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = proc.communicate(timeout=120)
        finally:
            jail.close()
    (held,) = [int(line.split()[-1]) for line in out.decode().splitlines()]
    assert 0 < held <= TCP_BUFFERS_MB, (held, err.decode()[-500:])
    got = _run_as_nobody(probe, delegated)
    (held,) = [int(line.split()[-1]) for line in got["printed"].splitlines()]
    assert 0 < held <= TCP_BUFFERS_MB, got
