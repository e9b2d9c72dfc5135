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

    # Each call opens its own connection, so these are safe to use from many threads at once.
    def call(self, method: str, path: str, token: str | None = None, headers: dict | None = None,
             **kwargs) -> requests.Response:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs)

    def reserve(self, product: str, quantity, warehouse: str | None = None, key: str | None = None):
        body = {"quantity": quantity} if warehouse is None else {"quantity": quantity, "warehouse_id": warehouse}
        return self.call("POST", f"/inventory/{product}/reserve", json=body,
                         headers={"Idempotency-Key": key} if key else None)

    def commit(self, product: str, reservation_id: str, token: str):
        return self.call("PUT", f"/inventory/{product}", token, json={"reservation_id": reservation_id})

    def release(self, product: str, reservation_id: str):
        return self.call("DELETE", f"/inventory/{product}/reservations/{reservation_id}")

    def admin_put(self, product: str, body: dict, token: str):
        return self.call("PUT", f"/inventory/{product}", token, json=body)

    def levels(self, product: str) -> dict:
        """warehouse_id -> (stock_count, reserved_count, available) as GET shows them."""
        response = self.get(f"/inventory/{product}")
        assert response.status_code == 200, response.text
        return {w["warehouse_id"]: (w["stock_count"], w["reserved_count"], w["available"])
                for w in response.json()["warehouses"]}

    def reservations(self, product: str) -> list[dict]:
        """Every hold of a product, read straight from the table (a test-only scan)."""
        items, kwargs = [], {}
        while True:
            page = self.dynamodb.scan(TableName=self.description["reservations_table"], ConsistentRead=True,
                                      FilterExpression="product_id = :p",
                                      ExpressionAttributeValues={":p": {"S": product}}, **kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [{"reservation_id": i["reservation_id"]["S"], "warehouse_id": i["warehouse_id"]["S"],
                 "quantity": int(i["quantity"]["N"]), "state": i["state"]["S"]} for i in items]

    def assert_reconciled(self, product: str) -> dict:
        """Invariant 2: per warehouse, reserved = Σ ACTIVE holds and available = stock − reserved."""
        levels = self.levels(product)
        holds = self.reservations(product)
        for warehouse, (stock, reserved, available) in levels.items():
            active = sum(h["quantity"] for h in holds if h["warehouse_id"] == warehouse and h["state"] == "ACTIVE")
            assert reserved == active, f"{product}/{warehouse}: reserved {reserved} but active holds {active}"
            assert available == stock - reserved, f"{product}/{warehouse}: {available} != {stock} - {reserved}"
        return levels

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
