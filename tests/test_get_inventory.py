"""GET /inventory/{productId}: what a shopper's product page reads."""

import json

import pytest

from localstack import stack as stack_tool
from tests.support import assert_error, unique_id

SEED = json.loads(stack_tool.SEED.read_text())["products"]


def seeded(product_id):
    return next(p for p in SEED if p["product_id"] == product_id)


def test_seeded_product_shows_totals_and_each_warehouse_as_seeded(stack):
    product = seeded("SKU-1001")
    response = stack.get("/inventory/SKU-1001")
    assert response.status_code == 200
    body = response.json()
    expected = {w["warehouse_id"]: w for w in product["warehouses"]}
    assert {w["warehouse_id"] for w in body["warehouses"]} == set(expected)
    for warehouse in body["warehouses"]:
        seed = expected[warehouse["warehouse_id"]]
        assert warehouse["stock_count"] == seed["stock_count"]
        assert warehouse["reserved_count"] == 0
        assert warehouse["available"] == seed["stock_count"]
        assert warehouse["threshold_level"] == seed["threshold_level"]
    assert body["product_id"] == "SKU-1001"
    assert body["stock_count"] == sum(w["stock_count"] for w in product["warehouses"])
    assert body["available"] == body["stock_count"] - body["reserved_count"]
    assert body["threshold_level"] == sum(w["threshold_level"] for w in product["warehouses"])
    assert body["status"] == "IN_STOCK"
    assert body["last_updated"]


def test_one_warehouse_by_query_parameter(stack):
    body = stack.get("/inventory/SKU-1003", params={"warehouse_id": "east"}).json()
    assert [w["warehouse_id"] for w in body["warehouses"]] == ["east"]
    assert body["stock_count"] == 25
    assert body["status"] == "IN_STOCK"
    main = stack.get("/inventory/SKU-1003", params={"warehouse_id": "main"}).json()
    assert main["available"] == 0 and main["status"] == "OUT_OF_STOCK"


def test_unknown_product_is_404(stack):
    assert_error(stack.get(f"/inventory/{unique_id('NOPE')}"), 404, "PRODUCT_NOT_FOUND")


def test_known_product_in_unknown_warehouse_is_404(stack):
    error = assert_error(stack.get("/inventory/SKU-1001", params={"warehouse_id": "nowhere"}), 404, "PRODUCT_NOT_FOUND")
    assert "nowhere" in error["message"]


@pytest.mark.parametrize("raw_id", [
    "%20",                # blank
    "x" * 65,             # over the 64-character limit
    "bad%01id",           # control character
    "tab%09id",           # whitespace
    "caf%C3%A9",          # non-ASCII
    "semi%3Bcolon",       # punctuation outside the allowed set
])
def test_malformed_product_id_is_400(stack, raw_id):
    error = assert_error(stack.get(f"/inventory/{raw_id}"), 400, "INVALID_INPUT")
    assert "product_id" in error["message"]


@pytest.mark.parametrize("params, mentions", [
    ({"warehouse_id": ""}, "warehouse_id"),
    ({"warehouse_id": "a b"}, "warehouse_id"),
    ({"warehouse_id": "w" * 65}, "warehouse_id"),
    ({"warehouse": "main"}, "unknown query parameter"),
    ([("warehouse_id", "main"), ("warehouse_id", "east")], "more than once"),
])
def test_malformed_query_is_400(stack, params, mentions):
    error = assert_error(stack.get("/inventory/SKU-1001", params=params), 400, "INVALID_INPUT")
    assert mentions in error["message"]


@pytest.mark.parametrize("stock, reserved, threshold, status", [
    (6, 0, 5, "IN_STOCK"),      # one above the threshold
    (5, 0, 5, "LOW_STOCK"),     # at the threshold
    (1, 0, 5, "LOW_STOCK"),     # last unit
    (0, 0, 5, "OUT_OF_STOCK"),  # none
    (10, 5, 5, "LOW_STOCK"),    # reserved units are not for sale
    (10, 10, 5, "OUT_OF_STOCK"),
    (1, 0, 0, "IN_STOCK"),      # threshold 0: never low, only out
])
def test_status_is_computed_from_available_units_at_the_boundaries(stack, stock, reserved, threshold, status):
    product = unique_id("STATUS")
    stack.put_stock_item(product, "main", stock=stock, threshold=threshold, reserved=reserved)
    body = stack.get(f"/inventory/{product}").json()
    assert (body["available"], body["status"]) == (stock - reserved, status)
    assert body["warehouses"][0]["status"] == status


def test_status_of_a_product_sums_its_warehouses(stack):
    product = unique_id("SUM")
    stack.put_stock_item(product, "main", stock=3, threshold=5)  # LOW on its own
    stack.put_stock_item(product, "east", stock=4, threshold=1)  # IN_STOCK on its own
    body = stack.get(f"/inventory/{product}").json()
    assert (body["available"], body["threshold_level"], body["status"]) == (7, 6, "IN_STOCK")
    by_warehouse = {w["warehouse_id"]: w["status"] for w in body["warehouses"]}
    assert by_warehouse == {"main": "LOW_STOCK", "east": "IN_STOCK"}


def test_every_response_carries_a_request_id(stack):
    ok = stack.get("/inventory/SKU-1002")
    assert ok.headers["x-request-id"]
    assert ok.json()["status"] == "LOW_STOCK"
