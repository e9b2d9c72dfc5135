"""Helpers for the integration tests: the API over HTTP, the tables through the AWS SDK."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests


@dataclass
class Stack:
    description: dict
    state_dir: Path | None = None

    def __post_init__(self):
        self.api_url = self.description["api_url"]
        self.http = requests.Session()
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                        region_name=self.description["region"])
        self.client = lambda service: session.client(service, endpoint_url=self.description["endpoint"])
        self.dynamodb = self.client("dynamodb")

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(f"{self.api_url}{path}", timeout=10, **kwargs)

    def put_stock_item(self, product_id: str, warehouse_id: str, stock: int, threshold: int, reserved: int = 0):
        """Writes a stock item directly, for a test's own product (the admin API comes later)."""
        self.dynamodb.put_item(TableName=self.description["stock_table"], Item={
            "product_id": {"S": product_id}, "warehouse_id": {"S": warehouse_id},
            "stock_count": {"N": str(stock)}, "reserved_count": {"N": str(reserved)},
            "available_count": {"N": str(stock - reserved)}, "threshold_level": {"N": str(threshold)},
            "version": {"N": "1"}, "last_updated": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        })


def unique_id(prefix: str = "T") -> str:
    """A product id no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(condition, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls until condition() returns something truthy; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The documented error shape: {"error": {"code", "message", "request_id"}} and the status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]
    return error
