#!/usr/bin/env python3
"""A product stocked in two warehouses: a hold without a warehouse lands in one that can cover it whole
(the one with the most units for sale), a named warehouse is honoured, and the totals add up.

    python -m localstack.scenarios.multi_warehouse
"""

from localstack.scenarios.scenario import Scenario


def multi_warehouse(s: Scenario):
    admin = s.stack.token("admin")
    product = s.new_product(admin, main=2, east=5)
    s.step(f"{product}: 2 units in main, 5 in east. A shopper holds 3 without naming a warehouse")
    hold = s.stack.reserve(product, 3).json()
    s.saw(f"hold placed in {hold.get('warehouse_id')}")
    s.expect("the hold landed in east (main cannot cover 3)", hold.get("warehouse_id") == "east")

    s.step("Another shopper wants 3 more: main has 2, east has 2 left, and a hold is never split")
    refused = s.stack.reserve(product, 3)
    s.saw(f"{refused.status_code} {refused.json()['error']['message']}")
    s.expect("409 INSUFFICIENT_STOCK, at most 2 available in one warehouse",
             refused.status_code == 409 and refused.json()["error"]["available"] == 2)

    s.step("A shopper holds 2 in main by name")
    named = s.stack.reserve(product, 2, "main").json()
    s.expect("the hold is in main", named.get("warehouse_id") == "main")

    s.step("The product page's totals")
    total = s.stack.get(f"/inventory/{product}").json()
    s.saw({k: total[k] for k in ("stock_count", "reserved_count", "available", "status")})
    per_warehouse = {w["warehouse_id"]: (w["stock_count"], w["reserved_count"], w["available"]) for w in total["warehouses"]}
    s.saw(per_warehouse)
    s.expect("totals are the sum of the warehouses: 7 on hand, 5 reserved, 2 available",
             (total["stock_count"], total["reserved_count"], total["available"]) == (7, 5, 2))
    s.expect("main 2/2/0 and east 5/3/2", per_warehouse == {"main": (2, 2, 0), "east": (5, 3, 2)})


if __name__ == "__main__":
    Scenario.run("multi-warehouse", multi_warehouse, __doc__)
