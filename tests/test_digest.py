"""The daily digest (send_digest) against the deployed stack: products of the test's own, sales made
through the API (holds checked out by the signed-in shopper) and recorded in the audit trail by the
stream; the function invoked as its schedule would; the message read from the local queues.

One digest a day per stack: the module sends today's once and every test reads that one. Against a
stack whose digest of today went out already (STACK_JSON, a `make up` stack past 07:00 UTC) the
tests are skipped."""

from __future__ import annotations

import time

import pytest

from tests.support import AlertInbox, unique_id, wait_for


def create(stack, tokens, **warehouses) -> str:
    """A product of the test's own: warehouse=(stock, threshold), set by the admin API."""
    product = unique_id("DIGEST")
    for warehouse, (stock, threshold) in warehouses.items():
        response = stack.admin_put(product, {"warehouse_id": warehouse, "stock_count": stock,
                                             "threshold_level": threshold, "reason": "test set-up"}, tokens["admin"])
        assert response.status_code == 201, response.text
    return product


def sell(stack, tokens, product: str, *quantities: int):
    for quantity in quantities:
        hold = stack.reserve(product, quantity, "main")
        assert hold.status_code == 201, hold.text
        sold = stack.commit(product, hold.json()["reservation_id"], tokens["shopper"])
        assert sold.status_code == 200, sold.text


def checkouts_recorded(stack, tokens, product: str) -> int:
    response = stack.call("GET", f"/inventory/{product}/history", tokens["admin"], params={"limit": 200})
    assert response.status_code == 200, response.text
    return sum(1 for entry in response.json()["items"] if entry["kind"] == "committed")


def table(text: str) -> list[list[str]]:
    """The digest's table rows (without the header), each as its cells."""
    rows = [[cell.strip() for cell in line.split("|")] for line in text.splitlines() if " | " in line]
    assert rows and rows[0][:3] == ["#", "product", "warehouse"], text
    return rows[1:]


@pytest.fixture(scope="module")
def digest(stack, tokens, inbox):
    products = {
        "out": create(stack, tokens, main=(3, 2)),                # all 3 sold: out of stock
        "fast": create(stack, tokens, main=(10, 5), east=(3, 1)),  # 7 sold: 3 left at 1 a day; east in stock
        "slow": create(stack, tokens, main=(6, 5)),               # 1 sold: 5 left at 1/7 a day
        "idle": create(stack, tokens, main=(2, 5)),               # low, nothing sold
        "fine": create(stack, tokens, main=(50, 5)),              # 5 sold, still in stock: not listed
    }
    sales = {"out": (1, 2), "fast": (2, 2, 3), "slow": (1,), "fine": (5,)}
    # "out"'s LOW_STOCK alert goes out before the sale that empties it: a consumer that first looks
    # after both sees only OUT_OF_STOCK (an alert never announces a state the item has already left).
    sell(stack, tokens, products["out"], 1)
    wait_for(lambda: stack.alert_state(products["out"]) == "LOW_STOCK", timeout=15, what="out's LOW_STOCK alert")
    sell(stack, tokens, products["out"], 2)
    for name, quantities in sales.items():
        if name != "out":
            sell(stack, tokens, products[name], *quantities)
    for name, quantities in sales.items():
        wait_for(lambda: checkouts_recorded(stack, tokens, products[name]) == len(quantities), timeout=20,
                 what=f"the audit trail's checkouts of {name}")
    inbox.drain()
    report = stack.invoke("send_digest", {})
    if report["outcome"] == "already_sent":
        pytest.skip(f"this stack sent the digest of {report['day']} already")
    assert report["outcome"] == "sent", report
    message = wait_for(lambda: (inbox.drain(), inbox.digests)[1], timeout=10, what="the digest")[-1]
    return {"products": products, "report": report, "message": message}


def test_the_digest_lists_low_items_with_their_figures_soonest_to_run_out_first(digest):
    products, message = digest["products"], digest["message"]
    ours = {product: name for name, product in digest["products"].items()}
    rows = [row for row in table(message["text"]) if row[1] in ours]
    # status, available, on hand, reserved, threshold, sold 7d, per day, days left
    assert [(ours[row[1]], row[2], *row[3:]) for row in rows] == [
        ("out", "main", "OUT OF STOCK", "0", "0", "0", "2", "3", "0.4", "0"),
        ("fast", "main", "LOW", "3", "3", "0", "5", "7", "1.0", "3.0"),
        ("slow", "main", "LOW", "5", "5", "0", "5", "1", "0.1", "35.0"),
        ("idle", "main", "LOW", "2", "2", "0", "5", "0", "0.0", "-"),
    ]
    assert products["fine"] not in message["text"]
    assert f"{products['fast']} | east" not in message["text"]


def test_the_whole_digest_is_in_order_and_the_subject_counts_it(digest):
    rows, report, message = table(digest["message"]["text"]), digest["report"], digest["message"]
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    # Days left ascending (out of stock is 0), items with no sales ("-") last; ties by product, warehouse.
    keys = [(row[10] == "-", 0.0 if row[10] == "-" else float(row[10])) for row in rows]
    assert keys == sorted(keys), digest["message"]["text"]
    no_sales = [(row[1], row[2]) for row in rows if row[10] == "-"]
    assert no_sales == sorted(no_sales)
    out, low = sum(row[3] == "OUT OF STOCK" for row in rows), sum(row[3] == "LOW" for row in rows)
    assert (report["out_of_stock"], report["low"]) == (out, low)
    assert message["subject"] == f"Daily stock digest {report['day']}: {out} out of stock, {low} low"
    assert message["attributes"]["kind"] == "digest"
    assert message["attributes"]["digest_id"] == report["day"]
    assert message["text"].startswith(f"Daily stock digest for {report['day']}: {out} out of stock, {low} low")


def test_a_second_run_the_same_day_sends_nothing(stack, digest, inbox):
    again = stack.invoke("send_digest", {})
    assert (again["day"], again["outcome"]) == (digest["report"]["day"], "already_sent")
    time.sleep(2)
    inbox.drain()
    assert inbox.digests == [digest["message"]], "one digest a day"


def test_each_subscription_chooses_alerts_digest_or_both(stack, digest, inbox):
    # The alerts queue has no filter: it got the digest and the alerts, each alert with kind=alert.
    alerts = inbox.wait_for(digest["products"]["out"], 2)
    assert [a["body"]["type"] for a in alerts] == ["LOW_STOCK", "OUT_OF_STOCK"]
    assert {a["attributes"]["kind"] for a in alerts} == {"alert"}
    # The digest-only queue (filter policy kind = digest, as AlertEmailDigest: digest-only) got the
    # digest and none of the alerts.
    digest_only = AlertInbox(stack, stack.description["digest_queue_url"])
    wait_for(lambda: (digest_only.drain(), digest_only.digests)[1], timeout=10, what="the digest-only queue's digest")
    assert [d["text"] for d in digest_only.digests] == [digest["message"]["text"]]
    assert digest_only.received == [], "alerts reached the digest-only subscription"
