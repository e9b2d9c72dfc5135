#!/usr/bin/env python3
"""Many shoppers press "Add to cart" at the same moment for an item with only a few units.
Expect: exactly the stock is held, nobody is oversold, and the counters reconcile with the holds.
Then the same sale on a product whose stock is split over shards (separate partition keys): still
exactly the stock, no shopper refused while any shard had a unit, every shard reconciled. Last, with
the local AWS enforcing a per-partition write rate (AWS's 1,000 write units a second, scaled down),
how many holds a second one shard and the shards get through.

    python -m localstack.scenarios.flash_sale [--shoppers 200] [--stock 20] [--shards 8] [--seconds 4]
"""

import argparse
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from localstack.scenarios.scenario import Scenario

# The partition limit for the last part: 1% of AWS's 1,000 write units a second per partition key, so
# two cores can reach it (a hold writes its shard in a transaction: 2 units, so ~5 holds/s per shard).
PARTITION_LIMIT_SCALE = 0.01


def sale(s: Scenario, product: str, shoppers: int, stock: int):
    s.step(f"{shoppers} shoppers each try to hold 1 unit of {product}, all at once")
    with ThreadPoolExecutor(max_workers=min(shoppers, 50)) as pool:
        answers = list(pool.map(lambda _: s.stack.reserve(product, 1, "main"), range(shoppers)))
    statuses = [a.status_code for a in answers]
    granted, refused = statuses.count(201), statuses.count(409)
    s.saw(f"{granted} holds granted, {refused} refused as out of stock, "
          f"{len(statuses) - granted - refused} other answers")
    s.expect(f"exactly {stock} holds granted", granted == stock, granted)
    s.expect(f"the other {shoppers - stock} refused with 409 INSUFFICIENT_STOCK", refused == shoppers - stock, refused)
    s.expect("every refusal saw no unit left anywhere (its `available` is 0)",
             all(a.json()["error"]["available"] == 0 for a in answers if a.status_code == 409))

    s.step("Read the item back and compare it with the holds in the reservations table")
    (on_hand, reserved, available), = s.stack.levels(product).values()
    active = sum(h["quantity"] for h in s.stack.reservations(product) if h["state"] == "ACTIVE")
    s.saw(f"on hand {on_hand}, reserved {reserved}, available {available}; active holds add up to {active}")
    s.expect("nothing oversold: reserved never exceeds stock", reserved <= on_hand, (reserved, on_hand))
    s.expect("reserved equals the sum of active holds", reserved == active, (reserved, active))
    s.expect("available = stock - reserved = 0", available == on_hand - reserved == 0, available)


def storm(s: Scenario, product: str, seconds: float, threads: int = 16) -> tuple[int, int, int]:
    """Shoppers holding 1 unit each, as fast as they can, for `seconds`: (granted, 503s, other)."""
    counts, lock, stop = {"granted": 0, "busy": 0, "other": 0}, threading.Lock(), time.monotonic() + seconds

    def shopper():
        while time.monotonic() < stop:
            status = s.stack.reserve(product, 1, "main").status_code
            with lock:
                counts["granted" if status == 201 else "busy" if status == 503 else "other"] += 1

    workers = [threading.Thread(target=shopper) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts["granted"], counts["busy"], counts["other"]


def flash_sale(s: Scenario, shoppers: int, stock: int, shards: int, seconds: float):
    admin = s.stack.token("admin")
    s.step(f"An admin stocks a new product with {stock} units in warehouse 'main'")
    product = s.new_product(admin, main=stock)
    s.saw(f"product {product}")
    sale(s, product, shoppers, stock)

    s.step(f"Another product with {stock} units, split over {shards} shards by the admin ({{\"shards\": {shards}}})")
    product = s.new_product(admin, main=stock)
    answer = s.stack.admin_put(product, {"warehouse_id": "main", "shards": shards}, admin)
    s.expect(f"the admin's change answered 200 with shards = {shards}",
             answer.status_code == 200 and answer.json()["shards"] == shards, answer.text[:200])
    s.saw("units for sale per shard: " + ", ".join(str(x["available"]) for x in s.stack.shards(product)))
    sale(s, product, shoppers, stock)
    holds = s.stack.allocations(product)
    # A hold's own shard is its id (a UUID read as a 128-bit number) modulo the shard count.
    spilled = [h for h in holds if set(h["takes"]) != {uuid.UUID(h["reservation_id"]).int % shards}]
    s.saw(f"{len(spilled)} of {len(holds)} holds found their own shard dry and took their unit from another")
    try:
        s.stack.assert_shards_reconciled(product)
        s.expect("every shard's reserved units = what the active holds took from it", True)
    except AssertionError as err:
        s.expect("every shard's reserved units = what the active holds took from it", False, err)

    s.step(f"The local AWS now refuses writes above {PARTITION_LIMIT_SCALE:.0%} of AWS's partition limit "
           f"({1000 * PARTITION_LIMIT_SCALE:.0f} write units a second per partition key); "
           f"shoppers hold as fast as they can for {seconds:.0f} s, on 1 shard and on {shards}")
    table = s.stack.description["stock_table"]
    s.stack.arm_chaos("hot-key", rate=1, table=table, params={"scale": PARTITION_LIMIT_SCALE, "per": "partition"})
    try:
        rates = {}
        for count in (1, shards):
            product = s.new_product(admin, main=100_000)
            if count > 1:
                s.stack.admin_put(product, {"warehouse_id": "main", "shards": count}, admin)
            granted, busy, other = storm(s, product, seconds)
            rates[count] = granted / seconds
            s.saw(f"{count:>2} shard(s): {rates[count]:.1f} holds/s, {busy} answered 503 (partition busy), "
                  f"{other} other answers")
            s.expect(f"no answer but 201 and 503 on {count} shard(s)", other == 0, other)
            s.stack.assert_reconciled(product)
    finally:
        s.stack.clear_faults()
    ratio = rates[shards] / max(rates[1], 0.1)
    s.saw(f"{shards} shards held {ratio:.1f}× the holds a second of one (figures for AWS: docs/BENCHMARKS.md)")
    s.expect(f"{shards} shards get through more than twice the holds of one under the same limit", ratio > 2, ratio)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=200)
    parser.add_argument("--stock", type=int, default=20)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    Scenario.run("flash-sale", lambda s: flash_sale(s, args.shoppers, args.stock, args.shards, args.seconds), __doc__)
