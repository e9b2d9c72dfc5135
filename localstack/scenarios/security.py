#!/usr/bin/env python3
"""Who may do what. Only signed-in members of inventory-admins may change stock or list everything;
a hold belongs to the cart that placed it (its Cart-Token) and, once checked out, to its buyer: no one
else can release it, check it out or reuse its Idempotency-Key; one cart cannot hoard a product.
Every refused attempt changes nothing.

    python -m localstack.scenarios.security
"""

from localstack.scenarios.scenario import Scenario, new_cart_token


def admin_changes(s: Scenario, admin: str, shopper: str):
    product = s.new_product(admin, main=10)
    change = {"warehouse_id": "main", "stock_count": 999, "reason": "should not happen"}
    for who, token, status in [("an anonymous caller", None, 401), ("a signed-in shopper", shopper, 403),
                               ("a forged token", "eyJhbGciOiJub25lIn0.e30.", 401)]:
        s.step(f"{who} tries to set the stock of {product} to 999, and to list all stock")
        put = s.stack.call("PUT", f"/inventory/{product}", token, json=change)
        listing = s.stack.call("GET", "/inventory", token)
        s.saw(f"PUT answered {put.status_code}, GET /inventory answered {listing.status_code}")
        s.expect(f"both refused with {status}", put.status_code == listing.status_code == status,
                 (put.status_code, listing.status_code))
    s.expect("the stock unchanged at 10", s.stack.levels(product)["main"] == (10, 0, 10), s.stack.levels(product))
    s.step("The admin makes the same change")
    put = s.stack.call("PUT", f"/inventory/{product}", admin, json={**change, "stock_count": 11, "reason": "count"})
    s.saw(f"PUT answered {put.status_code}")
    s.expect("200 and stock now 11", put.status_code == 200 and s.stack.levels(product)["main"][0] == 11)


def holds_belong_to_their_cart(s: Scenario, admin: str, shopper: str):
    product = s.new_product(admin, main=10)
    alice = new_cart_token()
    s.step(f"Alice's browser holds 2 of {product} with its cart token")
    hold = s.stack.reserve(product, 2, "main", key="order-0000042-predictable", cart=alice).json()
    hold_id = hold["reservation_id"]
    s.saw(f"hold {hold_id}, {hold['status']}")
    before = s.stack.levels(product)["main"]
    for who, headers in [("a stranger with no cart token", {}),
                         ("a stranger with a cart of their own", {"Cart-Token": new_cart_token()}),
                         ("a signed-in stranger", {"Authorization": f"Bearer {admin}"})]:
        s.step(f"{who} tries to remove Alice's hold (they know its id)")
        response = s.stack.call("DELETE", f"/inventory/{product}/reservations/{hold_id}", headers=headers)
        s.saw(f"answered {response.status_code} {response.json()['error']['code']}")
        s.expect("refused as if the hold did not exist (404)", response.status_code == 404, response.status_code)
    s.step("A signed-in stranger tries to check Alice's hold out with a cart of their own")
    response = s.stack.commit(product, hold_id, shopper, cart=new_cart_token())
    s.saw(f"answered {response.status_code}")
    s.expect("refused (404)", response.status_code == 404, response.status_code)
    s.step("A stranger guesses Alice's Idempotency-Key and reserves with it from their own cart")
    guessed = s.stack.reserve(product, 1, "main", key="order-0000042-predictable", cart=new_cart_token())
    s.saw(f"answered {guessed.status_code}, hold {guessed.json().get('reservation_id')}")
    s.expect("a hold of their own, never Alice's", guessed.status_code == 201
             and guessed.json()["reservation_id"] != hold_id, guessed.text)
    s.expect("Alice's hold untouched", s.stack.levels(product)["main"][1] == before[1] + 1, s.stack.levels(product))
    s.step("Alice signs in and checks out; then someone else signed in replays her cart token")
    bought = s.stack.commit(product, hold_id, shopper, cart=alice)
    replay = s.stack.commit(product, hold_id, admin, cart=alice)
    s.saw(f"Alice's checkout answered {bought.status_code}, the replay {replay.status_code}")
    s.expect("Alice's checkout sold it (200); the replay refused (404)",
             bought.status_code == 200 and replay.status_code == 404, (bought.status_code, replay.status_code))


def no_hoarding(s: Scenario, admin: str, shopper: str):
    product = s.new_product(admin, main=100)
    s.step(f"The admin allows at most 3 of {product} per cart")
    s.stack.admin_put(product, {"warehouse_id": "main", "max_per_cart": 3, "reason": "limited edition"}, admin)
    cart = new_cart_token()
    s.step("One cart holds 3, then asks for 1 more")
    first = s.stack.reserve(product, 3, "main", cart=cart)
    more = s.stack.reserve(product, 1, "main", cart=cart)
    s.saw(f"answered {first.status_code}, then {more.status_code} {more.json().get('error', {}).get('message', '')}")
    s.expect("the 4th unit refused with CART_UNITS_LIMIT", first.status_code == 201 and more.status_code == 409
             and more.json()["error"]["code"] == "CART_UNITS_LIMIT", more.text)
    s.expect("only the 3 held", s.stack.levels(product)["main"] == (100, 3, 97), s.stack.levels(product))


def security(s: Scenario):
    admin, shopper = s.stack.token("admin"), s.stack.token("shopper")
    admin_changes(s, admin, shopper)
    holds_belong_to_their_cart(s, admin, shopper)
    no_hoarding(s, admin, shopper)


if __name__ == "__main__":
    Scenario.run("security", security, __doc__)
