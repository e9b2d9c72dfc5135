"""Counters that never drift: an admin's compare-and-set sees sales, admin writes apply exactly once,
a lapsed hold's units come back exactly once whatever order TTL, the stream, the backstop and a
reused Idempotency-Key arrive in, and the reconciler repairs real drift and nothing else."""

from __future__ import annotations

import threading
import time
import uuid

from tests.support import TEST_HOLD_SECONDS, assert_error, wait_for

LOOK_GAP_SECONDS = 10  # shared/src/reconcile.rs


def version(stack, product, warehouse="main") -> int:
    response = stack.get(f"/inventory/{product}")
    return next(w["version"] for w in response.json()["warehouses"] if w["warehouse_id"] == warehouse)


def number(item: dict, name: str) -> int:
    return int(item[name]["N"])


def reconciled_entries(stack, product, token) -> list[dict]:
    response = stack.call("GET", f"/inventory/{product}/history", token, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["items"] if entry["kind"] == "reconciled"]


def expiry_mapping(stack) -> str:
    mappings = stack.client("lambda").list_event_source_mappings(
        FunctionName=stack.description["functions"]["expire_reservations"])["EventSourceMappings"]
    assert len(mappings) == 1, mappings
    return mappings[0]["UUID"]


def set_expiry_consumer(stack, enabled: bool):
    stack.client("lambda").update_event_source_mapping(UUID=expiry_mapping(stack), Enabled=enabled)


# --- 1. versions that mean something ------------------------------------------------------------

def test_an_admin_compare_and_set_from_before_a_sale_is_refused(stack, tokens, new_product):
    product = new_product(main=10)
    seen = version(stack, product)
    hold = stack.reserve(product, 3, "main").json()
    assert stack.commit(product, hold["reservation_id"], tokens["shopper"]).status_code == 200
    # The admin saves "10 on the shelf" from a view taken before the sale: refused, nothing changes.
    error = assert_error(stack.admin_put(product, {"warehouse_id": "main", "stock_count": 10,
                                                   "expected_version": seen}, tokens["admin"]),
                         409, "VERSION_CONFLICT")
    assert error["current_version"] == seen + 1
    assert stack.levels(product)["main"] == (7, 0, 7)
    # From the current view it is accepted.
    response = stack.admin_put(product, {"warehouse_id": "main", "stock_count": 10,
                                         "expected_version": seen + 1}, tokens["admin"])
    assert response.status_code == 200, response.text
    assert stack.levels(product)["main"] == (10, 0, 10)


def test_carts_coming_and_going_do_not_invalidate_an_admin_view(stack, tokens, new_product):
    product = new_product(main=10)
    seen = version(stack, product)
    hold = stack.reserve(product, 4, "main").json()
    assert stack.release(product, hold["reservation_id"]).status_code == 200
    stack.reserve(product, 2, "main")
    assert version(stack, product) == seen
    response = stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 5, "expected_version": seen},
                               tokens["admin"])
    assert response.status_code == 200, response.text
    assert stack.levels(product)["main"] == (15, 2, 13)


# --- 3. admin writes exactly once -----------------------------------------------------------------

def test_an_admin_write_with_an_idempotency_key_is_applied_once(stack, tokens, new_product):
    product = new_product(main=10)
    key = str(uuid.uuid4())
    body = {"warehouse_id": "main", "adjust_by": 5, "reason": "delivery"}
    first = stack.call("PUT", f"/inventory/{product}", tokens["admin"], headers={"Idempotency-Key": key}, json=body)
    assert first.status_code == 200, first.text
    again = stack.call("PUT", f"/inventory/{product}", tokens["admin"], headers={"Idempotency-Key": key}, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["stock_count"] == first.json()["stock_count"] == 15
    assert again.json()["version"] == first.json()["version"]
    other = dict(body, adjust_by=6)
    assert_error(stack.call("PUT", f"/inventory/{product}", tokens["admin"], headers={"Idempotency-Key": key},
                            json=other), 422, "IDEMPOTENCY_KEY_REUSED")
    assert stack.levels(product)["main"] == (15, 0, 15)
    # A new key is a new change.
    response = stack.call("PUT", f"/inventory/{product}", tokens["admin"],
                          headers={"Idempotency-Key": str(uuid.uuid4())}, json=body)
    assert response.status_code == 200 and response.json()["stock_count"] == 20


def test_an_admin_key_is_the_admins_own(stack, tokens, new_product):
    """Scoped to the admin and the product: the same key on another product is another change."""
    product, other = new_product(main=10), new_product(main=10)
    key = str(uuid.uuid4())
    for target in (product, other):
        response = stack.call("PUT", f"/inventory/{target}", tokens["admin"], headers={"Idempotency-Key": key},
                              json={"warehouse_id": "main", "adjust_by": 1})
        assert response.status_code == 200, response.text
    assert stack.levels(product)["main"][0] == stack.levels(other)["main"][0] == 11


def test_a_malformed_admin_idempotency_key_is_refused(stack, tokens, new_product):
    product = new_product(main=10)
    assert_error(stack.call("PUT", f"/inventory/{product}", tokens["admin"], headers={"Idempotency-Key": "short"},
                            json={"warehouse_id": "main", "adjust_by": 1}), 400, "INVALID_INPUT")
    assert stack.levels(product)["main"] == (10, 0, 10)


# --- 2. a lapsed hold's units come back exactly once, whatever a reused key does ----------------

def test_a_key_retried_after_its_hold_lapsed_places_no_second_hold(stack, new_product):
    """Hold H (key K) lapses; TTL deletes it while the expiry consumer is held up; the client then
    retries with K. Before: a new hold with H's id, H's units leaked for good."""
    product = new_product(main=10)
    key = str(uuid.uuid4())
    set_expiry_consumer(stack, False)
    try:
        hold = stack.reserve(product, 2, "main", key=key)
        assert hold.status_code == 201, hold.text
        hold_id = hold.json()["reservation_id"]
        # Lapsed and deleted by TTL; its units are not back yet (the consumer is held up).
        wait_for(lambda: not any(h["reservation_id"] == hold_id for h in stack.reservations(product)),
                 timeout=30, what="the TTL delete of the lapsed hold")
        assert stack.levels(product)["main"] == (10, 2, 8)
        retry = stack.reserve(product, 2, "main", key=key)
        assert retry.status_code == 200, retry.text
        assert retry.json()["reservation_id"] == hold_id and retry.json()["status"] == "EXPIRED"
        assert stack.levels(product)["main"] == (10, 2, 8)
    finally:
        set_expiry_consumer(stack, True)
    wait_for(lambda: stack.levels(product)["main"] == (10, 0, 10), timeout=30, what="the lapsed hold's units back")
    assert [h["state"] for h in stack.reservations(product)] == ["EXPIRED"]
    stack.assert_reconciled(product)


def test_a_retry_of_an_ended_hold_answers_its_real_state(stack, tokens, new_product):
    product = new_product(main=10)
    key = str(uuid.uuid4())
    hold = stack.reserve(product, 1, "main", key=key).json()
    assert stack.release(product, hold["reservation_id"]).status_code == 200
    retry = stack.reserve(product, 1, "main", key=key)
    assert retry.status_code == 200 and retry.json()["status"] == "RELEASED"
    assert retry.json()["reservation_id"] == hold["reservation_id"]
    assert stack.levels(product)["main"] == (10, 0, 10)


# --- the reconciler ---------------------------------------------------------------------------

def drift(stack, product, by: int, warehouse="main"):
    """Writes drift into the item directly: reserved up by `by`, available down, nothing else."""
    stack.dynamodb.update_item(
        TableName=stack.description["stock_table"],
        Key={"product_id": {"S": product}, "warehouse_id": {"S": warehouse}},
        UpdateExpression="SET reserved_count = reserved_count + :by, available_count = available_count - :by",
        ExpressionAttributeValues={":by": {"N": str(by)}})


def test_drift_written_into_an_item_is_repaired_after_two_looks(stack, tokens, new_product):
    # No hold: the test stack's holds lapse in 10 s, within the two looks (which would change the item).
    product = new_product(main=10)
    drift(stack, product, 3)
    assert stack.levels(product)["main"] == (10, 3, 7)
    first = stack.invoke("check_thresholds", {})
    assert first["counters_watched"] >= 1
    assert stack.levels(product)["main"] == (10, 3, 7), "one look repairs nothing"
    assert "reconcile_look" in stack.stock_item(product)
    time.sleep(LOOK_GAP_SECONDS + 1)
    second = stack.invoke("check_thresholds", {})
    assert second["counters_repaired"] >= 1
    assert stack.levels(product)["main"] == (10, 0, 10)
    stack.assert_reconciled(product)
    item = stack.stock_item(product)
    assert "reconcile_look" not in item and "reconciled_through" in item
    entries = wait_for(lambda: reconciled_entries(stack, product, tokens["admin"]), timeout=15,
                       what="the audit entry of the repair")
    assert entries[0]["actor"] == "system:reconciler"
    assert (entries[0]["before"]["reserved_count"], entries[0]["after"]["reserved_count"]) == (3, 0)
    assert entries[0]["after"]["available"] == 10
    assert "the ACTIVE holds on record take 0" in entries[0]["reason"]
    wait_for(lambda: [m for _, m in stack.function_log_messages("CheckThresholds")
                      if '"CounterRepairs"' in m and product in m], timeout=15, what="a CounterRepairs metric line")


def test_a_busy_item_under_a_hold_storm_is_never_wrongly_repaired(stack, tokens, new_product):
    product = new_product(main=60)
    stop = threading.Event()

    def shopper():
        while not stop.is_set():
            hold = stack.reserve(product, 1, "main")
            if hold.status_code == 201:
                stack.release(product, hold.json()["reservation_id"])

    shoppers = [threading.Thread(target=shopper) for _ in range(4)]
    for thread in shoppers:
        thread.start()
    try:
        for _ in range(3):
            stack.invoke("check_thresholds", {})
            time.sleep(LOOK_GAP_SECONDS / 2 + 1)
    finally:
        stop.set()
        for thread in shoppers:
            thread.join()
    stack.invoke("check_thresholds", {})
    item = stack.stock_item(product)
    assert "reconciled_through" not in item, "a busy, correct item was 'repaired'"
    assert reconciled_entries(stack, product, tokens["admin"]) == []
    stack.assert_reconciled(product)


def test_a_late_expiry_after_a_repair_does_not_return_the_units_twice(stack, tokens, new_product):
    """A lapsed hold's TTL record is held up (a paused or failing consumer, a batch in the DLQ); the
    reconciler repairs the counters meanwhile; then the record arrives: its units stay counted once."""
    product = new_product(main=10)
    set_expiry_consumer(stack, False)
    try:
        hold_id = stack.reserve(product, 3, "main").json()["reservation_id"]
        wait_for(lambda: not any(h["reservation_id"] == hold_id for h in stack.reservations(product)),
                 timeout=30, what="the TTL delete of the lapsed hold")
        assert stack.levels(product)["main"] == (10, 3, 7)
        stack.invoke("check_thresholds", {})
        time.sleep(LOOK_GAP_SECONDS + 1)
        stack.invoke("check_thresholds", {})
        assert stack.levels(product)["main"] == (10, 0, 10)
    finally:
        set_expiry_consumer(stack, True)
    # The late record is handled (the hold is recorded EXPIRED) without moving the counters again.
    wait_for(lambda: [h["state"] for h in stack.reservations(product)] == ["EXPIRED"], timeout=30,
             what="the late TTL record handled")
    assert stack.levels(product)["main"] == (10, 0, 10)
    stack.assert_reconciled(product)


# --- 4. a backstop sized for AWS ------------------------------------------------------------------

def test_with_ttl_paused_the_backstop_alone_puts_every_lapsed_hold_back_on_sale(stack, new_product):
    products = [new_product(main=30) for _ in range(8)]
    stack.pause_ttl()
    try:
        ids = []
        lock = threading.Lock()

        def hold_all(product):
            for _ in range(25):
                response = stack.reserve(product, 1, "main")
                assert response.status_code == 201, response.text
                with lock:
                    ids.append(response.json()["reservation_id"])

        threads = [threading.Thread(target=hold_all, args=(p,)) for p in products]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(ids) == 200
        time.sleep(TEST_HOLD_SECONDS + 1)
        report = stack.invoke("check_thresholds", {})
        assert report["holds_released"] >= 200 and report["holds_deferred"] == 0, report
        for product in products:
            assert stack.levels(product)["main"] == (30, 0, 30)
            assert {h["state"] for h in stack.reservations(product)} == {"EXPIRED"}
    finally:
        stack.resume_ttl()


def test_an_admin_write_whose_answer_was_lost_is_applied_once(stack, tokens, new_product):
    """The write commits, its answer is lost (500), the SDK retries: the stock moves once."""
    product = new_product(main=10)
    stack.arm_fault("TransactWriteItems", table=stack.description["requests_table"], count=1)
    try:
        response = stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 5}, tokens["admin"])
        assert [fault["remaining"] for fault in stack.faults()] == [0], "the fault was not triggered"
    finally:
        stack.clear_faults()
    assert response.status_code == 200, response.text
    assert response.json()["stock_count"] == 15
    assert stack.levels(product)["main"] == (15, 0, 15)
