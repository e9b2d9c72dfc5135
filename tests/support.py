"""Test helpers: the stack client shared with the scenarios, the template as deployed, and assertions
of the API's contract. The fixtures are in conftest.py."""

import contextlib
import json
import os
import subprocess
import sys

import requests

from localstack.inventory_client import AlertInbox, Stack, new_cart_token, read_stream, unique_id, wait_for  # noqa: F401
from localstack.stack import ROOT, expanded_template

# The test stack's hold length: short, so expiry is observable within a test.
TEST_HOLD_SECONDS = 10
# The test stack's quiet period after an alert (the template's AlertQuietSeconds): short, so a held
# crossing becomes due within a test (tests/test_alert_damping.py), and long enough that a churn
# started after waiting for an alert still falls inside it on a loaded 2-core machine.
TEST_ALERT_QUIET_SECONDS = 10

# template.yaml with its loops unrolled: every resource under its logical id.
TEMPLATE = expanded_template()


def run_redrive(stack: Stack, tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    """The runbook's DLQ redrive script, run as an operator runs it, against the test stack."""
    stack_json = tmp_path / "stack.json"
    stack_json.write_text(json.dumps(stack.description))
    return subprocess.run([sys.executable, "-m", "localstack.redrive_stream_failures", *arguments], cwd=ROOT,
                          env={**os.environ, "STACK_JSON": str(stack_json)}, capture_output=True, text=True,
                          timeout=300)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The documented error shape: {"error": {"code", "message", "request_id"}} and the status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# The contract test (tests/test_openapi.py) checks every API answer the tests receive. A test that
# crashes functions on purpose (the nemesis's `kill` fault) receives API Gateway's own answer to a
# crash (502), which is not the API's; it says so by running under this.
CONTRACT = {"recording": True}


@contextlib.contextmanager
def outside_the_contract():
    CONTRACT["recording"] = False
    try:
        yield
    finally:
        CONTRACT["recording"] = True
