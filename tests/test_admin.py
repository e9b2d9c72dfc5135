"""Admin stock management: set, adjust, thresholds, compare-and-swap, list — signed in, admins only."""

from tests.support import assert_error, unique_id


def test_anonymous_and_shoppers_are_refused_admins_succeed(stack, tokens, new_product):
    product = new_product(main=10)
    change = {"warehouse_id": "main", "adjust_by": 5}
    assert stack.call("PUT", f"/inventory/{product}", json=change).status_code == 401
    assert_error(stack.admin_put(product, change, tokens["shopper"]), 403, "FORBIDDEN")
    assert stack.levels(product) == {"main": (10, 0, 10)}
    response = stack.admin_put(product, change, tokens["admin"])
    assert response.status_code == 200, response.text
    assert stack.levels(product) == {"main": (15, 0, 15)}


def test_list_is_for_admins_only(stack, tokens):
    assert stack.call("GET", "/inventory").status_code == 401
    assert_error(stack.call("GET", "/inventory", tokens["shopper"]), 403, "FORBIDDEN")
    assert stack.call("GET", "/inventory", tokens["admin"]).status_code == 200


def test_set_creates_a_new_product_and_warehouse(stack, tokens):
    product = unique_id("NEW")
    created = stack.admin_put(product, {"warehouse_id": "east", "stock_count": 12, "threshold_level": 4,
                                        "reason": "first delivery"}, tokens["admin"])
    assert created.status_code == 201
    body = created.json()
    assert (body["product_id"], body["warehouse_id"], body["stock_count"], body["available"],
            body["threshold_level"], body["status"], body["version"]) == (product, "east", 12, 12, 4, "IN_STOCK", 1)
    second = stack.admin_put(product, {"stock_count": 3}, tokens["admin"])  # no warehouse: "default"
    assert second.status_code == 201 and second.json()["warehouse_id"] == "default"
    assert second.json()["threshold_level"] == 5, "documented default threshold"
    assert stack.levels(product) == {"east": (12, 0, 12), "default": (3, 0, 3)}


def test_adjust_moves_stock_by_a_delta_and_keeps_holds(stack, tokens, new_product):
    product = new_product(main=10)
    stack.reserve(product, 4, "main")
    delivery = stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 50, "reason": "delivery"}, tokens["admin"])
    assert delivery.json()["stock_count"] == 60
    write_off = stack.admin_put(product, {"warehouse_id": "main", "adjust_by": -3, "reason": "damaged"}, tokens["admin"])
    assert (write_off.json()["stock_count"], write_off.json()["available"]) == (57, 53)
    stack.assert_reconciled(product)


def test_adjust_below_zero_is_409_and_changes_nothing(stack, tokens, new_product):
    product = new_product(main=3)
    before = stack.get(f"/inventory/{product}").json()
    error = assert_error(stack.admin_put(product, {"warehouse_id": "main", "adjust_by": -4}, tokens["admin"]),
                         409, "STOCK_BELOW_ZERO")
    assert error["stock_count"] == 3
    assert stack.get(f"/inventory/{product}").json() == before


def test_adjusting_past_the_stock_limit_is_409_and_changes_nothing(stack, tokens, new_product):
    product = new_product(main=10**9 - 1)
    error = assert_error(stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 2}, tokens["admin"]),
                         409, "STOCK_ABOVE_LIMIT")
    assert error["stock_count"] == 10**9 - 1
    assert stack.levels(product) == {"main": (10**9 - 1, 0, 10**9 - 1)}


def test_stale_expected_version_is_409(stack, tokens, new_product):
    product = new_product(main=10)
    version = stack.get(f"/inventory/{product}").json()["warehouses"][0]["version"]
    first = stack.admin_put(product, {"warehouse_id": "main", "stock_count": 8, "expected_version": version}, tokens["admin"])
    assert first.status_code == 200 and first.json()["version"] == version + 1
    error = assert_error(stack.admin_put(product, {"warehouse_id": "main", "stock_count": 9, "expected_version": version},
                                         tokens["admin"]), 409, "VERSION_CONFLICT")
    assert error["current_version"] == version + 1
    assert stack.levels(product) == {"main": (8, 0, 8)}


def test_expected_version_of_a_missing_item_is_409(stack, tokens):
    product = unique_id("NEW")
    error = assert_error(stack.admin_put(product, {"stock_count": 1, "expected_version": 1}, tokens["admin"]),
                         409, "VERSION_CONFLICT")
    assert error["current_version"] is None
    assert stack.get(f"/inventory/{product}").status_code == 404


def test_expected_version_zero_creates_but_never_overwrites(stack, tokens):
    product = unique_id("NEW")
    body = {"warehouse_id": "main", "stock_count": 7, "expected_version": 0, "reason": "new line"}
    created = stack.admin_put(product, body, tokens["admin"])
    assert created.status_code == 201 and created.json()["version"] == 1
    error = assert_error(stack.admin_put(product, {**body, "stock_count": 99}, tokens["admin"]), 409, "VERSION_CONFLICT")
    assert error["current_version"] == 1
    assert stack.levels(product) == {"main": (7, 0, 7)}


def test_threshold_change_alone(stack, tokens, new_product):
    product = new_product(main=(10, 2))
    changed = stack.admin_put(product, {"warehouse_id": "main", "threshold_level": 10}, tokens["admin"])
    assert (changed.json()["threshold_level"], changed.json()["status"]) == (10, "LOW_STOCK")
    assert stack.levels(product) == {"main": (10, 0, 10)}


def test_setting_stock_below_what_is_reserved(stack, tokens, new_product):
    """The count on the shelf is the truth: the set is accepted, available goes negative (OUT_OF_STOCK),
    existing holds stay, and a checkout that the shelf cannot cover is refused."""
    product = new_product(main=10)
    big = stack.reserve(product, 8, "main").json()
    small = stack.reserve(product, 2, "main").json()
    counted = stack.admin_put(product, {"warehouse_id": "main", "stock_count": 5, "reason": "stock count"}, tokens["admin"])
    assert (counted.json()["available"], counted.json()["status"]) == (-5, "OUT_OF_STOCK")
    assert_error(stack.reserve(product, 1, "main"), 409, "INSUFFICIENT_STOCK")
    error = assert_error(stack.commit(product, big["reservation_id"], tokens["shopper"]), 409, "INSUFFICIENT_STOCK")
    assert error["available"] == 5
    assert stack.levels(product) == {"main": (5, 10, -5)}, "a refused checkout changes nothing"
    assert stack.commit(product, small["reservation_id"], tokens["shopper"]).status_code == 200
    assert stack.release(product, big["reservation_id"]).status_code == 200
    assert stack.levels(product) == {"main": (3, 0, 3)}
    stack.assert_reconciled(product)


def test_list_pages_through_everything_once_and_filters_by_status(stack, tokens, new_product):
    low = new_product(main=(2, 5))
    out = new_product(main=(0, 5))
    fine = new_product(main=(50, 5))
    seen, cursor = [], None
    for _ in range(1000):
        response = stack.call("GET", "/inventory", tokens["admin"], params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [(i["product_id"], i["warehouse_id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "an item appeared on two pages"
    assert {(low, "main"), (out, "main"), (fine, "main")} <= set(seen)

    def listed(status):
        items, cursor = [], None
        while True:
            params = {"status": status, **({"cursor": cursor} if cursor else {})}
            page = stack.call("GET", "/inventory", tokens["admin"], params=params).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    low_items = listed("LOW_STOCK")
    assert all(i["status"] == "LOW_STOCK" for i in low_items)
    ids = {i["product_id"] for i in low_items}
    assert low in ids and out not in ids and fine not in ids
    assert out in {i["product_id"] for i in listed("OUT_OF_STOCK")}
