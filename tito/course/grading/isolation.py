"""Hide the course's files from the student's process (Linux mount namespaces).

The sandbox that runs student code for the judge starts in a private mount namespace in
which the course folders, temporary folders and home folder are covered by empty tmpfs
mounts (files by /dev/null), keeping only what Python itself needs; it then drops every
capability, so it cannot unmount them. The student's code therefore cannot read reference
solutions, hidden tests or other students' work, nor import the reference package. This
needs root (as on CI machines); elsewhere the sandbox runs unisolated and the outcome says so.
"""
from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tinytorch

SOLUTION_MARK = "### BEGIN SOLUTION"
GRADING_FILES = ["__init__.py", "wire.py", "mirror.py", "sandbox.py"]


@functools.cache
def available() -> bool:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "setpriv", "mount")):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt && exec setpriv --inh-caps=-all --bounding-set=-all "
                            "--no-new-privs -- true"], capture_output=True)
    return probe.returncode == 0


def stage(directory: Path) -> Path:
    """Copy what the sandbox imports into `directory`; return the script to run.

    The copy of tinytorch leaves out every exported file that still holds solution markers,
    i.e. the reference solutions of graded modules.
    """
    grading = Path(__file__).parent
    dest = directory / "tito" / "course" / "grading"
    dest.mkdir(parents=True)
    for f in ["tito/__init__.py", "tito/course/__init__.py"]:
        (directory / f).write_text('"""Copy for the grading sandbox."""\n')
    for name in GRADING_FILES:
        shutil.copy(grading / name, dest / name)
    package = Path(tinytorch.__file__).parent
    for src in package.rglob("*.py"):
        if SOLUTION_MARK not in src.read_text(encoding="utf-8"):
            target = directory / "tinytorch" / src.relative_to(package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    run = directory / "run_sandbox.py"
    # python -I does not put the script's folder on sys.path; the staged copies must win
    # over the installed (reference) package, so they go first.
    run.write_text("import runpy, sys\nsys.path.insert(0, %r)\n"
                   "runpy.run_module('tito.course.grading.sandbox', run_name='__main__')\n" % str(directory))
    directory.chmod(0o755)
    return run


def _hidden(roots: list[Path], keep: list[Path]) -> tuple[list[Path], list[Path]]:
    """(folders, files) to cover: everything under `roots` except `keep` and their ancestors."""
    keep = [k.resolve() for k in keep]
    folders, files = [], []

    def visit(d: Path):
        for child in sorted(d.iterdir()):
            if child.is_symlink():
                continue
            c = child.resolve()
            if any(c == k for k in keep):
                continue
            if any(k.is_relative_to(c) for k in keep):
                visit(child)
            elif child.is_dir():
                folders.append(child)
            elif child.is_file():
                files.append(child)

    seen = set()
    for root in roots:
        r = root.resolve()
        if r.is_dir() and r not in seen and r != Path("/"):
            seen.add(r)
            visit(r)
    # A folder covered as a whole makes mounts inside it unnecessary (and impossible).
    folders = sorted({f.resolve() for f in folders})
    outer = [f for f in folders if not any(f != g and f.is_relative_to(g) for g in folders)]
    files = sorted({f.resolve() for f in files if not any(f.resolve().is_relative_to(g) for g in outer)})
    return outer, files


def command(argv: list[str], course_dirs: list[Path], staged: Path) -> list[str]:
    """`argv` wrapped so that it runs with the course and temporary files hidden.

    The temporary folder is replaced by an empty one (other gradings create and delete
    files there all the time), into which only the staged sandbox and, if it lives there,
    the Python environment are mounted back at their own paths. Elsewhere the course folders,
    their parents and the home folder are covered entry by entry, keeping Python's own files.
    """
    tmp = Path(tempfile.gettempdir()).resolve()
    keep = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent, staged]
    keep = sorted({k.resolve() for k in keep})
    keep_in_tmp = [k for k in keep if k.is_relative_to(tmp)]
    keep_in_tmp = [k for k in keep_in_tmp if not any(k != o and k.is_relative_to(o) for o in keep_in_tmp)]
    roots = list(course_dirs) + [Path("/var/tmp"), Path.home()]
    roots += [d.parent for d in course_dirs if len(d.resolve().parts) > 2]
    roots = [r for r in roots if not r.resolve().is_relative_to(tmp)]
    folders, files = _hidden(roots, keep + [tmp])
    q = shlex.quote
    lines = ["set -e", "mount -t tmpfs -o size=1m tmpfs /mnt"]
    for i, k in enumerate(keep_in_tmp):
        lines += [f"mkdir /mnt/keep{i}", f"mount --bind {q(str(k))} /mnt/keep{i}"]
    lines.append(f"mount -t tmpfs -o size=256m,mode=1777 tmpfs {q(str(tmp))}")
    for i, k in enumerate(keep_in_tmp):
        lines += [f"mkdir -p {q(str(k))}", f"mount --move /mnt/keep{i} {q(str(k))}"]
    # Entries may vanish between listing and mounting (journals, other gradings): that is fine.
    lines += [f"mount -t tmpfs -o size=64k,mode=0755 tmpfs {q(str(d))} 2>/dev/null || [ ! -e {q(str(d))} ]"
              for d in folders]
    lines += [f"mount --bind /dev/null {q(str(f))} 2>/dev/null || [ ! -e {q(str(f))} ]" for f in files]
    lines.append('exec setpriv --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines), "sh", *argv]
