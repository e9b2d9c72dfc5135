"""Integration fixtures: a stack of the tests' own on a local AWS, reached over real HTTP.

By default a fresh MiniStack is started on a free port (so a running `make up` is never touched),
the template deployed, and everything stopped at the end, pass or fail. Set STACK_JSON to the
stack.json of a stack that is already running to test that one instead.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from localstack import stack as stack_tool
from tests.support import CONTRACT, TEST_HOLD_SECONDS, AlertInbox, Stack, unique_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def stack() -> Stack:
    given = os.environ.get("STACK_JSON")
    if given:
        yield Stack(json.loads(Path(given).read_text()), Path(given).parent)
        return
    state_dir = Path(tempfile.mkdtemp(prefix="inventory-test-", dir=stack_tool.ROOT / ".local"))
    try:
        # The backstop runs when a test invokes it, so its reports are the test's own.
        description = stack_tool.up(state_dir, free_port(), ttl_reaper_interval=1.0, hold_seconds=TEST_HOLD_SECONDS,
                                    backstop_schedule="rate(1 day)")
        yield Stack(description, state_dir)
    finally:
        stack_tool.stop_ministack(state_dir)


@pytest.fixture(scope="session")
def tokens(stack) -> dict:
    """Access tokens of the demo admin and shopper, signed in through Cognito as the pages do."""
    return {role: stack.token(role) for role in ("admin", "shopper")}


@pytest.fixture
def new_product(stack, tokens):
    """Creates a product of the test's own through the admin API: new_product(main=10, east=(5, 2))
    where a value is a stock count or (stock, threshold)."""
    def create(**warehouses) -> str:
        product = unique_id("P")
        for warehouse, spec in warehouses.items():
            stock, threshold = spec if isinstance(spec, tuple) else (spec, 0)
            response = stack.admin_put(product, {"warehouse_id": warehouse, "stock_count": stock,
                                                 "threshold_level": threshold, "reason": "test set-up"}, tokens["admin"])
            assert response.status_code == 201, response.text
        return product
    return create


@pytest.fixture(scope="session")
def inbox(stack) -> "AlertInbox":
    return AlertInbox(stack)


# Every HTTP response the tests receive, for the contract test (tests/test_openapi.py).
_OBSERVED: list = []
_real_request = requests.Session.request


def _recording_request(self, method, url, *args, **kwargs):
    response = _real_request(self, method, url, *args, **kwargs)
    # CORS preflights are API Gateway's own answers, not operations of the contract.
    if "/_aws/execute-api/" in url and method.upper() != "OPTIONS" and CONTRACT["recording"]:
        path = "/" + requests.utils.urlparse(url).path.split("/", 5)[-1]  # drop /_aws/execute-api/<api>/<stage>
        try:
            body = response.json()
        except ValueError:
            body = None
        _OBSERVED.append((method.upper(), requests.utils.unquote(path), response.status_code, body))
    return response


requests.Session.request = _recording_request


@pytest.fixture(scope="session")
def observed_responses() -> list:
    return _OBSERVED


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (it checks what they observed)")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_terminal_summary(terminalreporter):
    """The fuzzing figures (tests/test_fuzz.py), in every run's output."""
    fuzz = sys.modules.get("tests.test_fuzz")
    counts = getattr(fuzz, "FUZZ_COUNTS", None)
    if counts:
        by_status: dict[str, int] = {}
        for outcome, count in counts.items():
            status = outcome.rsplit(" ", 1)[1]
            by_status[status] = by_status.get(status, 0) + count
        terminalreporter.write_sep("-", "schemathesis fuzzing")
        terminalreporter.write_line(f"{sum(counts.values())} requests; by status: "
                                    + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
