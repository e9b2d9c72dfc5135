#!/usr/bin/env python3
"""Sales drive an item across its low-stock threshold; the inventory manager gets exactly one e-mail,
shown here as they would read it. A restock then brings one back-in-stock e-mail, at once. Then a
cart churns across the threshold (added, removed, four times, then bought): no storm of e-mails;
once the quiet period after the last alert is over, one e-mail says where the item stands, folding
the crossings.

Alerts are read from the SQS queue subscribed to the alerts topic (locally it stands in for e-mail).

    python -m localstack.scenarios.low_stock_alert
"""

import calendar
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
             bool(alerts) and alerts[0]["subject"].startswith(f"Low stock: {product} at main - 3 left to sell, "))

    s.step("One more sale, still above zero: no new e-mail")
    hold = s.stack.reserve(product, 1, "main").json()
    s.stack.commit(product, hold["reservation_id"], shopper)
    time.sleep(1)
    kinds = [a["body"]["type"] for a in inbox.settled(product)]
    s.expect("still just the one LOW_STOCK alert", kinds == ["LOW_STOCK"], kinds)

    s.step("The admin books a delivery of 10 units (restock): a change of the shelf, announced at once")
    s.stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 10, "reason": "delivery"}, admin)
    # As soon as it is there (not after a settling pause): the churn below must fall in its quiet period.
    alerts = inbox.wait_for(product, 2)
    if alerts:
        show(s, alerts[-1])
    kinds = [a["body"]["type"] for a in alerts]
    s.expect("then exactly one BACK_IN_STOCK", kinds == ["LOW_STOCK", "BACK_IN_STOCK"], kinds)

    quiet = s.stack.description["alert_quiet_seconds"]
    quiet_ends = calendar.timegm(time.strptime(alerts[-1]["body"]["at"], "%Y-%m-%dT%H:%M:%SZ")) + quiet
    s.step(f"A shopper puts 8 in the cart and takes them out again, four times, and buys the fifth "
           f"(12 -> 4 -> 12 ...): each time below the threshold and back. Quiet period: {quiet} s")
    for _ in range(4):
        hold = s.stack.reserve(product, 8, "main").json()
        s.stack.release(product, hold["reservation_id"])
    # Bought, not only held: a hold would lapse (in the test stack, as soon as the quiet period ends).
    hold = s.stack.reserve(product, 8, "main").json()
    s.stack.commit(product, hold["reservation_id"], shopper)
    time.sleep(1)
    kinds = [a["body"]["type"] for a in inbox.for_product(product)]
    s.expect("no e-mail for the churn: the crossings wait for the quiet period after the BACK_IN_STOCK",
             kinds == ["LOW_STOCK", "BACK_IN_STOCK"], kinds)
    s.saw("waiting for the quiet period to end; then the backstop runs (on AWS: every minute)")
    time.sleep(max(0.0, quiet_ends + 1 - time.time()))
    s.stack.invoke("check_thresholds", {})
    alerts = inbox.wait_for(product, 3)
    show(s, alerts[-1])
    kinds = [a["body"]["type"] for a in alerts]
    s.expect("one LOW_STOCK that says where it stands, folding the crossings",
             kinds[:3] == ["LOW_STOCK", "BACK_IN_STOCK", "LOW_STOCK"] and alerts[2]["body"]["crossings"] > 1, kinds)


if __name__ == "__main__":
    Scenario.run("low-stock-alert", low_stock_alert, __doc__)
