#!/usr/bin/env python3
"""A tour of malformed requests: every one is refused with a clear 4xx JSON error, and nothing changes.

    python -m localstack.scenarios.bad_input
"""

from localstack.scenarios.scenario import Scenario

RESERVE = [
    ("quantity 0", {"quantity": 0}),
    ("negative quantity", {"quantity": -2}),
    ("fractional quantity", {"quantity": 1.5}),
    ("quantity as a string", {"quantity": "3"}),
    ("quantity over the cap", {"quantity": 100000}),
    ("no quantity", {}),
    ("unknown field", {"quantity": 1, "price": 0}),
    ("unknown warehouse", {"quantity": 1, "warehouse_id": "atlantis"}),
    ("malformed warehouse id", {"quantity": 1, "warehouse_id": "../etc"}),
]


def bad_input(s: Scenario):
    admin = s.stack.token("admin")
    product = s.new_product(admin, main=10)
    base = f"/inventory/{product}"
    tour = [(f"reserve with {what}", "POST", f"{base}/reserve", None, {"json": body}) for what, body in RESERVE]
    tour += [
        ("reserve with a body that is not JSON", "POST", f"{base}/reserve", None, {"data": "quantity=1"}),
        ("reserve with an empty body", "POST", f"{base}/reserve", None, {"data": ""}),
        ("reserve with a huge body", "POST", f"{base}/reserve", None, {"data": '{"quantity":1,"x":"' + "x" * 8000 + '"}'}),
        ("reserve with a short Idempotency-Key", "POST", f"{base}/reserve", None,
         {"json": {"quantity": 1}, "headers": {"Idempotency-Key": "1"}}),
        ("an over-long product id", "GET", "/inventory/" + "P" * 80, None, {}),
        ("a product id with a control character", "GET", "/inventory/bad%07id", None, {}),
        ("release of a malformed reservation id", "DELETE", f"{base}/reservations/not-a-uuid", None, {}),
        ("admin set of a negative count", "PUT", base, admin, {"json": {"warehouse_id": "main", "stock_count": -5}}),
        ("admin adjust below zero", "PUT", base, admin, {"json": {"warehouse_id": "main", "adjust_by": -11}}),
        ("admin set and adjust at once", "PUT", base, admin, {"json": {"stock_count": 1, "adjust_by": 1}}),
        ("admin list with an unknown status", "GET", "/inventory", admin, {"params": {"status": "PLENTY"}}),
    ]
    before = s.stack.get(base).json()
    for what, method, path, token, kwargs in tour:
        response = s.stack.call(method, path, token, **kwargs)
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        s.step(what)
        s.saw(f"{response.status_code} {error.get('code')}: {error.get('message')}")
        s.expect("a 4xx JSON error with a code and a message",
                 400 <= response.status_code < 500 and bool(error.get("code")) and bool(error.get("message")))
    after = s.stack.get(base).json()
    s.step("Read the product back")
    s.expect("nothing changed", after == before and s.stack.reservations(product) == [])


if __name__ == "__main__":
    Scenario.run("bad-input", bad_input, __doc__)
