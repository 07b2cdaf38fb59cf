"""Control groups: what one jailed process tree may use of the machine, all processes together.

As root, every process the jail starts joins a group of its own before it runs anything, so
everything it starts (setsid or not) is counted there and limited together:
- pids: at most `max_processes` processes and threads;
- memory: at most `memory_limit_mb` for everything they hold (anonymous memory, tmpfs and
  memfd pages, page cache, kernel memory), no swap; past it the kernel kills within the group;
- cpu: at most one CPU (quota = period), so a tree of busy processes takes one CPU's worth.
cgroup v2 gives one group for all three; v1 (this machine's kind of mount) one group per
controller hierarchy. A controller that is mounted nowhere is left out and `describe` says so.
Without root, groups are made inside the grading process's own group where that group is
delegated to its user (writable by it, as systemd's `Delegate=` or an administrator's chown
arranges), for every controller; otherwise none is made and jail.py falls back to what
rlimits and a watch on the trusted side give.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PARENT = "tito-grading"
CONTROLLERS = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000
# TCP socket buffers a jail may hold under cgroup v1 (its loopback: the notebook's kernel talks
# to its runner over it, a few megabytes at most).
TCP_BUFFERS_MB = 128


class CgroupError(Exception):
    """A group could not be made (the message says which controller and why)."""


def _own_groups() -> dict[str, str]:
    """controller -> this process's group path in it ("" for cgroup v2), from /proc/self/cgroup."""
    found = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            found[name] = path
    return found


def _parent(controller: str, root: Path, v2: bool) -> Path:
    """Where this process makes its job groups: under the hierarchy's root as root, else in its
    own (delegated) group."""
    if os.geteuid() == 0:
        return root / PARENT
    own = root / _own_groups().get("" if v2 else controller, "/").lstrip("/")
    if not os.access(own, os.W_OK):
        raise CgroupError(f"no control group is delegated to this user ({own} is not writable)")
    return own


@functools.cache
def hierarchies() -> dict[str, tuple[Path, bool]]:
    """controller -> (root of the hierarchy it is mounted in, whether that is cgroup v2)."""
    found: dict[str, tuple[Path, bool]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = Path(line.split()[4])
        fstype, _, options = line.split(" - ")[1].split()[:3]
        if fstype == "cgroup":
            for name in set(options.split(",")) & set(CONTROLLERS):
                found.setdefault(name, (mount_point, False))
        elif fstype == "cgroup2":
            try:
                available = (mount_point / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            for name in set(available) & set(CONTROLLERS):
                found.setdefault(name, (mount_point, True))
    return found


def available() -> bool:
    """Whether this process can make job groups (as root, or in a delegated group)."""
    known = hierarchies()
    try:
        return "pids" in known and all(_parent(c, root, v2) for c, (root, v2) in known.items())
    except (CgroupError, OSError):
        return False


def describe(memory_limit_mb: int) -> str:
    """The limits a group made here has, for an outcome's isolation line."""
    known = hierarchies()
    memory = f"{memory_limit_mb} MB in all" if "memory" in known else "no memory group"
    return f"cgroup ({memory}, {'1 CPU' if 'cpu' in known else 'no CPU quota'})"


@dataclass
class Group:
    """One process tree's groups: controller -> folder (several controllers may share one)."""

    folders: dict[str, Path]
    memory_limit_mb: int

    @classmethod
    def create(cls, max_processes: int, memory_limit_mb: int) -> Group:
        known = hierarchies()
        if "pids" not in known:
            raise CgroupError(
                "no pids controller is mounted (cgroup v2 or v1), so processes cannot be bounded"
            )
        name = f"job-{uuid.uuid4().hex}"
        folders: dict[str, Path] = {}
        try:
            for controller, (root, v2) in known.items():
                parent = _parent(controller, root, v2)
                parent.mkdir(exist_ok=True)
                _remove_abandoned(parent)
                if (
                    v2
                ):  # let the children of the root (as root) and of the parent use the controller
                    for level in (root, parent) if os.geteuid() == 0 else (parent,):
                        (level / "cgroup.subtree_control").write_text(f"+{controller}")
                folders[controller] = parent / name
                folders[controller].mkdir(exist_ok=True)
            group = cls(folders, memory_limit_mb)
            group._limit(max_processes)
            return group
        except OSError as e:
            cls(folders, memory_limit_mb).remove()
            raise CgroupError(f"cannot make a control group here ({e})") from None

    def _limit(self, max_processes: int) -> None:
        limit = self.memory_limit_mb << 20
        self._write("pids", "pids.max", max_processes)
        if "memory" in self.folders:
            if self._v2("memory"):
                self._write("memory", "memory.max", limit)
                self._write("memory", "memory.swap.max", 0, optional=True)
            else:
                self._write("memory", "memory.limit_in_bytes", limit)
                self._write(
                    "memory", "memory.memsw.limit_in_bytes", limit, optional=True
                )  # no swap
                self._write("memory", "memory.swappiness", 0, optional=True)
                # v1 charges TCP socket buffers to a group only once this limit is set (v2 counts
                # them with the rest): without it one jail's loopback connections could take the
                # machine's whole TCP memory (net.ipv4.tcp_mem), which every job shares.
                self._write(
                    "memory", "memory.kmem.tcp.limit_in_bytes", TCP_BUFFERS_MB << 20, optional=True
                )
        if "cpu" in self.folders:
            if self._v2("cpu"):
                self._write("cpu", "cpu.max", f"{CPU_PERIOD_US} {CPU_PERIOD_US}")
            else:
                self._write("cpu", "cpu.cfs_period_us", CPU_PERIOD_US)
                self._write("cpu", "cpu.cfs_quota_us", CPU_PERIOD_US)

    def _v2(self, controller: str) -> bool:
        return (self.folders[controller] / "cgroup.controllers").exists()

    def _write(self, controller: str, file: str, value, optional: bool = False) -> None:
        try:
            (self.folders[controller] / file).write_text(str(value))
        except FileNotFoundError:
            if not optional:
                raise

    def _read(self, controller: str, file: str) -> str | None:
        if controller not in self.folders:
            return None
        try:
            return (self.folders[controller] / file).read_text()
        except OSError:
            return None

    def join(self) -> None:
        """Move the calling process into every group (called in the child, before exec)."""
        pid = str(os.getpid())
        for folder in set(self.folders.values()):
            (folder / "cgroup.procs").write_text(pid)

    def memory_limit_hit(self) -> bool:
        """Whether the group reached its own memory limit and the kernel killed in it for that
        (not a kill by the machine's own OOM killer, which is no fault of the submission)."""
        text = (
            self._read("memory", "memory.events" if self._v2_memory() else "memory.oom_control")
            or ""
        )
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        if self._v2_memory():
            return int(counts.get("oom", 0)) > 0  # v2 counts the group's own limit apart
        # v1 counts every OOM kill in the group: the group must also have reached its limit.
        peak = self.peak_memory_mb()
        return (
            int(counts.get("oom_kill", 0)) > 0
            and peak is not None
            and peak >= 0.95 * self.memory_limit_mb
        )

    def _v2_memory(self) -> bool:
        return "memory" in self.folders and self._v2("memory")

    def peak_memory_mb(self) -> float | None:
        text = self._read(
            "memory", "memory.peak" if self._v2_memory() else "memory.max_usage_in_bytes"
        )
        return int(text) / (1 << 20) if text and text.strip().isdigit() else None

    def remove(self) -> None:
        """Remove the folders (call once every process in them has ended). The kernel releases a
        group shortly after its last task exits, usually within milliseconds: each is tried
        again after 2 ms, then twice as long each time (at most 0.1 s), for about 5 s in all."""
        for folder in set(self.folders.values()):
            delay, waited = 0.002, 0.0
            while waited < 5:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(delay)
                    waited, delay = waited + delay, min(2 * delay, 0.1)


def _remove_abandoned(parent: Path, age_seconds: float = 3600) -> None:
    """Empty groups left by jobs that were killed before they could remove theirs."""
    for group in parent.glob("job-*"):
        try:
            if (
                not (group / "cgroup.procs").read_text().strip()
                and time.time() - group.stat().st_mtime > age_seconds
            ):
                group.rmdir()
        except OSError:  # in use, or removed by another grader meanwhile
            pass
