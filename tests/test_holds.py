"""Holds: reserve (add to cart), release (remove), commit (checkout) — each transition exactly once."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support import TEST_HOLD_SECONDS, assert_error, unique_id, wait_for


def test_reserve_takes_units_off_sale_and_returns_the_hold(stack, new_product):
    product = new_product(main=10)
    before = time.time()
    response = stack.reserve(product, 3, "main")
    assert response.status_code == 201, response.text
    hold = response.json()
    assert set(hold) == {"reservation_id", "product_id", "warehouse_id", "quantity", "expires_at", "status"}
    assert (hold["product_id"], hold["warehouse_id"], hold["quantity"], hold["status"]) == (product, "main", 3, "ACTIVE")
    expires = time.mktime(time.strptime(hold["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + TEST_HOLD_SECONDS - 2 <= expires <= time.time() + TEST_HOLD_SECONDS + 1
    assert stack.levels(product) == {"main": (10, 3, 7)}
    stack.assert_reconciled(product)


def test_not_enough_stock_is_409_with_what_is_available(stack, new_product):
    product = new_product(main=2)
    error = assert_error(stack.reserve(product, 3, "main"), 409, "INSUFFICIENT_STOCK")
    assert error["available"] == 2
    assert stack.levels(product) == {"main": (2, 0, 2)}
    assert stack.reservations(product) == []


def test_release_puts_units_back_once(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    first = stack.release(product, hold["reservation_id"])
    assert first.status_code == 200 and first.json()["status"] == "RELEASED"
    again = stack.release(product, hold["reservation_id"])
    assert again.status_code == 200 and again.json()["status"] == "RELEASED"
    assert stack.levels(product) == {"main": (5, 0, 5)}
    stack.assert_reconciled(product)


def test_commit_sells_the_units_once(stack, new_product, tokens):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    first = stack.commit(product, hold["reservation_id"], tokens["shopper"])
    assert first.status_code == 200 and first.json()["status"] == "COMMITTED"
    assert stack.levels(product) == {"main": (3, 0, 3)}
    again = stack.commit(product, hold["reservation_id"], tokens["shopper"])
    assert again.status_code == 200 and again.json()["status"] == "COMMITTED"
    assert stack.levels(product) == {"main": (3, 0, 3)}, "a repeated checkout must not sell twice"


def test_release_after_commit_is_409_and_changes_nothing(stack, new_product, tokens):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    stack.commit(product, hold["reservation_id"], tokens["shopper"])
    assert_error(stack.release(product, hold["reservation_id"]), 409, "RESERVATION_COMMITTED")
    assert stack.levels(product) == {"main": (3, 0, 3)}


def test_commit_after_release_is_409_and_changes_nothing(stack, new_product, tokens):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    stack.release(product, hold["reservation_id"])
    assert_error(stack.commit(product, hold["reservation_id"], tokens["shopper"]), 409, "RESERVATION_RELEASED")
    assert stack.levels(product) == {"main": (5, 0, 5)}


def test_commit_after_expiry_is_410_and_changes_nothing(stack, new_product, tokens):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    expires = time.mktime(time.strptime(hold["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    time.sleep(max(0.0, expires - time.time()) + 1.1)
    # TTL may be deleting it right now; the expiry consumer writes it back as EXPIRED within moments.
    wait_for(lambda: stack.reservations(product), timeout=10, what="the hold record (ACTIVE or EXPIRED)")
    assert_error(stack.commit(product, hold["reservation_id"], tokens["shopper"]), 410, "RESERVATION_EXPIRED")
    stock, _, _ = stack.levels(product)["main"]
    assert stock == 5, "an expired hold must not be sold"
    assert all(h["state"] != "COMMITTED" for h in stack.reservations(product))
    stack.assert_reconciled(product)


def test_unknown_or_foreign_reservation_is_404(stack, new_product, tokens):
    product, other = new_product(main=5), new_product(main=5)
    hold = stack.reserve(product, 1, "main").json()
    assert_error(stack.release(other, hold["reservation_id"]), 404, "RESERVATION_NOT_FOUND")
    assert_error(stack.commit(other, hold["reservation_id"], tokens["shopper"]), 404, "RESERVATION_NOT_FOUND")
    assert_error(stack.release(product, str(uuid.uuid4())), 404, "RESERVATION_NOT_FOUND")
    assert stack.levels(product) == {"main": (5, 1, 4)} and stack.levels(other) == {"main": (5, 0, 5)}


def test_idempotency_key_retry_returns_the_same_hold(stack, new_product):
    product = new_product(main=10)
    key = str(uuid.uuid4())
    first = stack.reserve(product, 2, key=key)
    assert first.status_code == 201
    retry = stack.reserve(product, 2, key=key)
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert stack.levels(product) == {"main": (10, 2, 8)}


def test_idempotency_key_with_a_different_body_is_422(stack, new_product):
    product = new_product(main=10)
    key = str(uuid.uuid4())
    stack.reserve(product, 2, key=key)
    assert_error(stack.reserve(product, 3, key=key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert_error(stack.reserve(product, 2, "main", key=key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert stack.levels(product) == {"main": (10, 2, 8)}


def test_idempotency_key_is_per_product(stack, new_product):
    first, second = new_product(main=10), new_product(main=10)
    key = str(uuid.uuid4())
    a, b = stack.reserve(first, 1, key=key).json(), stack.reserve(second, 1, key=key).json()
    assert a["reservation_id"] != b["reservation_id"]


def test_idempotency_key_retried_concurrently_holds_once(stack, new_product):
    product = new_product(main=10)
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: stack.reserve(product, 3, key=key), range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], statuses
    assert len({r.json()["reservation_id"] for r in responses}) == 1
    assert stack.levels(product) == {"main": (10, 3, 7)}
    assert len(stack.reservations(product)) == 1


def test_idempotent_retry_still_answers_after_stock_ran_out(stack, new_product):
    product = new_product(main=3)
    key = str(uuid.uuid4())
    hold = stack.reserve(product, 3, key=key).json()
    assert stack.reserve(product, 1).status_code == 409
    retry = stack.reserve(product, 3, key=key)
    assert retry.status_code == 200 and retry.json()["reservation_id"] == hold["reservation_id"]


def test_without_a_warehouse_the_hold_goes_where_it_fits(stack, new_product):
    product = new_product(main=2, east=5)
    hold = stack.reserve(product, 3).json()
    assert hold["warehouse_id"] == "east"
    # Now main 2, east 2: 3 fit nowhere, and a hold is never split.
    error = assert_error(stack.reserve(product, 3), 409, "INSUFFICIENT_STOCK")
    assert error["available"] == 2
    assert stack.reserve(product, 2).status_code == 201
    levels = stack.assert_reconciled(product)
    assert sum(reserved for _, reserved, _ in levels.values()) == 5
    total = stack.get(f"/inventory/{product}").json()
    assert (total["stock_count"], total["reserved_count"], total["available"]) == (7, 5, 2)


def test_a_named_warehouse_is_the_only_one_used(stack, new_product):
    product = new_product(main=1, east=5)
    assert_error(stack.reserve(product, 2, "main"), 409, "INSUFFICIENT_STOCK")
    assert_error(stack.reserve(product, 1, "west"), 404, "PRODUCT_NOT_FOUND")
    assert stack.levels(product) == {"main": (1, 0, 1), "east": (5, 0, 5)}


def test_unknown_product_reserve_is_404(stack):
    assert_error(stack.reserve(unique_id("NOPE"), 1), 404, "PRODUCT_NOT_FOUND")


def test_checkout_needs_a_signed_in_user(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 1, "main").json()
    anonymous = stack.call("PUT", f"/inventory/{product}", json={"reservation_id": hold["reservation_id"]})
    assert anonymous.status_code == 401
    forged = stack.call("PUT", f"/inventory/{product}", token="not.a.jwt", json={"reservation_id": hold["reservation_id"]})
    assert forged.status_code == 401
    assert stack.levels(product) == {"main": (5, 1, 4)}


def test_released_hold_is_kept_for_audit(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 1, "main").json()
    stack.release(product, hold["reservation_id"])
    item = stack.dynamodb.get_item(TableName=stack.description["reservations_table"], ConsistentRead=True,
                                   Key={"reservation_id": {"S": hold["reservation_id"]}})["Item"]
    assert item["state"]["S"] == "RELEASED" and item["ended_by"]["S"] == "shopper"
    # No longer in the sweep index, and kept well past its expiry.
    assert "sweep_shard" not in item and "sweep_due_at" not in item
    assert int(item["purge_at"]["N"]) > time.time() + 7 * 24 * 3600
