"""Run a command as an unprivileged user, the way an instructor's laptop grades.

As root the command runs as `nobody` (uid 65534, no capabilities, no new privileges). The
Python installation may sit under a folder that only root may enter (here /root/.pyenv):
in a private mount namespace of the command's own, such a folder is covered by an empty
tmpfs into which only the entries on the way to the needed paths are bound back, so
`nobody` can run the same interpreter without any permission of the machine changing.
Without root the command simply runs as the current (already unprivileged) user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOBODY = 65534

# $@: pairs FOLDER ENTRY (FOLDER is covered, ENTRY bound back into it), then --, then the command.
_COVER = """\
set -e
mount -t tmpfs -o mode=0755 tmpfs /mnt
while [ "$1" != "--" ]; do
  k="/mnt/$(printf %s "$1" | tr / _)"
  if [ ! -d "$k" ]; then mkdir "$k"; mount --bind "$1" "$k"; \\
    mount -t tmpfs -o mode=0755 tmpfs "$1"; fi
  mkdir -p "$1/$2"
  mount --bind "$k/$2" "$1/$2"
  shift 2
done
shift
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \\
  --no-new-privs -- "$@"
"""


def _closed_folders(paths: list[Path]) -> list[tuple[str, str]]:
    """(folder others may not enter, its entry on the way to a needed path), outermost first."""
    pairs = []
    for p in paths:
        p = p.resolve()
        for ancestor in reversed(p.parents):
            if ancestor != p and not os.stat(ancestor).st_mode & 0o001:
                pair = (str(ancestor), p.relative_to(ancestor).parts[0])
                if pair not in pairs:
                    pairs.append(pair)
                break
    return pairs


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    needed: list[Path],
    timeout: float,
    groups: list[Path] = (),
):
    """Run `argv` unprivileged; `needed` are the paths it must be able to reach. With `groups`
    (control group folders, as root), it starts in them: groups delegated to it."""
    if os.geteuid() != 0:
        return subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    needed = [Path(sys.base_prefix), Path(sys.prefix), *needed]
    pairs = [x for pair in _closed_folders(needed) for x in pair]
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _COVER,
        "sh",
        *pairs,
        "--",
        *argv,
    ]

    def join():
        for group in groups:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=join if groups else None,
    )


def give_to_nobody(root: Path) -> None:
    """Make `root` and everything in it belong to the unprivileged user (as root only)."""
    if os.geteuid() != 0:
        return
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, NOBODY, NOBODY)
