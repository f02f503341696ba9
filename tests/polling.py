"""Waiting for a condition in tests: poll it, never sleep a fixed time."""

import time

import pytest


def wait_for(condition, timeout=60, interval=0.05, what="condition"):
    """Poll ``condition`` until it returns something true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
