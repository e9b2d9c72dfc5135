"""The workload: concurrent shoppers and an admin per product against a deployed stack, every
operation recorded (history.py), faults armed phase by phase through the local AWS's nemesis; then
the system is let settle, the final state read from the tables, and everything checked.

Shoppers reserve (with and without a warehouse, with and without an Idempotency-Key), check out,
release, repeat an ending, read, and abandon holds (they lapse: the stack's short holds expire for
real, through TTL or the backstop). The admin reads, sets and adjusts stock, with and without
`expected_version` and a key. Each reserve uses a cart of its own, so a hold in the table is tied
to the operation that placed it by its cart, also when the answer was lost; cart limits then never
bind (quantities stay within `max_per_cart`) and the model leaves them out.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

from localstack.inventory_client import AlertInbox, Stack, new_cart_token, unique_id

from .checker import Verdict, check_history, misordered
from .history import History, Op

# A request that got no answer may still take effect until the client gave up on it (Stack.call's
# timeout, 30 s, beyond the functions' 10 s in the template's Globals).
CLIENT_TIMEOUT = 30.0
ATTEMPTS = 4
# The functions that expire holds, by their audit actor, and their timeouts (template.yaml).
WRITER_TIMEOUT = {"system:ttl": 10.0, "system:backstop": 60.0}  # a retried logical operation: the first try and up to three retries
WAREHOUSES = {"main": (8, 3), "east": (4, 1)}  # stock, threshold: small, so refusals and alerts happen


@dataclass
class Phase:
    label: str
    faults: list[dict]  # nemesis specs (localstack/nemesis.py)
    seconds: float


@dataclass
class Run:
    label: str
    seed: str
    history: History
    finals: dict = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    faults: list = field(default_factory=list)  # what each armed fault saw and fired

    @property
    def violations(self) -> int:
        return sum(not v.ok for v in self.verdicts)

    def report(self) -> str:
        return "\n".join(v.report for v in self.verdicts if not v.ok)


def cart_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Client(threading.Thread):
    """One shopper or admin on one product: a random mix of operations until told to stop."""

    def __init__(self, stack: Stack, tokens: dict, history: History, product: str, name: str, seed: str,
                 stop: threading.Event, stats: Counter):
        super().__init__(daemon=True, name=f"{product}/{name}")
        self.stack, self.tokens, self.history, self.product, self.name = stack, tokens, history, product, name
        self.random = random.Random(f"{seed}/{product}/{name}")
        self.stop, self.stats = stop, stats
        self.holds: list[dict] = []  # the holds this shopper knows of
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                self.admin_step() if self.name.startswith("admin") else self.shopper_step()
                time.sleep(self.random.uniform(0.1, 0.3) if self.name.startswith("admin") else self.random.uniform(0, 0.03))
        except BaseException as error:  # noqa: BLE001 (reported by the runner)
            self.error = error

    # --- one logical operation ----------------------------------------------------------------
    def perform(self, kind: str, args: dict, send, retry: bool) -> Op:
        """Sends, retrying what may be retried, and records one operation: definite if an attempt was
        answered 2xx/4xx; else unknown, its window ending when no attempt can still take effect."""
        call, attempts, deadline = time.time(), [], 0.0
        status = body = None
        unknown_before = False
        for attempt in range(ATTEMPTS):
            sent = time.time()
            try:
                response = send()
            except requests.RequestException as error:
                attempts.append(type(error).__name__)
                deadline = max(deadline, sent + CLIENT_TIMEOUT)
                unknown_before = True
            else:
                code = response.status_code
                attempts.append(code)
                if code == 429:  # the stage refused it without invoking anything
                    status = None if unknown_before else 429
                elif code >= 500:
                    unknown_before = True
                    status = None
                else:
                    status, body = code, response.json()
                    break
            if not retry and attempts[-1] != 429:
                break
            time.sleep(0.05 * 2 ** attempt * self.random.uniform(0.5, 1.5))
        ret = time.time() if status is not None else max(time.time(), deadline)
        self.stats["attempts"] += len(attempts)
        if len(attempts) > 1 and status not in (None, 429) and unknown_before:
            self.stats["recovered by retry"] += 1
        return self.history.add(client=self.name, product=self.product, kind=kind, args=args, call=call, ret=ret,
                                status=status, body=body, attempts=attempts)

    # --- shoppers -----------------------------------------------------------------------------
    def shopper_step(self):
        r, now = self.random.random(), time.time()
        live = [h for h in self.holds if h["state"] == "ACTIVE" and h["expires_at"] > now + 0.5]
        if r < 0.35 or not self.holds:
            self.reserve()
        elif r < 0.50 and live:
            self.end("commit", self.random.choice(live))
        elif r < 0.65 and live:
            self.end("release", self.random.choice(live))
        elif r < 0.75:  # a repeat, or an ending of a hold that may have lapsed
            self.end(self.random.choice(("commit", "release")), self.random.choice(self.holds))
        else:
            self.get()
        if len(self.holds) > 30:  # forget the oldest, ended or lapsed long ago
            self.holds = [h for h in self.holds if h["expires_at"] > now - 30]

    def reserve(self):
        quantity = self.random.choice((1, 1, 2, 3))
        warehouse = self.random.choice((None, None, "main", "east"))
        key = str(uuid.uuid4()) if self.random.random() < 0.7 else None
        cart = new_cart_token()
        args = {"quantity": quantity, "warehouse": warehouse, "key": key, "cart": cart_hash(cart)}
        op = self.perform("reserve", args, lambda: self.stack.reserve(self.product, quantity, warehouse, key=key, cart=cart),
                          retry=key is not None)
        if op.status in (200, 201):
            body = op.body
            self.holds.append({"op": op, "id": body["reservation_id"], "cart": cart, "state": "ACTIVE",
                               "expires_at": parse_time(body["expires_at"])})

    def end(self, kind: str, hold: dict):
        if kind == "commit":
            send = lambda: self.stack.commit(self.product, hold["id"], self.tokens["shopper"], cart=hold["cart"])  # noqa: E731
        else:
            send = lambda: self.stack.release(self.product, hold["id"], cart=hold["cart"])  # noqa: E731
        op = self.perform(kind, {"hold": hold["op"].id}, send, retry=True)
        if op.status == 200:
            hold["state"] = op.body["status"]

    def get(self) -> Op:
        return self.perform("get", {}, lambda: self.stack.call("GET", f"/inventory/{self.product}"), retry=True)

    # --- the admin ----------------------------------------------------------------------------
    def admin_step(self):
        view = self.get()
        versions = {w["warehouse_id"]: w["version"] for w in (view.body or {}).get("warehouses", [])} \
            if view.status == 200 else {}
        r = self.random.random()
        if r > 0.65:
            return
        warehouse = self.random.choice(sorted(WAREHOUSES))
        expected = versions.get(warehouse) if self.random.random() < 0.5 else None
        key = str(uuid.uuid4()) if self.random.random() < 0.5 else None
        if r < 0.30:
            kind, change = "adjust", {"adjust_by": self.random.randint(1, 4)}
        elif r < 0.45:
            kind, change = "adjust", {"adjust_by": -self.random.randint(1, 3)}
        else:
            kind, change = "set", {"stock_count": self.random.randint(2, 12)}
        body = {"warehouse_id": warehouse, **change, "reason": "chaos workload"}
        if expected is not None:
            body["expected_version"] = expected
        headers = {"Idempotency-Key": key} if key else {}
        self.perform(kind, {"warehouse": warehouse, **change, "expected_version": expected, "key": key},
                     lambda: self.stack.call("PUT", f"/inventory/{self.product}", self.tokens["admin"], headers=headers,
                                             json=body),
                     retry=key is not None)


def parse_time(rfc3339: str) -> float:
    return float(calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")))


class Backstop(threading.Thread):
    """Invokes the scheduled backstop every few seconds (the test stack's schedule is daily), adding up
    what it reports."""

    def __init__(self, stack: Stack, stop: threading.Event, stats: Counter, every: float = 5.0):
        super().__init__(daemon=True, name="backstop")
        self.stack, self.stop, self.stats, self.every = stack, stop, stats, every

    def run(self):
        while not self.stop.wait(self.every):
            invoke_backstop(self.stack, self.stats)


def invoke_backstop(stack: Stack, stats: Counter) -> dict:
    try:
        report = stack.invoke("check_thresholds", {})
    except Exception:  # noqa: BLE001 (a killed or throttled run: the next one catches up)
        stats["backstop runs failed"] += 1
        return {}
    stats["backstop runs"] += 1
    for name in ("holds_released", "statuses_repaired", "alerts_sent", "counters_repaired"):
        stats[f"backstop {name}"] += report.get(name, 0)
    return report


def run(stack: Stack, tokens: dict, inbox: AlertInbox, phases: list[Phase], seed: str | None = None,
        products: int = 3, shoppers: int = 3, label: str | None = None) -> Run:
    """Runs the workload through `phases` (each arms its faults for its seconds), lets the system
    settle with no faults, reads the final state and checks the history."""
    seed = seed or uuid.uuid4().hex[:8]
    history, stats = History(), Counter()
    history.meta = {"seed": seed, "phases": [vars(p) for p in phases]}
    ids = [unique_id("CHAOS") for _ in range(products)]
    for product in ids:
        for warehouse, (stock, threshold) in WAREHOUSES.items():
            response = stack.admin_put(product, {"warehouse_id": warehouse, "stock_count": stock,
                                                 "threshold_level": threshold, "reason": "chaos set-up"}, tokens["admin"])
            assert response.status_code == 201, response.text
        history.initial[product] = {w["warehouse_id"]: (w["stock_count"], w["reserved_count"], w["version"])
                                    for w in stack.get(f"/inventory/{product}").json()["warehouses"]}
    stop = threading.Event()
    clients = [Client(stack, tokens, history, product, name, seed, stop, stats)
               for product in ids for name in [f"shopper{i}" for i in range(shoppers)] + ["admin"]]
    backstop = Backstop(stack, stop, stats)
    result = Run(label or "+".join(p.label for p in phases), seed, history, stats=stats)
    stack.clear_faults()
    for client in clients:
        client.start()
    backstop.start()
    try:
        for n, phase in enumerate(phases):
            for spec in phase.faults:
                stack.arm_chaos(**{**spec, "seed": f"{seed}/{n}/{spec['kind']}"})
            stop.wait(phase.seconds)
            result.faults += [{"phase": phase.label, **f} for f in stack.faults()]
            stack.clear_faults()
    finally:
        stop.set()
        for thread in clients + [backstop]:
            thread.join(CLIENT_TIMEOUT * ATTEMPTS + 10)
        stack.clear_faults()
    errors = [f"{c.name}: {c.error!r}" for c in clients if c.error]
    assert not errors, errors
    settle(stack, history, ids, stats)
    finish(stack, tokens, inbox, result, ids)
    return result


def settle(stack: Stack, history: History, products: list[str], stats: Counter):
    """Waits until every hold placed could have lapsed, lets the backstop return them, and waits for
    the stream consumers to go quiet (the audit trail stops growing)."""
    hold_seconds = stack.description.get("hold_seconds", 10)
    last_expiry = max([parse_time(op.body["expires_at"]) for op in history.ops if op.kind == "reserve"
                       and op.status in (200, 201)]
                      + [op.ret + hold_seconds for op in history.ops if op.kind == "reserve"] + [time.time()])
    time.sleep(max(0.0, last_expiry + 1.5 - time.time()))
    for _ in range(5):
        report = invoke_backstop(stack, stats)
        if report and not report.get("holds_released") and not report.get("holds_deferred"):
            break
    wait_for_quiet_consumers(stack, products)
    # A crossing a quiet period held is announced once due: by the backstop, after the period.
    time.sleep(stack.description.get("alert_quiet_seconds", 0) + 1)
    invoke_backstop(stack, stats)
    wait_for_quiet_consumers(stack, products)


def wait_for_quiet_consumers(stack: Stack, products: list[str]):
    seen = None
    while True:  # the consumers are quiet when two reads 3 s apart see the same trail and stream
        now = [len(audit_trail(stack, product)) for product in products]
        if now == seen:
            return
        seen = now
        time.sleep(3)


def audit_trail(stack: Stack, product: str, token: str | None = None) -> list[dict]:
    """The product's audit entries straight from the history table (oldest first)."""
    pages = stack.dynamodb.get_paginator("query").paginate(
        TableName=stack.description["history_table"], ConsistentRead=True, KeyConditionExpression="product_id = :p",
        ExpressionAttributeValues={":p": {"S": product}})
    return [plain(item) for page in pages for item in page["Items"]]


def plain(item: dict):
    """A DynamoDB item as plain Python values."""
    from boto3.dynamodb.types import TypeDeserializer
    value = TypeDeserializer().deserialize({"M": item})
    return ints(value)


def ints(value):
    if isinstance(value, dict):
        return {k: ints(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [ints(v) for v in value]
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
        return int(value)
    return value


def finish(stack: Stack, tokens: dict, inbox: AlertInbox, result: Run, products: list[str]):
    """Reads the final state, adds the internal operations (the clock passing each hold's expiry, TTL or
    the backstop returning it) and the final observation, and checks."""
    history, stats = result.history, result.stats
    at = time.time()
    hold_seconds = stack.description.get("hold_seconds", 10)
    reserves = [op for op in history.ops if op.kind == "reserve"]
    trails = {product: audit_trail(stack, product) for product in products}
    holds = {product: stack.reservations(product) for product in products}
    # When each lapsed hold's units came back at the latest: its audit entry's time is its writer's start
    # (whole seconds), and the writer's write landed before its function's timeout.
    returned = {e["reservation_id"]: parse_time(e["time"]) + 1 + WRITER_TIMEOUT.get(e.get("actor"), CLIENT_TIMEOUT)
                for trail in trails.values() for e in trail if e["kind"] == "expired"}
    lapsed = {h["cart"]: h["reservation_id"] for hs in holds.values() for h in hs if h["state"] == "EXPIRED"}
    for op in reserves:
        if op.status in (200, 201):
            expires = parse_time(op.body["expires_at"])
            history.add(client="clock", product=op.product, kind="tick", args={"hold": op.id},
                        call=expires - 0.1, ret=expires + 0.1, status=200)
            start = expires + 0.2
        else:  # if its answer was lost and it placed a hold, that lapsed hold_seconds after it was placed
            start = op.call + hold_seconds - 1
        if op.args["cart"] in lapsed:
            history.add(client="clock", product=op.product, kind="lapse",
                        args={"hold": op.id, "anonymous": op.status not in (200, 201)}, call=start,
                        ret=max(start + 0.1, min(at, returned.get(lapsed[op.args["cart"]], at))), status=200)
    for product in products:
        items = [plain(i) for i in stack.dynamodb.query(
            TableName=stack.description["stock_table"], ConsistentRead=True,
            KeyConditionExpression="product_id = :p", ExpressionAttributeValues={":p": {"S": product}})["Items"]]
        by_cart = {op.args["cart"]: op for op in reserves if op.product == product}
        seen_carts, phantoms, placed = Counter(h["cart"] for h in holds[product]), [], {}
        for hold in holds[product]:
            op = by_cart.get(hold["cart"])
            if op is None or seen_carts[hold["cart"]] > 1:
                phantoms.append(hold["reservation_id"])
            else:
                placed[str(op.id)] = {"state": hold["state"], "warehouse_id": hold["warehouse_id"]}
        warehouses = [{"warehouse_id": i["warehouse_id"], "stock_count": i["stock_count"],
                       "reserved_count": i["reserved_count"], "available": i["available_count"],
                       "version": i["version"]} for i in items]
        history.add(client="observer", product=product, kind="observe", args={}, call=at, ret=time.time(), status=200,
                    body={"warehouses": warehouses, "holds": placed, "phantoms": phantoms})
        trail = trails[product]
        stats["expired by ttl"] += sum(e["kind"] == "expired" and e.get("actor") == "system:ttl" for e in trail)
        stats["expired by backstop"] += sum(e["kind"] == "expired" and e.get("actor") == "system:backstop" for e in trail)
        stats["reconciled"] += sum(e["kind"] == "reconciled" for e in trail)
        stats["audit entries out of order"] += len(misordered(trail))
        alerts = [a["body"] for a in inbox.for_product(product)]
        stats["alerts"] += len({a["alert_id"] for a in alerts})
        result.finals[product] = ({"at": at, "items": items, "all_holds": holds[product],
                                   "alert_quiet_seconds": stack.description.get("alert_quiet_seconds", 0)}, trail, alerts)
    ops = [op for op in history.ops if op.client not in ("clock", "observer")]
    stats["operations"] = len(ops)
    stats["definite"] = sum(op.definite for op in ops)
    stats["unknown"] = sum(not op.definite for op in ops)
    stats["throttled (429)"] = sum(op.status == 429 for op in ops)
    history.meta["finals"] = result.finals  # so a saved history is checked again in full (python -m bench.chaos --check)
    result.verdicts = check_history(history, result.finals)


# Each fault of the nemesis (docs/CHAOS.md, "The faults") at a rate the workload feels; "all" arms every one.
FAULTS: dict[str, list[dict]] = {
    "none": [],
    "applied-answer-lost": [{"kind": "applied-answer-lost", "rate": 0.05}],
    "conflict": [{"kind": "conflict", "rate": 0.2}],
    "throttle": [{"kind": "throttle", "rate": 0.05}],
    "hot-key": [{"kind": "hot-key", "rate": 1.0, "params": {"scale": 0.01, "per": "item"}}],
    "kill": [{"kind": "kill", "rate": 0.02}],
    "sns-publish": [{"kind": "sns-publish", "rate": 0.3}],
    "stream-duplicate": [{"kind": "stream-duplicate", "rate": 0.3}],
    "stream-delay": [{"kind": "stream-delay", "rate": 0.2, "params": {"seconds": 3.0}}],
    "ttl-lag": [{"kind": "ttl-lag", "rate": 0.05, "params": {"seconds": 20.0}}],
}
FAULTS["all"] = [spec for specs in FAULTS.values() for spec in specs]
