#!/usr/bin/env python3
"""Only signed-in members of inventory-admins may change stock or list everything: anonymous callers
and shoppers are refused, and their attempts change nothing.

    python localstack/scenarios/admin_auth.py
"""

from scenario import Scenario


def admin_auth(s: Scenario):
    admin, shopper = s.stack.token("admin"), s.stack.token("shopper")
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


if __name__ == "__main__":
    Scenario.run("admin-auth", admin_auth, __doc__)
