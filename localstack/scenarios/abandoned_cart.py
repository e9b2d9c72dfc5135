#!/usr/bin/env python3
"""A shopper adds an item to the cart and walks away. When the hold runs out its units go back on sale:
first through DynamoDB TTL and the stream, then — with the TTL path absent, as on a LocalStack whose TTL
deletes carry no service identity — through the scheduled backstop, invoked directly here.

Holds last minutes, so the scenario fast-forwards its own hold's expiry instead of waiting.

    python -m localstack.scenarios.abandoned_cart
"""

from localstack.scenarios.scenario import Scenario, wait_for


def abandoned_cart(s: Scenario):
    admin = s.stack.token("admin")
    product = s.new_product(admin, main=5)
    s.step(f"A shopper holds 2 of the 5 units of {product}")
    hold = s.stack.reserve(product, 2, "main").json()
    s.saw(f"hold {hold['reservation_id']} until {hold['expires_at']}; levels {s.stack.levels(product)}")

    s.step("The hold's time runs out (fast-forwarded); DynamoDB TTL deletes it and the stream releases it")
    s.fast_forward(hold["reservation_id"], ttl_too=True)
    try:
        wait_for(lambda: s.stack.levels(product)["main"] == (5, 0, 5), timeout=20, what="the units back on sale")
    except AssertionError:
        pass
    levels = s.stack.levels(product)["main"]
    s.saw(f"on hand, reserved, available = {levels}")
    s.expect("all 5 units available again via the TTL path", levels == (5, 0, 5), levels)
    states = [h["state"] for h in s.stack.reservations(product)]
    s.expect("the hold recorded as EXPIRED", states == ["EXPIRED"], states)

    s.step("Another shopper holds 3 units; this time TTL never deletes the hold (as on LocalStack)")
    late = s.stack.reserve(product, 3, "main").json()
    s.fast_forward(late["reservation_id"], ttl_too=False)
    s.saw(f"levels before the backstop: {s.stack.levels(product)['main']}")
    s.step("Invoke the scheduled backstop check_thresholds (instead of waiting for its schedule)")
    report = s.stack.invoke("check_thresholds", {})
    s.saw(f"backstop report {report}")
    levels = s.stack.levels(product)["main"]
    s.expect("the backstop released at least this hold", report.get("holds_released", 0) >= 1, report)
    s.expect("all 5 units available again via the backstop", levels == (5, 0, 5), levels)

    s.step("Run the backstop again: nothing may be released twice")
    s.stack.invoke("check_thresholds", {})
    levels = s.stack.levels(product)["main"]
    s.expect("still 5 on hand, 0 reserved, 5 available", levels == (5, 0, 5), levels)


if __name__ == "__main__":
    Scenario.run("abandoned-cart", abandoned_cart, __doc__)
