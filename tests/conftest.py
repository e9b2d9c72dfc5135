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
from tests.support import CONTRACT, TEST_ALERT_QUIET_SECONDS, TEST_HOLD_SECONDS, AlertInbox, Stack, unique_id


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
        # The backstop and the digest run when a test invokes them, so their reports are the test's own.
        description = stack_tool.up(state_dir, free_port(), ttl_reaper_interval=1.0, hold_seconds=TEST_HOLD_SECONDS,
                                    backstop_schedule="rate(1 day)", digest_schedule="rate(1 day)",
                                    alert_quiet_seconds=TEST_ALERT_QUIET_SECONDS)
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


def pytest_addoption(parser):
    parser.addoption("--part", default="1/1", metavar="K/N",
                     help="run the K-th of N parts of the suite (each with a stack of its own; `make integration` "
                          "runs two side by side: the tests mostly wait on streams and TTL)")


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (it checks what they observed)")


# Seconds each test file took on the 2-core machine (pytest --durations=0, summed per file), so the
# parts take about as long; a file not listed counts as 20 s.
FILE_SECONDS = {
    "tests/test_fuzz.py": 190, "tests/test_stream_failures.py": 135, "tests/test_pipeline.py": 93,
    "tests/test_counters.py": 78, "tests/test_chaos.py": 56, "tests/test_nemesis.py": 50,
    "tests/test_browser.py": 45, "tests/test_alert_damping.py": 35, "tests/test_fidelity.py": 26,
    "tests/test_back_in_stock.py": 25, "tests/test_scenarios.py": 40, "tests/test_operations.py": 12,
    "tests/test_holds.py": 12, "tests/test_digest.py": 9, "tests/test_bad_input.py": 7, "tests/test_admin.py": 7,
    "tests/test_concurrency.py": 4, "tests/test_holders.py": 4, "tests/test_live.py": 20,
    "tests/test_sharding.py": 60,
}


def part_of_each_file(files: list[str], parts: int) -> dict[str, int]:
    """The longest file first, each to the part with the least time so far."""
    load = [0.0] * parts
    assigned = {}
    for name in sorted(files, key=lambda f: (-FILE_SECONDS.get(f, 20), f)):
        part = load.index(min(load))
        assigned[name] = part
        load[part] += FILE_SECONDS.get(name, 20)
    return assigned


def pytest_collection_modifyitems(config, items):
    part, parts = (int(n) for n in config.getoption("--part").split("/"))
    if not 1 <= part <= parts:
        raise pytest.UsageError(f"--part {part}/{parts}: K must be 1..N")
    if parts > 1:
        # A `last` test checks what its own run observed, so every part runs it.
        files = part_of_each_file(sorted({item.nodeid.split("::")[0] for item in items if not item.get_closest_marker("last")}), parts)
        kept = [item for item in items if item.get_closest_marker("last") or files.get(item.nodeid.split("::")[0]) == part - 1]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
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
