"""Back-in-stock e-mails for shoppers, through the API and MiniStack's SES: sign-up (double opt-in),
confirm, one e-mail per confirmed subscriber when the product comes back and never a second, the
unsubscribe link, bad input refused without a change, the per-cart limit, and no address in any
function's logs."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from tests.support import assert_error, new_cart_token, unique_id, wait_for

LINK = re.compile(r"(https?://\S+)/back-in-stock/(confirm|unsubscribe)\?token=([A-Za-z0-9._:-]+)")


def address(tag: str = "shopper") -> str:
    # Each test's own addresses; the tests look for them in the logs at the end.
    address = f"{tag}.{uuid.uuid4().hex[:10]}@example.com"
    ADDRESSES.append(address)
    return address


ADDRESSES: list[str] = []


def mails(stack, to: str) -> list[dict]:
    """Every e-mail MiniStack's SES has sent to `to`, oldest first."""
    listing = requests.get(f"{stack.description['endpoint']}/_ministack/ses/messages", timeout=10).json()["messages"]
    found = [m for messages in listing.values() for m in messages if to in m["To"]]
    return sorted(found, key=lambda m: m["Timestamp"])


def token_in(mail: dict, kind: str) -> str:
    links = {k: token for _, k, token in LINK.findall(mail["BodyText"])}
    return links[kind]


def sign_up(stack, product: str, email, cart: str | None = None, **kwargs) -> requests.Response:
    headers = {"Cart-Token": cart or new_cart_token()}
    return stack.call("POST", f"/inventory/{product}/back-in-stock", headers=headers, json={"email": email}, **kwargs)


def follow(stack, kind: str, token: str) -> requests.Response:
    # The link's host is the API's own (<api-id>.execute-api.localhost:<port>); the tests call the same
    # route through MiniStack's path form, which the contract test records.
    return stack.get(f"/back-in-stock/{kind}", params={"token": token})


def subscriptions(stack, product: str) -> list[dict]:
    items = stack.dynamodb.query(TableName=stack.description["subscriptions_table"], ConsistentRead=True,
                                 KeyConditionExpression="product_id = :p",
                                 ExpressionAttributeValues={":p": {"S": product}})["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def restock(stack, tokens, product: str, count: int = 5, warehouse: str = "main"):
    response = stack.admin_put(product, {"warehouse_id": warehouse, "stock_count": count, "reason": "delivery"},
                               tokens["admin"])
    assert response.status_code in (200, 201), response.text


def signed_up_and_confirmed(stack, product: str, email: str) -> str:
    """Signs up and follows the confirmation link; returns the token of the links."""
    assert sign_up(stack, product, email).status_code == 202
    confirmation = wait_for(lambda: mails(stack, email), 10, what=f"the confirmation mail of {product}")[0]
    token = token_in(confirmation, "confirm")
    assert token_in(confirmation, "unsubscribe") == token
    confirmed = follow(stack, "confirm", token)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "CONFIRMED"
    return token


def test_sign_up_confirm_and_one_mail_when_the_product_is_back(stack, tokens, new_product):
    product = new_product(main=0)
    confirmed_a, confirmed_b, unconfirmed, unsubscribed = (address(t) for t in ("a", "b", "pending", "gone"))

    answer = sign_up(stack, product, confirmed_a)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "PENDING_CONFIRMATION"
    assert "inbox" in answer.json()["message"]
    confirmation = wait_for(lambda: mails(stack, confirmed_a), 10, what="the confirmation mail")
    assert len(confirmation) == 1
    mail = confirmation[0]
    assert mail["Source"] == "no-reply@shop.example"
    assert mail["Subject"] == f"Confirm: e-mail me when {product} is back in stock"
    assert f".execute-api.localhost:" in mail["BodyText"], "links point at the API's own host"
    token = token_in(mail, "confirm")
    [stored] = subscriptions(stack, product)
    assert stored["state"] == "PENDING" and stored["email"] == confirmed_a
    assert token.rsplit(".", 1)[1] not in str(stored), "the table keeps a hash of the link's secret, not the secret"
    assert 23 * 3600 < int(stored["expires_at"]) - time.time() <= 24 * 3600, "a pending sign-up lapses in a day"

    first = follow(stack, "confirm", token)
    assert first.status_code == 200 and first.json() == {**first.json(), "product_id": product, "status": "CONFIRMED"}
    again = follow(stack, "confirm", token)
    assert again.status_code == 200 and again.json()["status"] == "CONFIRMED", "confirming twice is confirming"
    [stored] = subscriptions(stack, product)
    assert stored["state"] == "CONFIRMED" and int(stored["expires_at"]) - time.time() > 89 * 24 * 3600

    signed_up_and_confirmed(stack, product, confirmed_b)
    assert sign_up(stack, product, unconfirmed).status_code == 202
    gone_token = signed_up_and_confirmed(stack, product, unsubscribed)
    left = follow(stack, "unsubscribe", gone_token)
    assert left.status_code == 200 and left.json()["status"] == "UNSUBSCRIBED"
    assert follow(stack, "unsubscribe", gone_token).status_code == 200, "unsubscribing twice is fine"
    assert {s["email"] for s in subscriptions(stack, product)} == {confirmed_a, confirmed_b, unconfirmed}

    restock(stack, tokens, product)
    for email in (confirmed_a, confirmed_b):
        news = wait_for(lambda: [m for m in mails(stack, email) if "is back in stock" in m["Subject"]
                                 and not m["Subject"].startswith("Confirm")], 20, what="the back-in-stock mail")
        assert len(news) == 1
        assert news[0]["Subject"] == f"{product} is back in stock"
        assert "/back-in-stock/unsubscribe?token=" in news[0]["BodyText"]
    assert len(mails(stack, unconfirmed)) == 1, "an unconfirmed sign-up gets its confirmation mail only"
    assert len(mails(stack, unsubscribed)) == 1, "an unsubscribed address gets nothing more"
    # The notified subscriptions ended: their addresses are gone; the pending one waits for its TTL.
    wait_for(lambda: [s["email"] for s in subscriptions(stack, product)] == [unconfirmed], 10,
             what="the notified subscriptions to end")

    # Sold out and back again: nobody is mailed a second time.
    stack.admin_put(product, {"warehouse_id": "main", "stock_count": 0, "reason": "sold"}, tokens["admin"])
    restock(stack, tokens, product, 7)
    time.sleep(4)
    assert [len(mails(stack, e)) for e in (confirmed_a, confirmed_b)] == [2, 2]

    # The notification's unsubscribe link still answers (there is nothing left to end).
    news = [m for m in mails(stack, confirmed_a) if not m["Subject"].startswith("Confirm")][0]
    assert follow(stack, "unsubscribe", token_in(news, "unsubscribe")).status_code == 200


def test_a_redelivered_record_or_a_second_warehouse_mails_nobody_twice(stack, tokens, new_product):
    product = new_product(main=0, east=0)
    email = address("twice")
    signed_up_and_confirmed(stack, product, email)
    restock(stack, tokens, product, 3, "main")
    wait_for(lambda: len(mails(stack, email)) == 2, 20, what="the back-in-stock mail")
    # The record that brought it back, delivered again to the consumer, as a retry would.
    records = [r for r in stack.stream_records("stock", product)
               if r["dynamodb"].get("NewImage", {}).get("available_count", {}).get("N") == "3"]
    assert records
    stack.invoke("stock_events", {"Records": records[:1]})
    restock(stack, tokens, product, 4, "east")  # the other warehouse from none to some
    time.sleep(4)
    assert len(mails(stack, email)) == 2
    assert subscriptions(stack, product) == []


def test_the_same_address_twice_is_one_subscription_and_reveals_nothing(stack, tokens, new_product):
    product = new_product(main=0)
    email = address("again")
    token = signed_up_and_confirmed(stack, product, email)
    again = sign_up(stack, product, email.upper())
    assert again.status_code == 202 and again.json()["status"] == "PENDING_CONFIRMATION"
    time.sleep(1)
    assert len(mails(stack, email)) == 1, "a confirmed address is not mailed again"
    [stored] = subscriptions(stack, product)
    assert stored["state"] == "CONFIRMED"
    pending = address("resend")
    assert sign_up(stack, product, pending).status_code == 202
    assert sign_up(stack, product, pending).status_code == 202
    time.sleep(1)
    assert len(mails(stack, pending)) == 1, "a second sign-up within 15 minutes mails nothing more"
    assert follow(stack, "unsubscribe", token).status_code == 200
    assert [s["email"] for s in subscriptions(stack, product)] == [pending]


def test_bad_input_is_refused_and_changes_nothing(stack, tokens, new_product):
    product = new_product(main=0)
    cart = new_cart_token()
    bad_addresses = ["", "plain", "a@b", "a b@example.com", "a@example.com\r\nBcc: x@example.com", "\"q\"@example.com",
                     f"{'a' * 60}@{'b' * 190}.com", "a@example.com\n", "a@[127.0.0.1]", "ä@example.com", 5,
                     None, ["a@example.com"]]
    for bad in bad_addresses:
        error = assert_error(sign_up(stack, product, bad, cart), 400, "INVALID_INPUT")
        if isinstance(bad, str) and len(bad) > 3:
            assert bad not in error["message"]
    url = f"/inventory/{product}/back-in-stock"
    assert_error(stack.call("POST", url, json={"email": "ok@example.com"}), 400, "INVALID_INPUT")  # no cart
    assert_error(stack.call("POST", url, headers={"Cart-Token": "short"}, json={"email": "ok@example.com"}), 400,
                 "INVALID_INPUT")
    assert_error(sign_up(stack, product, "ok@example.com", cart, params={"x": "1"}), 400, "INVALID_INPUT")
    assert_error(stack.call("POST", url, headers={"Cart-Token": cart}, json={"email": "ok@example.com", "name": "x"}),
                 400, "INVALID_INPUT")
    assert_error(stack.call("POST", url, headers={"Cart-Token": cart}, data="not json"), 400, "INVALID_INPUT")
    assert_error(sign_up(stack, unique_id("NONE"), "ok@example.com", cart), 404, "PRODUCT_NOT_FOUND")
    assert_error(sign_up(stack, "bad id!", "ok@example.com", cart), 400, "INVALID_INPUT")
    in_stock = new_product(main=3)
    error = assert_error(sign_up(stack, in_stock, "ok@example.com", cart), 409, "PRODUCT_IN_STOCK")
    assert error["available"] == 3
    for kind in ("confirm", "unsubscribe"):
        assert_error(stack.get(f"/back-in-stock/{kind}"), 400, "INVALID_INPUT")
        assert_error(follow(stack, kind, "nonsense"), 400, "INVALID_INPUT")
        assert_error(stack.get(f"/back-in-stock/{kind}?token=a&token=b"), 400, "INVALID_INPUT")
        assert_error(stack.get(f"/back-in-stock/{kind}?token={'a' * 40}&x=1"), 400, "INVALID_INPUT")
    forged = f"{product}.{'a' * 64}.{'b' * 64}"
    assert_error(follow(stack, "confirm", forged), 404, "SUBSCRIPTION_NOT_FOUND")
    assert follow(stack, "unsubscribe", forged).status_code == 200  # says nothing about who subscribed
    assert subscriptions(stack, product) == [] and subscriptions(stack, in_stock) == []
    assert not mails(stack, "ok@example.com")


def test_a_cart_may_sign_up_ten_times_an_hour(stack, new_product):
    product = new_product(main=0)
    cart = new_cart_token()
    answers = [sign_up(stack, product, address("limit"), cart).status_code for _ in range(10)]
    assert answers == [202] * 10
    error = assert_error(sign_up(stack, product, address("limit"), cart), 429, "TOO_MANY_SIGN_UPS")
    assert error["limit"] == 10
    assert len(subscriptions(stack, product)) == 10
    assert sign_up(stack, product, address("other-cart")).status_code == 202, "another cart has its own allowance"


def test_a_lapsed_confirmation_link_no_longer_confirms(stack, new_product):
    product = new_product(main=0)
    email = address("late")
    assert sign_up(stack, product, email).status_code == 202
    token = token_in(wait_for(lambda: mails(stack, email), 10, what="the confirmation mail")[0], "confirm")
    # A day later, before TTL has deleted it (TTL may take days on AWS).
    [stored] = subscriptions(stack, product)
    stack.dynamodb.update_item(TableName=stack.description["subscriptions_table"],
                               Key={"product_id": {"S": product}, "subscriber": {"S": stored["subscriber"]}},
                               UpdateExpression="SET expires_at = :past",
                               ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    assert_error(follow(stack, "confirm", token), 404, "SUBSCRIPTION_NOT_FOUND")
    wait_for(lambda: subscriptions(stack, product) == [], 15, what="TTL to delete the lapsed sign-up")


# Last in this file (not `last` in the run: the suite runs in parts, and only the part with this file
# signs up addresses); the sign-ups, confirmations and mails above have all been logged by now.
def test_no_address_reaches_any_function_log(stack):
    messages = stack.function_log_messages()
    assert any("BackInStock" in group for group, _ in messages), "the sign-up function's logs were read"
    assert ADDRESSES, "the tests above signed up addresses"
    for group, message in messages:
        lowered = message.lower()
        leaked = [a for a in ADDRESSES if a.lower() in lowered or a.split("@")[0] in lowered]
        assert not leaked, (group, message[:300])
