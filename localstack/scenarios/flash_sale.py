#!/usr/bin/env python3
"""Many shoppers press "Add to cart" at the same moment for an item with only a few units.
Expect: exactly the stock is held, nobody is oversold, and the counters reconcile with the holds.

    python -m localstack.scenarios.flash_sale [--shoppers 200] [--stock 20]
"""

import argparse
from concurrent.futures import ThreadPoolExecutor

from localstack.scenarios.scenario import Scenario


def flash_sale(s: Scenario, shoppers: int, stock: int):
    admin = s.stack.token("admin")
    s.step(f"An admin stocks a new product with {stock} units in warehouse 'main'")
    product = s.new_product(admin, main=stock)
    s.saw(f"product {product}")

    s.step(f"{shoppers} shoppers each try to hold 1 unit, all at once")
    with ThreadPoolExecutor(max_workers=min(shoppers, 50)) as pool:
        statuses = list(pool.map(lambda _: s.stack.reserve(product, 1, "main").status_code, range(shoppers)))
    granted, refused = statuses.count(201), statuses.count(409)
    s.saw(f"{granted} holds granted, {refused} refused as out of stock, "
          f"{len(statuses) - granted - refused} other answers")
    s.expect(f"exactly {stock} holds granted", granted == stock, granted)
    s.expect(f"the other {shoppers - stock} refused with 409 INSUFFICIENT_STOCK", refused == shoppers - stock, refused)

    s.step("Read the item back and compare it with the holds in the reservations table")
    (on_hand, reserved, available), = s.stack.levels(product).values()
    active = sum(h["quantity"] for h in s.stack.reservations(product) if h["state"] == "ACTIVE")
    s.saw(f"on hand {on_hand}, reserved {reserved}, available {available}; active holds add up to {active}")
    s.expect("nothing oversold: reserved never exceeds stock", reserved <= on_hand, (reserved, on_hand))
    s.expect("reserved equals the sum of active holds", reserved == active, (reserved, active))
    s.expect("available = stock - reserved = 0", available == on_hand - reserved == 0, available)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=200)
    parser.add_argument("--stock", type=int, default=20)
    args = parser.parse_args()
    Scenario.run("flash-sale", lambda s: flash_sale(s, args.shoppers, args.stock), __doc__)
