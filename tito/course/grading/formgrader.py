"""How `tito nbgrader formgrader` starts nbgrader's formgrader: safe to open on hostile work.

What it shows of submissions is the host's copy for display (display.py: sanitised markdown,
plain outputs, hidden tests as one line). Around that, the Jupyter server it runs in is cut
down to formgrader alone:
- it serves no file: nbgrader wants the course folder under the server's root, so the
  root is the course, and its contents manager (`NoFiles`) refuses every read and write
  through the contents and nbconvert APIs and has no /files/ route (the instructor notebooks,
  the gradebook and a submission's extra files are out of reach);
- it starts no kernel (no kernel is allowed) and no terminal, and loads no extension but
  nbgrader's formgrader;
- every page carries a Content-Security-Policy that lets scripts, styles, images and requests
  come only from the server itself (and images from `data:`). formgrader's own pages need
  inline script, so inline script stays allowed: what stops a submission's script is the
  sanitising, and the policy stops anything from reaching another origin.
"""

from __future__ import annotations

import json
import os
import sys

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import default

from ..settings import Course

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
NO_KERNEL = "no-kernel-in-formgrader"
FORMGRADER = {"nbgrader.server_extensions.formgrader"}
# Server extensions the environment installs; all but formgrader are switched off.
SERVER_EXTENSIONS = [
    "jupyterlab",
    "jupyter_lsp",
    "jupyter_server_terminals",
    "jupyterlab_jupytext",
    "notebook",
    "notebook_shim",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "nbgrader.server_extensions.validate_assignment",
    "nbgrader.server_extensions.formgrader",
]


class NoFiles(AsyncLargeFileManager):
    """A contents manager that refuses every file operation (formgrader reads files itself).

    No /files/ route either (the file manager's would serve files straight from the root).
    """

    @default("files_handler_class")
    def _files_handler_class_default(self):
        return None

    def _refuse(self, *args, **kwargs):
        raise web.HTTPError(403, "formgrader's server serves no files")

    get = save = delete_file = rename_file = new = new_untitled = copy = _refuse
    create_checkpoint = restore_checkpoint = list_checkpoints = delete_checkpoint = _refuse


def server_argv(course: Course, port: int, token: str) -> list[str]:
    """The command that runs formgrader's Jupyter server on 127.0.0.1:`port`."""
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={course.root}",
        f"--ServerApp.contents_manager_class={NoFiles.__module__}.NoFiles",
        *(
            f"--ServerApp.jpserver_extensions={name}={name in FORMGRADER}"
            for name in SERVER_EXTENSIONS
        ),
        f"--IdentityProvider.token={token}",
        "--ServerApp.terminals_enabled=False",
        f"--KernelSpecManager.allowed_kernelspecs={NO_KERNEL}",
        "--ServerApp.tornado_settings="
        + json.dumps(
            {
                "headers": {
                    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                    "X-Content-Type-Options": "nosniff",
                }
            }
        ),
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # Jupyter refuses root unless told; grading itself stays jailed
    return argv
