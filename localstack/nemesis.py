"""The nemesis of the local AWS: faults that AWS really produces, on cue or at a rate.

One table of faults, armed by one kind of spec, from the launcher's start (FAITHFUL_CHAOS) or at run
time (POST /_faithful/chaos). The launcher (ministack_faithful.py) calls `fires` where each fault can
happen and answers as AWS does; this module knows no MiniStack internals, only the faults, their
dice and counters, and the error bodies AWS sends. The AWS counterpart of each kind is in
../docs/CHAOS.md, "The faults".

A spec: {"kind", "rate" (0..1), "count" (at most this many firings), filters, "params", "seed"}:
  applied-answer-lost  DynamoDB write applied, then answered 500 InternalServerError  operation, table; answer,
                       or (answer=timeout) answered only after `seconds`               seconds
  conflict             TransactWriteItems cancelled: TransactionConflict on one item   table, function; window_ms
  throttle             DynamoDB call refused, not applied: ThrottlingException or      operation, table, function;
                       ProvisionedThroughputExceededException                          error
  hot-key              writes above a partition key's (or item's) write rate refused   table; scale, per
  kill                 the function process killed after its invocation's first write  function, table, operation
  sns-publish          SNS Publish refused, not delivered: InternalError or Throttling topic; error
  stream-duplicate     a stream batch the function handled is delivered again         function, table
  stream-delay         a stream batch held back before delivery                       function, table; seconds
  ttl-lag              the TTL reaper stops for a while, then catches up               seconds
A filter left out matches everything; `function` and `topic` match any name containing them.
Each fault draws from its own random.Random(seed); a run is replayed by giving the same seed (the
same calls in the same order fire the same faults; concurrency can reorder calls).

FAITHFUL_CHAOS holds a JSON list of specs, or the short form kind:rate[:name=value...] joined by
commas, e.g. "conflict:0.05:window_ms=50,throttle:0.02:table=inventory-stock,ttl-lag:0.01:seconds=120".
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
import zlib

DYNAMODB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# AWS's per-partition write limit (WCU/s); hot-key scales it down so two cores can reach it.
PARTITION_WRITE_UNITS_PER_SECOND = 1000

# kind -> (filters it takes, {param: default}); a param whose default is a tuple takes one of those values.
KINDS: dict[str, tuple[tuple[str, ...], dict]] = {
    "applied-answer-lost": (("service", "operation", "table"), {"answer": ("500", "timeout"), "seconds": 3.0}),
    "conflict": (("table", "function"), {"window_ms": 0}),
    "throttle": (("operation", "table", "function"), {"error": ("ThrottlingException", "ProvisionedThroughputExceededException")}),
    "hot-key": (("table",), {"scale": 0.01, "per": ("partition", "item")}),
    "kill": (("function", "table", "operation"), {}),
    "sns-publish": (("topic",), {"error": ("InternalError", "Throttling")}),
    "stream-duplicate": (("function", "table"), {}),
    "stream-delay": (("function", "table"), {"seconds": 5.0}),
    "ttl-lag": ((), {"seconds": 120.0}),
}
SPEC_FIELDS = {"kind", "rate", "count", "params", "seed"}
SUBSTRING_FILTERS = {"function", "topic"}


class Fault:
    def __init__(self, spec: dict, seed):
        self.id = str(uuid.uuid4())
        self.kind = spec["kind"]
        self.rate, self.count = spec["rate"], spec["count"]
        self.filters = {name: spec.get(name) for name in KINDS[self.kind][0]}
        self.params, self.seed = spec["params"], seed
        self.random = random.Random(seed)
        self.seen = self.fired = 0

    def matches(self, attributes: dict) -> bool:
        for name, wanted in self.filters.items():
            if wanted is None:
                continue
            value = attributes.get(name)
            if name == "table":  # a call matches if any table it names is the one
                if wanted not in (value or ()):
                    return False
            elif name in SUBSTRING_FILTERS:
                if not value or wanted not in value:
                    return False
            elif value != wanted:
                return False
        return True

    def describe(self) -> dict:
        answer = {"id": self.id, "kind": self.kind, "rate": self.rate, "count": self.count, **self.filters,
                  "params": dict(self.params), "seed": self.seed, "seen": self.seen, "fired": self.fired}
        if self.count is not None:
            answer["remaining"] = self.count - self.fired
        return answer


def validated(spec) -> dict:
    """The spec with defaults filled in; ValueError naming what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError("a fault spec must be a JSON object")
    kind = spec.get("kind", "applied-answer-lost")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    filters, defaults = KINDS[kind]
    unknown = set(spec) - SPEC_FIELDS - set(filters)
    if unknown:
        raise ValueError(f"{kind} takes no {sorted(unknown)}; its filters are {list(filters)}")
    rate, count = spec.get("rate"), spec.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError("count must be a whole number from 1")
    if rate is None:
        if count is None:
            raise ValueError("give a rate (0..1), a count, or both")
        rate = 1.0
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError("rate must be a number from 0 to 1")
    for name in filters:
        value = spec.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name}, if given, must be a non-empty string")
    if spec.get("service") not in (None, "dynamodb"):
        raise ValueError('service must be "dynamodb"')
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    if set(params) - set(defaults):
        raise ValueError(f"{kind} takes params {sorted(defaults) or 'none'}, not {sorted(set(params) - set(defaults))}")
    checked = {}
    for name, default in defaults.items():
        value = params.get(name, default[0] if isinstance(default, tuple) else default)
        if isinstance(default, tuple):
            if value not in default:
                raise ValueError(f"{name} must be one of {list(default)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a number from 0")
        checked[name] = value
    if kind == "hot-key" and checked["scale"] <= 0:
        raise ValueError("scale must be above 0")
    return {**{name: spec.get(name) for name in filters}, "kind": kind, "rate": float(rate), "count": count,
            "params": checked, "seed": spec.get("seed")}


def parse_chaos(text: str) -> list[dict]:
    """FAITHFUL_CHAOS: a JSON list (or object) of specs, or kind:rate[:name=value...],... (module doc)."""
    text = text.strip()
    if not text:
        return []
    if text[0] in "[{":
        specs = json.loads(text)
        return specs if isinstance(specs, list) else [specs]
    specs = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        kind, _, rest = entry.partition(":")
        fields = rest.split(":") if rest else []
        spec: dict = {"kind": kind, "params": {}}
        if fields and "=" not in fields[0]:
            spec["rate"] = _number(fields.pop(0), entry)
        filters, defaults = KINDS.get(kind, ((), {}))
        for field in fields:
            name, equals, value = field.partition("=")
            if not equals:
                raise ValueError(f"{entry!r}: {field!r} is not name=value")
            if name in defaults:
                spec["params"][name] = value if isinstance(defaults[name], tuple) else _number(value, entry)
            elif name in ("count", "seed"):
                spec[name] = int(_number(value, entry)) if name == "count" else value
            else:
                spec[name] = value  # a filter (validated() refuses an unknown one)
        specs.append(spec)
    return specs


def _number(text: str, entry: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{entry!r}: {text!r} is not a number") from None


class Nemesis:
    """The armed faults. Called from MiniStack's event loop, its stream poller and the TTL reaper."""

    def __init__(self, seed: str | None = None):
        self.lock = threading.Lock()
        self.seed = seed or uuid.uuid4().hex[:12]
        self.faults: list[Fault] = []
        self.armed_so_far = 0  # seeds stay distinct after a clear

    def arm(self, spec) -> dict:
        spec = validated(spec)
        with self.lock:
            seed = spec["seed"] if spec["seed"] is not None else f"{self.seed}/{self.armed_so_far}/{spec['kind']}"
            self.armed_so_far += 1
            fault = Fault(spec, seed)
            self.faults.append(fault)
            return fault.describe()

    def arm_all(self, specs: list) -> list[dict]:
        for spec in specs:  # all or nothing
            validated(spec)
        return [self.arm(spec) for spec in specs]

    def active(self, kind: str) -> bool:
        """Whether a fault of this kind may still fire (cheap: no dice, no counting)."""
        return any(f.kind == kind and (f.count is None or f.fired < f.count) for f in self.faults)

    def fires(self, kind: str, when=None, **attributes) -> tuple[Fault, object] | None:
        """(fault, what `when` found) for the first fault of this kind whose filters match, where
        when(fault) finds something (if given; e.g. the item in conflict), and whose dice say it fires."""
        if not self.faults:
            return None
        with self.lock:
            for fault in self.faults:
                if fault.kind != kind or not fault.matches(attributes):
                    continue
                if fault.count is not None and fault.fired >= fault.count:
                    continue
                found = when(fault) if when else True
                if found is None:
                    continue
                fault.seen += 1
                if fault.rate >= 1 or fault.random.random() < fault.rate:
                    fault.fired += 1
                    return fault, found
        return None

    def listed(self) -> dict:
        with self.lock:
            return {"seed": self.seed, "faults": [f.describe() for f in self.faults]}

    def clear(self) -> int:
        with self.lock:
            cleared, self.faults = len(self.faults), []
        return cleared


# --- Hot keys: AWS's per-partition write limit, scaled down -----------------------------------------

class WriteRate:
    """A token bucket per key: `per_second` units a second, at most one second's worth at once."""

    def __init__(self):
        self.buckets: dict[tuple, list[float]] = {}  # key -> [tokens, at]

    def admit(self, units: dict[tuple, float], per_second: float) -> tuple | None:
        """Takes the units from every key's bucket, or none: the first key short of them, or None."""
        now = time.monotonic()
        for key, wanted in units.items():
            tokens, at = self.buckets.get(key, (per_second, now))
            tokens = min(per_second, tokens + (now - at) * per_second)
            self.buckets[key] = [tokens, now]
            if tokens < wanted:
                return key
        for key, wanted in units.items():
            self.buckets[key][0] -= wanted
        return None


# --- What AWS answers -----------------------------------------------------------------------------

def dynamodb_error(code: str, body: dict, status: int = 400) -> tuple[int, dict, bytes]:
    """DynamoDB's JSON protocol error: the type in the body's __type and in x-amzn-ErrorType."""
    payload = json.dumps({"__type": DYNAMODB_ERROR_PREFIX + code, **body}, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": str(uuid.uuid4()),
                    "x-amzn-ErrorType": code, "x-amz-crc32": str(zlib.crc32(payload) & 0xFFFFFFFF)}, payload


def internal_server_error():
    return dynamodb_error("InternalServerError", {"message": "Internal server error"}, 500)


def transaction_conflict(item_count: int, conflicting: int):
    """A TransactWriteItems cancelled because another request holds item `conflicting`."""
    reasons = [{"Code": "None"} for _ in range(item_count)]
    reasons[conflicting] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    codes = ", ".join(reason["Code"] for reason in reasons)
    return dynamodb_error("TransactionCanceledException", {
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
        "CancellationReasons": reasons})


# On an on-demand table (the stack's) a hot partition is answered ThrottlingException with this message;
# a provisioned table's refusals are ProvisionedThroughputExceededException.
ON_DEMAND_THROTTLED = ("Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
                       "scaling your table or index so please try again shortly. If exceptions persist, check if you "
                       "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
                       "bp-partition-key-design.html")
PROVISIONED_THROTTLED = ("The level of configured provisioned throughput for the table was exceeded. Consider "
                         "increasing your provisioning level with the UpdateTable API.")


def throttled(error: str, table_arn: str, write: bool, key_range: bool):
    """ThrottlingException or ProvisionedThroughputExceededException with its ThrottlingReason (the
    member is spelled throttlingReasons in the first and ThrottlingReasons in the second, as modelled)."""
    access = "Write" if write else "Read"
    if error == "ThrottlingException":  # on demand: a hot partition is what throttles
        return dynamodb_error(error, {"message": ON_DEMAND_THROTTLED, "throttlingReasons": [
            {"reason": f"Table{access}KeyRangeThroughputExceeded", "resource": table_arn}]})
    limit = "KeyRangeThroughputExceeded" if key_range else "ProvisionedThroughputExceeded"
    return dynamodb_error(error, {"message": PROVISIONED_THROTTLED, "ThrottlingReasons": [
        {"reason": f"Table{access}{limit}", "resource": table_arn}]})


SNS_ERRORS = {  # code -> (HTTP status, message), as SNS's query protocol answers Publish
    "InternalError": (500, "Internal Error"),  # modelled for Publish (InternalErrorException)
    "Throttling": (400, "Rate exceeded"),  # what a throttled Publish gets (not modelled; SDKs retry the code)
}


def sns_error(code: str) -> tuple[int, dict, bytes]:
    status, message = SNS_ERRORS[code]
    error_type = "Sender" if status < 500 else "Receiver"
    body = (f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{error_type}</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            "</ErrorResponse>").encode()
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": str(uuid.uuid4())}, body
