"""Holds belong to whoever placed them: only the hold's cart (its Cart-Token) or its signed-in owner
can release or check it out, Idempotency-Keys are the cart's own, and one cart cannot hoard.
Every refusal is checked to change nothing: counters and every hold's state before and after."""

from __future__ import annotations

import uuid

import pytest

from tests.support import TEMPLATE, assert_error, new_cart_token

MAX_HOLDS_PER_CART = 20      # shared/src/limits.rs
DEFAULT_MAX_PER_CART = 20


def snapshot(stack, product) -> tuple:
    return stack.levels(product), sorted((h["reservation_id"], h["state"]) for h in stack.reservations(product))


@pytest.fixture
def held(stack, new_product):
    """A product with one ACTIVE hold of 2 placed by a cart of its own: (product, hold id, cart)."""
    product = new_product(main=10)
    cart = new_cart_token()
    response = stack.reserve(product, 2, "main", cart=cart)
    assert response.status_code == 201, response.text
    return product, response.json()["reservation_id"], cart


ATTACKS = {
    "no cart token": lambda tokens: {},
    "another cart": lambda tokens: {"Cart-Token": new_cart_token()},
    "a signed-in stranger": lambda tokens: {"Authorization": f"Bearer {tokens['admin']}"},
    "a signed-in stranger with another cart": lambda tokens: {"Authorization": f"Bearer {tokens['admin']}",
                                                              "Cart-Token": new_cart_token()},
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_stranger_cannot_release_a_hold_and_learns_nothing(stack, tokens, held, attack):
    product, hold_id, _ = held
    before = snapshot(stack, product)
    response = stack.call("DELETE", f"/inventory/{product}/reservations/{hold_id}", headers=ATTACKS[attack](tokens))
    error = assert_error(response, 404, "RESERVATION_NOT_FOUND")
    # The same answer as for an id that does not exist: nothing tells the stranger the hold is real.
    missing = stack.call("DELETE", f"/inventory/{product}/reservations/{uuid.uuid4()}", headers=ATTACKS[attack](tokens))
    assert assert_error(missing, 404, "RESERVATION_NOT_FOUND")["message"].split(" ")[:2] == error["message"].split(" ")[:2]
    assert snapshot(stack, product) == before


@pytest.mark.parametrize("attack", [a for a in ATTACKS if "signed-in" not in a])
def test_a_stranger_signed_in_cannot_check_out_a_hold(stack, tokens, held, attack):
    product, hold_id, _ = held
    before = snapshot(stack, product)
    headers = {**ATTACKS[attack](tokens), "Authorization": f"Bearer {tokens['shopper']}"}
    response = stack.call("PUT", f"/inventory/{product}", headers=headers, json={"reservation_id": hold_id})
    assert_error(response, 404, "RESERVATION_NOT_FOUND")
    assert snapshot(stack, product) == before


def test_checkout_needs_a_signed_in_user_even_with_the_cart(stack, held):
    product, hold_id, cart = held
    before = snapshot(stack, product)
    response = stack.call("PUT", f"/inventory/{product}", headers={"Cart-Token": cart}, json={"reservation_id": hold_id})
    assert response.status_code == 401
    assert snapshot(stack, product) == before


def test_the_holder_checks_out_and_the_hold_is_then_the_buyers_alone(stack, tokens, held):
    product, hold_id, cart = held
    bought = stack.commit(product, hold_id, tokens["shopper"], cart=cart)
    assert bought.status_code == 200 and bought.json()["status"] == "COMMITTED"
    assert stack.commit(product, hold_id, tokens["shopper"], cart=cart).status_code == 200  # a repeat is harmless
    after = snapshot(stack, product)
    # Another signed-in user replaying the cart token: never a 200.
    assert_error(stack.commit(product, hold_id, tokens["admin"], cart=cart), 404, "RESERVATION_NOT_FOUND")
    # Nor can anyone release a sold hold through the cart.
    assert_error(stack.release(product, hold_id, cart=new_cart_token()), 404, "RESERVATION_NOT_FOUND")
    assert snapshot(stack, product) == after
    assert after[0]["main"] == (8, 0, 8)


def test_the_holder_releases_with_its_cart_token(stack, held):
    product, hold_id, cart = held
    released = stack.release(product, hold_id, cart=cart)
    assert released.status_code == 200 and released.json()["status"] == "RELEASED"
    assert stack.levels(product)["main"] == (10, 0, 10)


def test_an_idempotency_key_is_the_carts_own(stack, new_product):
    """A guessed or leaked key from another cart is another hold, never the first one."""
    product = new_product(main=10)
    key = "order-0000042-predictable"
    mine = stack.reserve(product, 1, "main", key=key, cart=new_cart_token())
    theirs = stack.reserve(product, 1, "main", key=key, cart=new_cart_token())
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["reservation_id"] != theirs.json()["reservation_id"]
    assert stack.levels(product)["main"] == (10, 2, 8)


def test_a_hold_needs_a_cart_token(stack, new_product):
    product = new_product(main=10)
    response = stack.call("POST", f"/inventory/{product}/reserve", json={"quantity": 1})
    assert assert_error(response, 400, "INVALID_INPUT")["field"] == "Cart-Token"
    for bad in ["short", "x" * 129, "has spaces but is long enough to pass"]:
        response = stack.call("POST", f"/inventory/{product}/reserve", json={"quantity": 1}, headers={"Cart-Token": bad})
        assert_error(response, 400, "INVALID_INPUT")
    assert snapshot(stack, product) == ({"main": (10, 0, 10)}, [])


def test_reservation_ids_are_random(stack, new_product):
    product = new_product(main=10)
    cart = new_cart_token()
    ids = {stack.reserve(product, 1, "main", key=str(uuid.uuid4()), cart=cart).json()["reservation_id"] for _ in range(3)}
    assert len(ids) == 3 and all(uuid.UUID(i).version == 4 for i in ids)


# --- limits against hoarding -------------------------------------------------------------------

def test_one_cart_holds_at_most_max_per_cart_units_of_a_product(stack, tokens, new_product):
    product = new_product(main=100)
    cart = new_cart_token()
    assert stack.admin_put(product, {"warehouse_id": "main", "max_per_cart": 3}, tokens["admin"]).status_code == 200
    assert stack.get(f"/inventory/{product}").json()["warehouses"][0]["max_per_cart"] == 3
    first = stack.reserve(product, 2, "main", cart=cart)
    assert first.status_code == 201
    before = snapshot(stack, product)
    error = assert_error(stack.reserve(product, 2, "main", cart=cart), 409, "CART_UNITS_LIMIT")
    assert error["limit"] == 3
    assert_error(stack.reserve(product, 4, "main", cart=new_cart_token()), 409, "CART_UNITS_LIMIT")
    assert snapshot(stack, product) == before
    # Another cart has its own room; releasing gives this cart its room back.
    assert stack.reserve(product, 3, "main", cart=new_cart_token()).status_code == 201
    assert stack.release(product, first.json()["reservation_id"], cart=cart).status_code == 200
    assert stack.reserve(product, 3, "main", cart=cart).status_code == 201
    stack.assert_reconciled(product)


def test_one_cart_has_at_most_so_many_holds(stack, new_product):
    products = [new_product(main=50), new_product(main=50)]
    cart = new_cart_token()
    placed = []
    for i in range(MAX_HOLDS_PER_CART):
        response = stack.reserve(products[i % 2], 1, "main", cart=cart)
        assert response.status_code == 201, response.text
        placed.append((products[i % 2], response.json()["reservation_id"]))
    before = [snapshot(stack, p) for p in products]
    error = assert_error(stack.reserve(products[0], 1, "main", cart=cart), 409, "CART_HOLDS_LIMIT")
    assert error["limit"] == MAX_HOLDS_PER_CART
    assert [snapshot(stack, p) for p in products] == before
    # Ending one hold (exactly once) frees one place.
    product, hold_id = placed[0]
    assert stack.release(product, hold_id, cart=cart).status_code == 200
    assert stack.release(product, hold_id, cart=cart).status_code == 200
    assert stack.reserve(products[0], 1, "main", cart=cart).status_code == 201
    assert_error(stack.reserve(products[1], 1, "main", cart=cart), 409, "CART_HOLDS_LIMIT")


def test_max_per_cart_is_checked_like_every_admin_input(stack, tokens, new_product):
    product = new_product(main=10)
    for bad in [0, -1, 1001, "3", None]:
        assert_error(stack.admin_put(product, {"warehouse_id": "main", "max_per_cart": bad}, tokens["admin"]),
                     400, "INVALID_INPUT")
    assert stack.get(f"/inventory/{product}").json()["warehouses"][0]["max_per_cart"] == DEFAULT_MAX_PER_CART


# --- holds that require sign-in -------------------------------------------------------------------

def test_the_sign_in_parameter_guards_the_hold_routes_in_the_template():
    resources = TEMPLATE["Resources"]
    assert TEMPLATE["Parameters"]["HoldsRequireSignIn"]["Default"] == "false"
    for route in ("ReserveInventoryRoute", "ReleaseReservationRoute"):
        props = resources[route]["Properties"]
        assert props["AuthorizationType"] == {"Fn::If": ["HoldsNeedSignIn", "JWT", "NONE"]}
        assert props["AuthorizerId"]["Fn::If"][1] == {"Ref": "JwtAuthorizer"}
    env = resources["ReserveInventoryFunction"]["Properties"]["Environment"]["Variables"]
    assert env["HOLDS_REQUIRE_SIGN_IN"] == {"Ref": "HoldsRequireSignIn"}


def test_with_sign_in_required_the_function_refuses_anonymous_holds(stack, new_product):
    """The function's own check (API Gateway's authorizer answers first on AWS): no verified user, no hold."""
    product = new_product(main=10)
    lambda_client = stack.client("lambda")
    name = next(f["FunctionName"] for f in lambda_client.list_functions()["Functions"]
                if "ReserveInventoryFunction" in f["FunctionName"])
    config = lambda_client.get_function_configuration(FunctionName=name)
    env = dict(config["Environment"]["Variables"])
    lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {
        **env, "HOLDS_REQUIRE_SIGN_IN": "true"}})
    try:
        response = stack.reserve(product, 1, "main")
        assert response.status_code == 401, response.text
        assert stack.levels(product)["main"] == (10, 0, 10)
    finally:
        lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": env})
    assert stack.reserve(product, 1, "main").status_code == 201
