"""Fixtures of the grading tests: headless Chromium (browser.py)."""

from tests.grading.browser import browser  # noqa: F401 (a fixture)
