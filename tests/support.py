"""Test helpers: the stack client shared with the scenarios, plus assertions of the API's contract."""

import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "localstack"))

from inventory_client import AlertInbox, Stack, new_cart_token, read_stream, unique_id, wait_for  # noqa: E402,F401


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The documented error shape: {"error": {"code", "message", "request_id"}} and the status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]
    return error
