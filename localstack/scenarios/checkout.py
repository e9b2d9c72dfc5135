#!/usr/bin/env python3
"""A signed-in shopper checks out a hold: the units are sold once, a repeated checkout is harmless,
and a hold whose time ran out cannot be checked out.

    python -m localstack.scenarios.checkout
"""

from localstack.scenarios.scenario import Scenario


def checkout(s: Scenario):
    admin, shopper = s.stack.token("admin"), s.stack.token("shopper")
    product = s.new_product(admin, main=10)
    s.step(f"A shopper holds 3 units of {product}, then signs in and checks out")
    hold = s.stack.reserve(product, 3, "main").json()
    first = s.stack.commit(product, hold["reservation_id"], shopper)
    s.saw(f"checkout answered {first.status_code} {first.json().get('status')}; levels {s.stack.levels(product)['main']}")
    s.expect("checkout 200 COMMITTED", (first.status_code, first.json().get("status")) == (200, "COMMITTED"))
    s.expect("stock 10 -> 7, nothing reserved", s.stack.levels(product)["main"] == (7, 0, 7))

    s.step("The browser retries the checkout (double click, flaky network)")
    again = s.stack.commit(product, hold["reservation_id"], shopper)
    s.saw(f"retry answered {again.status_code} {again.json().get('status')}")
    s.expect("the retry answers 200 COMMITTED", (again.status_code, again.json().get("status")) == (200, "COMMITTED"))
    s.expect("stock still 7: sold once", s.stack.levels(product)["main"] == (7, 0, 7))

    s.step("Another hold runs out (fast-forwarded) before the shopper checks out")
    late = s.stack.reserve(product, 2, "main").json()
    s.fast_forward(late["reservation_id"], ttl_too=False)
    refused = s.stack.commit(product, late["reservation_id"], shopper)
    body = refused.json()
    s.saw(f"checkout answered {refused.status_code} {body.get('error', {}).get('code')}: {body.get('error', {}).get('message')}")
    s.expect("410 RESERVATION_EXPIRED", (refused.status_code, body.get("error", {}).get("code")) == (410, "RESERVATION_EXPIRED"))
    s.expect("nothing sold: stock still 7", s.stack.levels(product)["main"][0] == 7)


if __name__ == "__main__":
    Scenario.run("checkout", checkout, __doc__)
