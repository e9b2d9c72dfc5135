"""A small client for a deployed inventory stack: the API over HTTP, the tables, queues and functions
through the AWS SDK. The integration tests and the tester scenarios both use it.

    stack = Stack.load()            # STACK_JSON, else .local/stack.json
    stack.reserve("SKU-1001", 2)
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    description: dict
    state_dir: Path | None = None

    @classmethod
    def load(cls) -> "Stack":
        """The stack described by $STACK_JSON, or by .local/stack.json (what `make up` writes)."""
        path = Path(os.environ.get("STACK_JSON") or ROOT / ".local" / "stack.json")
        if not path.exists():
            raise SystemExit(f"no stack description at {path}: run `make up` first, or set STACK_JSON")
        return cls(json.loads(path.read_text()))

    def token(self, role: str) -> str:
        """An access token of the demo admin or shopper, signed in through Cognito as the pages do."""
        user = self.description["demo_users"][role]
        result = self.client("cognito-idp").initiate_auth(
            ClientId=self.description["user_pool_client_id"], AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user["username"], "PASSWORD": user["password"]})
        return result["AuthenticationResult"]["AccessToken"]

    def __post_init__(self):
        self.api_url = self.description["api_url"]
        self.http = requests.Session()
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                        region_name=self.description["region"])
        self.client = lambda service: session.client(service, endpoint_url=self.description["endpoint"])
        self.dynamodb = self.client("dynamodb")
        self.carts: dict[str, str] = {}  # reservation id -> the Cart-Token that placed it
        self.key_carts: dict[str, str] = {}  # Idempotency-Key -> the cart that sent it

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(f"{self.api_url}{path}", timeout=10, **kwargs)

    # Each call opens its own connection, so these are safe to use from many threads at once.
    def call(self, method: str, path: str, token: str | None = None, headers: dict | None = None,
             **kwargs) -> requests.Response:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs)

    # Holds belong to a cart (the Cart-Token header). Without `cart`, each reserve is a new shopper's
    # cart (a retry with the same Idempotency-Key comes from the same cart, as a client retries), and
    # the client remembers which cart placed which hold, so commit and release show it.
    def reserve(self, product: str, quantity, warehouse: str | None = None, key: str | None = None,
                cart: str | None = None, token: str | None = None):
        body = {"quantity": quantity} if warehouse is None else {"quantity": quantity, "warehouse_id": warehouse}
        cart = cart or (self.key_carts.setdefault(key, new_cart_token()) if key else new_cart_token())
        headers = {"Cart-Token": cart, **({"Idempotency-Key": key} if key else {})}
        response = self.call("POST", f"/inventory/{product}/reserve", token, json=body, headers=headers)
        if response.status_code in (200, 201):
            self.carts[response.json()["reservation_id"]] = cart
        return response

    def cart_of(self, reservation_id: str) -> str | None:
        return self.carts.get(reservation_id)

    def commit(self, product: str, reservation_id: str, token: str, cart: str | None = None):
        return self.call("PUT", f"/inventory/{product}", token, json={"reservation_id": reservation_id},
                         headers=self._cart_header(reservation_id, cart))

    def release(self, product: str, reservation_id: str, cart: str | None = None, token: str | None = None):
        return self.call("DELETE", f"/inventory/{product}/reservations/{reservation_id}", token,
                         headers=self._cart_header(reservation_id, cart))

    def _cart_header(self, reservation_id: str, cart: str | None) -> dict:
        cart = cart or self.carts.get(reservation_id)
        return {"Cart-Token": cart} if cart else {}

    def admin_put(self, product: str, body: dict, token: str):
        return self.call("PUT", f"/inventory/{product}", token, json=body)

    def levels(self, product: str) -> dict:
        """warehouse_id -> (stock_count, reserved_count, available) as GET shows them."""
        response = self.get(f"/inventory/{product}")
        assert response.status_code == 200, response.text
        return {w["warehouse_id"]: (w["stock_count"], w["reserved_count"], w["available"])
                for w in response.json()["warehouses"]}

    def reservations(self, product: str) -> list[dict]:
        """Every hold of a product, read straight from the table (a test-only scan)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.description["reservations_table"], ConsistentRead=True, FilterExpression="product_id = :p",
            ExpressionAttributeValues={":p": {"S": product}})
        items = [item for page in pages for item in page["Items"]]
        return [{"reservation_id": i["reservation_id"]["S"], "warehouse_id": i["warehouse_id"]["S"],
                 "quantity": int(i["quantity"]["N"]), "state": i["state"]["S"], "cart": i.get("cart", {}).get("S"),
                 "expires_at": int(i["expires_at"]["N"])} for i in items]

    def assert_reconciled(self, product: str, settle: float = 0) -> dict:
        """Invariant 2: per warehouse, reserved = Σ ACTIVE holds and available = stock − reserved.
        With `settle`, while holds may be lapsing (the item counts a hold from its TTL delete until
        the expiry path releases it), the invariant must hold again within that many seconds."""
        deadline = time.monotonic() + settle
        while True:
            levels, holds, problems = self.levels(product), self.reservations(product), []
            for warehouse, (stock, reserved, available) in levels.items():
                active = sum(h["quantity"] for h in holds if h["warehouse_id"] == warehouse and h["state"] == "ACTIVE")
                if reserved != active:
                    problems.append(f"{product}/{warehouse}: reserved {reserved} but active holds {active}")
                if available != stock - reserved:
                    problems.append(f"{product}/{warehouse}: {available} != {stock} - {reserved}")
            if not problems or time.monotonic() >= deadline:
                assert not problems, "; ".join(problems)
                return levels
            time.sleep(0.2)

    def shards(self, product: str, warehouse: str = "main") -> list[dict]:
        """The item's shard items as stored, shard 0 (the main item) first, read together (a test-only
        TransactGetItems): [{"shard", "stock", "reserved", "available"}]. One entry for an unsharded item."""
        main = self.stock_item(product, warehouse)
        span = int(main.get("sharding", {}).get("M", {}).get("span", {}).get("N", "1"))
        keys = [{"product_id": {"S": product if k == 0 else f"{product}#{k}"}, "warehouse_id": {"S": warehouse}}
                for k in range(span)]
        items = self.dynamodb.transact_get_items(TransactItems=[
            {"Get": {"TableName": self.description["stock_table"], "Key": key}} for key in keys])["Responses"]
        return [{"shard": k, "stock": int(item["Item"]["stock_count"]["N"]),
                 "reserved": int(item["Item"]["reserved_count"]["N"]),
                 "available": int(item["Item"]["available_count"]["N"])} for k, item in enumerate(items)]

    def allocations(self, product: str, warehouse: str = "main") -> list[dict]:
        """Every hold of the item with what it took from which shard: [{..., "takes": {shard: units}}]."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.description["reservations_table"], ConsistentRead=True,
            FilterExpression="product_id = :p AND warehouse_id = :w",
            ExpressionAttributeValues={":p": {"S": product}, ":w": {"S": warehouse}})
        holds = []
        for item in (item for page in pages for item in page["Items"]):
            taken = item.get("allocation", {}).get("L")
            takes = ({int(t["M"]["shard"]["N"]): int(t["M"]["units"]["N"]) for t in taken} if taken
                     else {0: int(item["quantity"]["N"])})
            holds.append({"reservation_id": item["reservation_id"]["S"], "state": item["state"]["S"],
                          "quantity": int(item["quantity"]["N"]), "takes": takes})
        return holds

    def assert_shards_reconciled(self, product: str, warehouse: str = "main", settle: float = 0) -> list[dict]:
        """Invariant 2 per shard: each shard's reserved = what the ACTIVE holds' allocations took from
        it, available = stock − reserved, and no hold took more or less than its quantity."""
        deadline = time.monotonic() + settle
        while True:
            shards, holds, problems = self.shards(product, warehouse), self.allocations(product, warehouse), []
            for hold in holds:
                if sum(hold["takes"].values()) != hold["quantity"]:
                    problems.append(f"hold {hold['reservation_id']} took {hold['takes']} for {hold['quantity']}")
            for shard in shards:
                active = sum(h["takes"].get(shard["shard"], 0) for h in holds if h["state"] == "ACTIVE")
                if shard["reserved"] != active:
                    problems.append(f"shard {shard['shard']}: reserved {shard['reserved']} but active holds {active}")
                if shard["available"] != shard["stock"] - shard["reserved"]:
                    problems.append(f"shard {shard['shard']}: {shard['available']} != {shard['stock']} - {shard['reserved']}")
            if not problems or time.monotonic() >= deadline:
                assert not problems, "; ".join(problems)
                return shards
            time.sleep(0.2)

    def put_stock_item(self, product_id: str, warehouse_id: str, stock: int, threshold: int, reserved: int = 0):
        """Writes a stock item directly, for a test's own product (the admin API comes later)."""
        self.dynamodb.put_item(TableName=self.description["stock_table"], Item={
            "product_id": {"S": product_id}, "warehouse_id": {"S": warehouse_id},
            "stock_count": {"N": str(stock)}, "reserved_count": {"N": str(reserved)},
            "available_count": {"N": str(stock - reserved)}, "threshold_level": {"N": str(threshold)},
            "version": {"N": "1"}, "sequence": {"N": "1"},
            "last_updated": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        })


    def invoke(self, function: str, payload: dict) -> dict:
        """Invokes one of the stack's functions directly (the backstop, or a consumer with a crafted batch)."""
        result = self.client("lambda").invoke(FunctionName=self.description["functions"][function],
                                              Payload=json.dumps(payload).encode())
        body = json.loads(result["Payload"].read() or b"null")
        assert "FunctionError" not in result, body
        return body

    def stock_item(self, product: str, warehouse: str = "main") -> dict:
        """The raw stock item, with its alert state (`status`) and any pending alert."""
        return self.dynamodb.get_item(TableName=self.description["stock_table"], ConsistentRead=True,
                                      Key={"product_id": {"S": product}, "warehouse_id": {"S": warehouse}})["Item"]

    def alert_state(self, product: str, warehouse: str = "main") -> str | None:
        item = self.stock_item(product, warehouse)
        return item["status"]["S"] if "status" in item and "pending_alert" not in item else None

    def function_log_events(self, name_contains: str = "") -> list[tuple[str, dict]]:
        """(log group, event) of every line the stack's functions logged, optionally only of the
        functions whose log group name contains `name_contains`."""
        logs = self.client("logs")
        events = []
        for group in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]:
            name = group["logGroupName"]
            if name_contains in name:
                for page in logs.get_paginator("filter_log_events").paginate(logGroupName=name):
                    events += [(name, event) for event in page["events"]]
        return events

    def function_log_messages(self, name_contains: str = "") -> list[tuple[str, str]]:
        """(log group, message) of every line the stack's functions logged (see function_log_events)."""
        return [(group, event["message"]) for group, event in self.function_log_events(name_contains)]

    # The local AWS's run-time controls (localstack/ministack_faithful.py, "The control endpoint"):
    # only on the MiniStack the launcher started, never on AWS.
    def faithful(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.http.request(method, f"{self.description['endpoint']}/_faithful/{path}", json=body,
                                     timeout=30)
        if response.status_code >= 300:
            raise AssertionError(f"{method} /_faithful/{path}: {response.status_code} {response.text}")
        return response.json()

    def pause_ttl(self, seconds: float | None = None) -> dict:
        """DynamoDB TTL stops deleting expired items (as AWS may, for hours) until resume_ttl(), or for
        `seconds` and then catches up."""
        return self.faithful("POST", "ttl/pause", {"seconds": seconds} if seconds is not None else None)

    def resume_ttl(self) -> dict:
        return self.faithful("POST", "ttl/resume")

    def reap_ttl(self) -> int:
        """One TTL pass now, paused or not; the number of items it deleted."""
        return self.faithful("POST", "ttl/reap")["reaped"]

    @contextmanager
    def ttl_paused(self):
        self.pause_ttl()
        try:
            yield
        finally:
            self.resume_ttl()

    def arm_chaos(self, kind: str, rate: float | None = None, count: int | None = None, params: dict | None = None,
                  seed: str | None = None, **filters) -> dict:
        """Arms one of the nemesis's faults (localstack/nemesis.py; docs/CHAOS.md, "The faults"): it fires
        at `rate` (0..1) where its filters (table=, operation=, function=, topic=) match, at most `count` times."""
        spec = {"kind": kind, **{name: value for name, value in filters.items() if value is not None}}
        for name, value in (("rate", rate), ("count", count), ("params", params), ("seed", seed)):
            if value is not None:
                spec[name] = value
        return self.faithful("POST", "chaos", spec)

    def arm_fault(self, operation: str, table: str | None = None, count: int = 1) -> dict:
        """The next `count` successful calls of the DynamoDB write `operation` (on `table`, if given) are
        applied and then answered 500 InternalServerError, so the SDK retries them ("applied, answer lost")."""
        return self.arm_chaos("applied-answer-lost", count=count, operation=operation, table=table)

    def faults(self) -> list[dict]:
        """Every armed fault, with how often it matched ("seen") and fired ("fired")."""
        return self.faithful("GET", "chaos")["faults"]

    def clear_faults(self) -> int:
        return self.faithful("DELETE", "chaos")["cleared"]

    def stream_records(self, table_key: str, product_or_id: str) -> list[dict]:
        """The table's stream records for one key, reshaped as Lambda delivers them."""
        arn = self.description[f"{table_key}_stream_arn"]
        key = "product_id" if table_key == "stock" else "reservation_id"
        mine = [r for r in read_stream(self.client("dynamodbstreams"), arn) if r["dynamodb"]["Keys"][key]["S"] == product_or_id]
        return [lambda_record(r, arn) for r in mine]


def read_stream(streams, stream_arn: str) -> list[dict]:
    """Every record currently in a DynamoDB stream, read through the Streams API as a consumer reads it."""
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def lambda_record(record: dict, stream_arn: str) -> dict:
    """A Streams API record in the shape a Lambda event source mapping delivers it."""
    shaped = {k: v for k, v in record.items() if k not in ("userIdentity", "dynamodb")}
    dynamodb = dict(record["dynamodb"])
    if "ApproximateCreationDateTime" in dynamodb:
        created = dynamodb["ApproximateCreationDateTime"]
        dynamodb["ApproximateCreationDateTime"] = created.timestamp() if hasattr(created, "timestamp") else created
    shaped["dynamodb"] = dynamodb
    shaped["eventSourceARN"] = stream_arn
    if "userIdentity" in record:
        shaped["userIdentity"] = {"type": record["userIdentity"]["Type"],
                                  "principalId": record["userIdentity"]["PrincipalId"]}
    return shaped


class AlertInbox:
    """Reads the alerts the stack published, from the SQS queue subscribed to its topic (or another
    queue subscribed to it, such as the digest-only one). Daily digests (message attribute kind =
    digest, a plain-text body) are kept apart, in `digests`."""

    def __init__(self, stack: Stack, queue_url: str | None = None):
        self.sqs = stack.client("sqs")
        self.queue_url = queue_url or stack.description["alerts_queue_url"]
        self.received: list[dict] = []
        self.digests: list[dict] = []

    def drain(self):
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return
            for message in messages:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                if attributes.get("kind") == "digest":
                    self.digests.append({"subject": envelope.get("Subject"), "text": envelope["Message"],
                                         "attributes": attributes})
                else:
                    self.received.append({"subject": envelope.get("Subject"), "body": json.loads(envelope["Message"]),
                                          "attributes": attributes})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def for_product(self, product: str) -> list[dict]:
        self.drain()
        return [a for a in self.received if a["body"]["product_id"] == product]

    def wait_for(self, product: str, count: int, timeout: float = 15) -> list[dict]:
        alerts = wait_for(lambda: len(self.for_product(product)) >= count and self.for_product(product),
                          timeout, what=f"{count} alert(s) for {product}")
        return alerts

    def settled(self, product: str, quiet: float = 2.0) -> list[dict]:
        """All alerts for the product once the pipeline has been quiet for `quiet` seconds."""
        seen = -1
        while True:
            time.sleep(quiet)
            alerts = self.for_product(product)
            if len(alerts) == seen:
                return alerts
            seen = len(alerts)


def new_cart_token() -> str:
    """A cart's secret, as the product page makes one: 32 random bytes, base64url."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def unique_id(prefix: str = "T") -> str:
    """A product id no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(condition, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls until condition() returns something truthy; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
