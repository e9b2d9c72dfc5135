#!/usr/bin/env python3
"""Sales drive an item across its low-stock threshold; the inventory manager gets exactly one e-mail,
shown here as they would read it. A restock then brings one back-in-stock e-mail.

Alerts are read from the SQS queue subscribed to the alerts topic (locally it stands in for e-mail).

    python -m localstack.scenarios.low_stock_alert
"""

import time

from localstack.scenarios.scenario import AlertInbox, Scenario


def show(s: Scenario, alert: dict):
    s.saw(f"e-mail subject: {alert['subject']}")
    s.saw(f"        body:    {alert['body']}")


def low_stock_alert(s: Scenario):
    admin, shopper = s.stack.token("admin"), s.stack.token("shopper")
    inbox = AlertInbox(s.stack)
    product = s.new_product(admin, main=(12, 5))
    s.step(f"{product}: 12 in stock, low-stock threshold 5. Shoppers buy 3 units at a time")
    for _ in range(3):  # 12 -> 9 -> 6 -> 3: crosses the threshold once
        hold = s.stack.reserve(product, 3, "main").json()
        s.stack.commit(product, hold["reservation_id"], shopper)
    s.saw(f"levels now {s.stack.levels(product)['main']}")
    alerts = inbox.settled(product)
    for alert in alerts:
        show(s, alert)
    kinds = [a["body"]["type"] for a in alerts]
    s.expect("exactly one alert, LOW_STOCK", kinds == ["LOW_STOCK"], kinds)
    s.expect("a subject a manager can act on",
             bool(alerts) and alerts[0]["subject"] == f"Low stock: {product} at main - 3 left (threshold 5)")

    s.step("One more sale, still above zero: no new e-mail")
    hold = s.stack.reserve(product, 1, "main").json()
    s.stack.commit(product, hold["reservation_id"], shopper)
    time.sleep(1)
    kinds = [a["body"]["type"] for a in inbox.settled(product)]
    s.expect("still just the one LOW_STOCK alert", kinds == ["LOW_STOCK"], kinds)

    s.step("The admin books a delivery of 40 units (restock)")
    s.stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 40, "reason": "delivery"}, admin)
    alerts = inbox.settled(product)
    if alerts:
        show(s, alerts[-1])
    kinds = [a["body"]["type"] for a in alerts]
    s.expect("then exactly one BACK_IN_STOCK", kinds == ["LOW_STOCK", "BACK_IN_STOCK"], kinds)


if __name__ == "__main__":
    Scenario.run("low-stock-alert", low_stock_alert, __doc__)
