"""Live stock over the WebSocket API, through the deployed stack: a page's socket gets each change of
the products it watches (a hold, an admin change, a checkout) as the GET body with a sequence that
only grows, and nothing of the others; bad messages are answered and change nothing; only an admin's
socket watches everything, and a bad token is refused at the handshake; a closed or gone connection
is forgotten. And the change feed: each kind of event reaches a rule's queue on the bus."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support import new_cart_token, unique_id, wait_for

PUSH_SECONDS = 5  # locally a push takes well under a second; the margin is for a loaded CI machine


def socket(stack, token: str | None = None):
    url = stack.description["websocket_url"] + (f"?token={token}" if token else "")
    return connect(url, open_timeout=10, close_timeout=2)


def send(ws, message: dict) -> dict:
    ws.send(json.dumps(message))
    return next_message(ws, lambda m: m.get("type") != "stock")


def next_message(ws, wanted=lambda m: True, timeout: float = PUSH_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = json.loads(ws.recv(timeout=left))
        if wanted(message):
            return message
    raise TimeoutError("no such message")


def push_for(ws, product: str, available: int) -> dict:
    """The push that shows `available` for `product` (earlier ones of a burst may come first)."""
    return next_message(ws, lambda m: m.get("type") == "stock" and m["product_id"] == product
                        and m["available"] == available)


def test_a_page_sees_each_change_of_its_product_as_the_get_body_with_a_growing_sequence(stack, tokens, new_product):
    product = new_product(main=(10, 2))
    with socket(stack) as ws:
        assert send(ws, {"action": "subscribe", "products": [product]}) == {"type": "subscribed", "products": [product]}
        cart = new_cart_token()
        hold = stack.reserve(product, 3, cart=cart)
        assert hold.status_code == 201, hold.text
        held = push_for(ws, product, 7)
        assert held == {**stack.get(f"/inventory/{product}").json(), "type": "stock"}

        assert stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 5, "reason": "delivery"},
                               tokens["admin"]).status_code == 200
        delivered = push_for(ws, product, 12)
        assert (delivered["stock_count"], delivered["reserved_count"]) == (15, 3)

        sold = stack.commit(product, hold.json()["reservation_id"], tokens["shopper"], cart=cart)
        assert sold.status_code == 200, sold.text
        checked_out = next_message(ws, lambda m: m.get("type") == "stock" and m["stock_count"] == 12)
        assert (checked_out["reserved_count"], checked_out["available"]) == (0, 12)
        assert held["sequence"] < delivered["sequence"] < checked_out["sequence"]
        assert checked_out["sequence"] == stack.get(f"/inventory/{product}").json()["sequence"]


def test_a_page_gets_nothing_of_products_it_does_not_watch_and_stops_when_it_unsubscribes(stack, new_product):
    watched, other, kept = new_product(main=10), new_product(main=10), new_product(main=10)

    def stock_pushes_until(ws, product: str, available: int) -> list[dict]:
        """Every push up to the one showing `available` for `product` (the local stream has one shard,
        which the broadcaster reads in order, and one socket's pushes arrive in the order sent)."""
        seen = []
        while True:
            message = next_message(ws, lambda m: m.get("type") == "stock")
            seen.append(message)
            if message["product_id"] == product and message["available"] == available:
                return seen

    with socket(stack) as ws:
        send(ws, {"action": "subscribe", "products": [watched, kept]})
        assert stack.reserve(other, 1, cart=new_cart_token()).status_code == 201
        assert stack.reserve(watched, 1, cart=new_cart_token()).status_code == 201
        assert {m["product_id"] for m in stock_pushes_until(ws, watched, 9)} <= {watched, kept}
        assert send(ws, {"action": "unsubscribe", "products": [watched]}) == {"type": "unsubscribed",
                                                                              "products": [kept]}
        # A change of the product no longer watched, then one of a product still watched: once the
        # second is here, the first would have been too.
        assert stack.reserve(watched, 1, cart=new_cart_token()).status_code == 201
        assert stack.reserve(kept, 1, cart=new_cart_token()).status_code == 201
        assert all(m["product_id"] == kept for m in stock_pushes_until(ws, kept, 9))


@pytest.mark.parametrize("frame, code", [
    ("not json", "INVALID_INPUT"),
    (json.dumps({"action": "dance"}), "INVALID_INPUT"),
    (json.dumps({"action": "subscribe", "products": []}), "INVALID_INPUT"),
    (json.dumps({"action": "subscribe", "products": ["a b"]}), "INVALID_INPUT"),
    (json.dumps({"action": "subscribe", "products": [f"P-{i}" for i in range(51)]}), "INVALID_INPUT"),
    (json.dumps({"action": "subscribe", "all_products": True}), "FORBIDDEN"),
])
def test_bad_messages_are_answered_with_an_error_and_change_nothing(stack, frame, code):
    with socket(stack) as ws:
        ws.send(frame)
        reply = next_message(ws)
        assert reply["type"] == "error" and reply["error"] == code and reply["message"], reply
        # The connection still works, and watches nothing it was refused.
        assert send(ws, {"action": "subscribe", "products": ["SKU-X"]}) == {"type": "subscribed",
                                                                            "products": ["SKU-X"]}


def test_only_an_admin_socket_watches_every_product_and_a_bad_token_is_refused(stack, tokens, new_product):
    with socket(stack, tokens["admin"]) as admin:
        assert send(admin, {"action": "subscribe", "all_products": True}) == {"type": "subscribed", "products": ["*"]}
        product = new_product(main=(4, 1))
        created = next_message(admin, lambda m: m.get("type") == "stock" and m["product_id"] == product)
        assert created["warehouses"][0]["version"] >= 1
    with socket(stack, tokens["shopper"]) as signed_in_shopper:
        assert send(signed_in_shopper, {"action": "subscribe", "all_products": True})["error"] == "FORBIDDEN"
    forged = tokens["admin"][:-4] + ("AAAA" if not tokens["admin"].endswith("AAAA") else "BBBB")
    for bad in (forged, "not-a-token"):
        with pytest.raises(InvalidStatus) as refused:
            socket(stack, bad).close()
        assert refused.value.response.status_code == 403


def test_a_closed_or_gone_connection_is_forgotten(stack, new_product):
    dynamodb = stack.client("dynamodb")
    table = stack.description["connections_table"]

    def records(connection_id: str) -> list:
        return dynamodb.query(TableName=table, KeyConditionExpression="connection_id = :c",
                              ExpressionAttributeValues={":c": {"S": connection_id}},
                              ConsistentRead=True)["Items"]

    product = new_product(main=10)
    with socket(stack) as ws:
        send(ws, {"action": "subscribe", "products": [product]})
        # A connection id to find the records by: the only one watching this product.
        by_topic = dynamodb.query(TableName=table, IndexName="by-topic", KeyConditionExpression="topic = :t",
                                  ExpressionAttributeValues={":t": {"S": product}})["Items"]
        assert len(by_topic) == 1
        closed = by_topic[0]["connection_id"]["S"]
        assert len(records(closed)) == 2  # the connection and its one topic
    wait_for(lambda: records(closed) == [], timeout=10, what="$disconnect to forget the connection")

    # A connection API Gateway closed without $disconnect reaching us: the first push answers 410.
    gone = "gone" + unique_id("c").replace("-", "")[:12]
    expires = str(int(time.time()) + 3600)
    for entry, extra in (("connection", {"topics": {"L": [{"S": product}]}, "revision": {"N": "1"},
                                         "viewer": {"S": "shopper"}}),
                         (f"topic#{product}", {"topic": {"S": product}})):
        dynamodb.put_item(TableName=table, Item={"connection_id": {"S": gone}, "entry": {"S": entry},
                                                 "expires_at": {"N": expires}, **extra})
    assert stack.reserve(product, 1, cart=new_cart_token()).status_code == 201
    wait_for(lambda: records(gone) == [], timeout=10, what="the broadcaster to forget a gone connection")


def test_the_change_feed_carries_stock_changes_holds_and_alerts_to_a_rule_on_the_bus(stack, tokens, new_product):
    sqs, events = stack.client("sqs"), stack.client("events")
    product = new_product(main=(10, 3))
    # A subscriber of our own, as another system would add one: a rule on the bus for this product.
    queue = sqs.create_queue(QueueName=unique_id("feed"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = unique_id("feed")
    bus = stack.description["event_bus_name"]
    events.put_rule(Name=rule, EventBusName=bus,
                    EventPattern=json.dumps({"source": ["inventory"], "detail": {"product_id": [product]}}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "test", "Arn": queue_arn}])
    seen: dict[str, list[dict]] = {}

    def arrived(*kinds: str):
        def check() -> bool:
            for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                    "Messages", []):
                event = json.loads(message["Body"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                assert (event["source"], event["detail"]["product_id"]) == ("inventory", product)
                seen.setdefault(event["detail-type"], []).append(event["detail"])
            return set(kinds) <= set(seen)
        return check

    cart = new_cart_token()
    hold = stack.reserve(product, 8, cart=cart).json()  # available 2 <= 3: LOW_STOCK
    # The alert is judged on the item as it is then: released at once, there would be no crossing.
    wait_for(arrived("StockChanged", "HoldPlaced", "AlertRaised"), timeout=30, what="the hold's events")
    assert stack.release(product, hold["reservation_id"], cart=cart).status_code == 200
    wait_for(arrived("HoldEnded"), timeout=30, what="the release's event")
    placed, ended = seen["HoldPlaced"][0], seen["HoldEnded"][0]
    assert (placed["reservation_id"], placed["quantity"], placed["available"]) == (hold["reservation_id"], 8, 2)
    assert (ended["change"], ended["available"]) == ("released", 10)
    assert seen["AlertRaised"][0]["alert"]["type"] == "LOW_STOCK"
    # Each change once per delivery: change ids are unique among the StockChanged events.
    ids = [e["change_id"] for e in seen["StockChanged"]]
    assert len(ids) == len(set(ids))
