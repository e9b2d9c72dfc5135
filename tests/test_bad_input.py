"""Invariant 6: bad input of every kind gets a clear 4xx JSON error and changes nothing."""

import pytest

from tests.support import assert_error

RESERVE_BODIES = [
    ({"quantity": 0}, "quantity"),
    ({"quantity": -1}, "quantity"),
    ({"quantity": 1.5}, "quantity"),
    ({"quantity": "3"}, "quantity"),
    ({"quantity": 1001}, "quantity"),
    ({"quantity": None}, "quantity"),
    ({}, "quantity"),
    ({"quantity": 1, "colour": "red"}, "colour"),
    ({"quantity": 1, "warehouse_id": "x" * 65}, "warehouse_id"),
    ({"quantity": 1, "warehouse_id": "a b"}, "warehouse_id"),
    ([1], "JSON object"),
]


@pytest.fixture
def product(new_product):
    return new_product(main=10)


@pytest.mark.parametrize("body, mentions", RESERVE_BODIES)
def test_reserve_refuses_malformed_bodies(stack, product, body, mentions):
    error = assert_error(stack.call("POST", f"/inventory/{product}/reserve", json=body), 400, "INVALID_INPUT")
    assert mentions in error["message"]
    assert stack.levels(product) == {"main": (10, 0, 10)}
    assert stack.reservations(product) == []


@pytest.mark.parametrize("raw", ["", "{", "quantity=1", '{"quantity": 1} trailing', "\x00"])
def test_reserve_refuses_what_is_not_json(stack, product, raw):
    assert_error(stack.call("POST", f"/inventory/{product}/reserve", data=raw), 400, "INVALID_INPUT")
    assert stack.levels(product) == {"main": (10, 0, 10)}


def test_reserve_refuses_an_oversized_body(stack, product):
    response = stack.call("POST", f"/inventory/{product}/reserve", data='{"quantity": 1, "pad": "' + "x" * 5000 + '"}')
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert stack.levels(product) == {"main": (10, 0, 10)}


@pytest.mark.parametrize("key", ["short", "x" * 129, "spaces are not allowed here"])
def test_reserve_refuses_a_malformed_idempotency_key(stack, product, key):
    error = assert_error(stack.call("POST", f"/inventory/{product}/reserve", json={"quantity": 1},
                                    headers={"Idempotency-Key": key}), 400, "INVALID_INPUT")
    assert "Idempotency-Key" in error["message"]
    assert stack.reservations(product) == []


@pytest.mark.parametrize("path", ["/inventory/" + "x" * 65 + "/reserve", "/inventory/bad%01id/reserve"])
def test_reserve_refuses_malformed_product_ids(stack, path):
    assert_error(stack.call("POST", path, json={"quantity": 1}), 400, "INVALID_INPUT")


@pytest.mark.parametrize("reservation_id", ["not-a-uuid", "x" * 200, "00000000-0000-0000-0000-00000000000g"])
def test_release_refuses_malformed_reservation_ids(stack, product, reservation_id):
    assert_error(stack.release(product, reservation_id), 400, "INVALID_INPUT")


@pytest.mark.parametrize("body, mentions", [
    ({"reservation_id": "nope"}, "reservation_id"),
    ({"reservation_id": 5}, "reservation_id"),
    ({"reservation_id": "0b0e4c8e-5d3c-4a8e-9d47-2f1f0c7a9e11", "stock_count": 1}, "stock_count"),
])
def test_checkout_refuses_malformed_bodies(stack, tokens, product, body, mentions):
    error = assert_error(stack.call("PUT", f"/inventory/{product}", tokens["shopper"], json=body), 400, "INVALID_INPUT")
    assert mentions in error["message"]


@pytest.mark.parametrize("body, mentions", [
    ({}, "nothing to change"),
    ({"stock_count": -1}, "stock_count"),
    ({"stock_count": 1.5}, "stock_count"),
    ({"stock_count": "5"}, "stock_count"),
    ({"stock_count": 10**12}, "stock_count"),
    ({"stock_count": 1, "adjust_by": 1}, "not both"),
    ({"adjust_by": 0}, "adjust_by"),
    ({"threshold_level": -2}, "threshold_level"),
    ({"stock_count": 1, "expected_version": -1}, "expected_version"),
    ({"stock_count": 1, "reason": "r" * 201}, "reason"),
    ({"stock_count": 1, "reason": "two\nlines"}, "reason"),
    ({"stock_count": 1, "owner": "me"}, "owner"),
    ({"adjust_by": 1, "expected_version": None}, "expected_version: must not be null"),
    ({"stock_count": 1, "warehouse_id": "no/slash"}, "warehouse_id"),
    ({"shards": 0}, "shards must be from 1 to 32"),
    ({"shards": 33}, "shards must be from 1 to 32"),
    ({"shards": 2.5}, "shards"),
    ({"shards": "4"}, "shards"),
    ({"shards": None}, "shards"),
])
def test_admin_refuses_malformed_changes(stack, tokens, product, body, mentions):
    body = {"warehouse_id": "main", **body} if "warehouse_id" not in body else body
    error = assert_error(stack.admin_put(product, body, tokens["admin"]), 400, "INVALID_INPUT")
    assert mentions in error["message"]
    assert stack.levels(product) == {"main": (10, 0, 10)}


@pytest.mark.parametrize("params, mentions", [
    ({"status": "LOW"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "!!"}, "cursor"),
    ({"sort": "asc"}, "unknown query parameter"),
])
def test_list_refuses_malformed_queries(stack, tokens, params, mentions):
    error = assert_error(stack.call("GET", "/inventory", tokens["admin"], params=params), 400, "INVALID_INPUT")
    assert mentions in error["message"]
