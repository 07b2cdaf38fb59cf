"""Headless Chromium (Debian's, driven by Playwright) and formgrader for the browser tests."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture
def browser(request, tmp_path):
    """Headless Debian Chromium driven by Playwright (no browser download); a page per test."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip(
            "no chromium on this machine (`apt-get install chromium`; make install does it as root)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1280, "height": 1600})
        yield page
        if request.node.report_call.failed:  # the page as it was when the test failed
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
        b.close()


AXE = Path(__file__).parents[2] / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_problems(page) -> list[str]:
    """axe-core's violations of impact serious or critical on the open page, as "rule: what it
    asks (elements)". Skips the test when axe-core is not installed (make install does it)."""
    if not AXE.is_file():
        pytest.skip(f"no axe-core at {AXE}: `make install` installs it with npm")
    page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id}: ${v.help} (${v.nodes.length})`)"""
    )


@contextlib.contextmanager
def formgrader(course):
    """`tito nbgrader formgrader` for the course on a free loopback port; yields (base URL,
    token)."""
    shutil.copy(
        Path(__file__).parents[2] / "nbgrader_config.py", course.root / "nbgrader_config.py"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "formgrader-test"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "tito"),
            "nbgrader",
            "formgrader",
            "--port",
            str(port),
            "--token",
            token,
        ],
        cwd=course.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    server.stderr.read().decode()[-2000:]
                )
                time.sleep(0.3)
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def formgrader_api(base, token, path, method="GET"):
    request = urllib.request.Request(
        f"{base}/formgrader/api/{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())
