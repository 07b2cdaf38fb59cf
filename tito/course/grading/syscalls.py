"""The syscall filter of every jail: kernel state that jails would otherwise share.

bubblewrap loads it (`--seccomp FD`) just before it starts the jailed command, so it holds for
everything a submission runs. Each listed call fails with EPERM; everything else is allowed.
- keyrings (`add_key`, `request_key`, `keyctl`): the kernel keyring belongs to the user, not
  to a namespace, so data put there by one job is read by the next;
- file locks (`flock`, and `fcntl`'s record locks) and file events (inotify, fanotify, and
  `fcntl`'s F_NOTIFY, F_SETLEASE and F_SETSIG): the read-only environment is the same file for
  every jail, so one jail's lock, or its reading a file, is another's signal;
- ignoring SIGCHLD (`rt_sigaction` for SIGCHLD, which also sets SA_NOCLDWAIT): the kernel
  would reap the children at once and their CPU would be in no process's count, so a
  submission busy in short-lived children could pass for a job the machine starved;
- memory a process can hold without mapping it (`memfd_create`, SysV shared memory, message
  queues and semaphores): outside a control group nothing counts it against the jail's limit;
- io_uring, userfaultfd, perf_event_open, bpf: large kernel surfaces no grading needs;
- new namespaces and mounts (`unshare`, `setns`, `clone` with a namespace flag, the mount
  calls), `ptrace` and the cross-process memory calls, module and kexec loading. `clone3`
  answers ENOSYS, which makes the C library fall back to `clone`, whose flags can be checked.
The filter is compiled with libseccomp (pyseccomp binds the system's libseccomp2, which
bubblewrap itself needs), not written by hand.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import signal
import tempfile

DENIED = [
    "add_key",
    "request_key",
    "keyctl",
    "flock",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "perf_event_open",
    "bpf",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "name_to_handle_at",
    "open_by_handle_at",
    "fanotify_init",
    "quotactl",
    "swapon",
    "swapoff",
    "memfd_create",
    "memfd_secret",
    "shmget",
    "msgget",
    "semget",
    # A process's priority, scheduling class and CPUs: lowered, they would let a submission
    # starve itself on a busy machine and look like the machine's failure (processes.py).
    # (sched_setscheduler: below, to the normal class only.)
    "setpriority",
    "sched_setattr",
    "sched_setaffinity",
]
# fcntl's record locks (POSIX and open-file-description ones), its file events (directory
# notification, leases, the signal they send) and pipe sizes (a pipe shrunk by the student's
# side would make the judge's writes wait), by command number.
F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 5, 6, 7, 36, 37, 38
F_SETPIPE_SZ = 1031
F_SETSIG, F_SETLEASE, F_NOTIFY = fcntl.F_SETSIG, fcntl.F_SETLEASE, fcntl.F_NOTIFY
FCNTL_DENIED = (
    F_GETLK,
    F_SETLK,
    F_SETLKW,
    F_OFD_GETLK,
    F_OFD_SETLK,
    F_OFD_SETLKW,
    F_SETSIG,
    F_SETLEASE,
    F_NOTIFY,
    F_SETPIPE_SZ,
)
NAMESPACE_FLAGS = (
    0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (and NEWTIME below)
)
CLONE_NEWTIME = 0x80
SCHED_OTHER = 0


class FilterError(Exception):
    """No syscall filter can be built here (the message says why)."""


@functools.cache
def compiled() -> bytes:
    """The filter as the BPF program bubblewrap loads."""
    try:
        # loads libseccomp when imported: a missing library is named below
        import pyseccomp as sc
    except ImportError as e:  # pyseccomp loads libseccomp.so.2 when imported
        raise FilterError(
            f"pyseccomp cannot load libseccomp ({e}): install it with "
            "`apt-get install libseccomp2` and `pip install pyseccomp`"
        ) from None
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        f.add_rule(deny, name)
    for cmd in FCNTL_DENIED:
        # The kernel reads cmd as 32 bits: compare those only (high bits set must not slip past).
        f.add_rule(deny, "fcntl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, cmd))
    # Setting SIGCHLD's action (a new action given: arg 1 not NULL); reading it stays allowed.
    f.add_rule(
        deny,
        "rt_sigaction",
        sc.Arg(0, sc.MASKED_EQ, 0xFFFFFFFF, signal.SIGCHLD),
        sc.Arg(1, sc.NE, 0),
    )
    # Only the normal scheduling class (0): the kernel's ZeroMQ threads set it as they start.
    f.add_rule(deny, "sched_setscheduler", sc.Arg(1, sc.NE, SCHED_OTHER))
    for flag in [1 << bit for bit in range(32) if NAMESPACE_FLAGS >> bit & 1] + [CLONE_NEWTIME]:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as program:
        f.export_bpf(program)
        program.seek(0)
        return program.read()
