"""A history of operations on the inventory API, as the checker reads it.

Each operation is one *logical* operation: a client's request and its retries with the same
Idempotency-Key (or of an idempotent end of a hold), from the first attempt's invocation to the last
attempt's completion. Its answer is definite (a 2xx, 4xx, or 429 that API Gateway answered without
invoking anything) or unknown (`status` None: timeouts, connection errors and 5xx: it may or may not
have taken effect, within its window `[call, ret]`).

Kinds and their `args` (`hold` names the reserve operation that placed a hold, by its id):
    reserve  {quantity, warehouse (or None), key (or None), cart}    answer: the hold / 409 ...
    commit   {hold}                                                  checkout
    release  {hold}
    set      {warehouse, stock_count, expected_version (or None), key (or None)}
    adjust   {warehouse, adjust_by, expected_version (or None), key (or None)}
    get      {}                                                      answer: the warehouses' figures
    tick     {hold}       internal: the clock passed the hold's expires_at (no checkout from then on)
    lapse    {hold}       internal: TTL or the backstop returned a lapsed hold's units (for each hold
                          the tables show EXPIRED, by the time its audit entry was made)
    observe  {}           the final state read from the tables once the system is quiet
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

KINDS = ("reserve", "commit", "release", "set", "adjust", "get", "tick", "lapse", "observe")


@dataclass
class Op:
    id: int
    client: str
    product: str
    kind: str
    args: dict
    call: float
    ret: float
    status: int | None = None  # None: unknown
    body: dict | None = None
    attempts: list = field(default_factory=list)  # the status (or error name) of each attempt

    @property
    def definite(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items() if v is not None and k != "cart")
        return f"#{self.id} {self.client} {self.kind}({args}) [{self.call:.3f}–{self.ret:.3f}] → {answer(self)}"


def answer(op: Op) -> str:
    if op.status is None:
        return f"unknown ({', '.join(map(str, op.attempts)) or 'no answer'})"
    body = op.body or {}
    if "error" in body:
        extra = {k: v for k, v in body["error"].items() if k in ("available", "current_version", "stock_count")}
        return f"{op.status} {body['error'].get('code')}" + (f" {extra}" if extra else "")
    if op.kind == "get" or op.kind == "observe":
        return f"{op.status} " + "; ".join(
            f"{w['warehouse_id']}: stock {w['stock_count']} reserved {w['reserved_count']} "
            f"available {w['available']} v{w['version']}" for w in body.get("warehouses", []))
    if "status" in body:
        return f"{op.status} {body['status']} {body.get('warehouse_id', '')}×{body.get('quantity', '')}".rstrip("×")
    return str(op.status)


@dataclass
class History:
    """Every product's operations and its state before the first (per warehouse: stock, reserved,
    version; reserved must be 0: a history starts with no holds)."""
    initial: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self._ids = itertools.count(max((op.id for op in self.ops), default=-1) + 1)
        self._lock = threading.Lock()

    def add(self, **fields) -> Op:
        with self._lock:
            op = Op(id=next(self._ids), **fields)
            self.ops.append(op)
            return op

    def for_product(self, product: str) -> list[Op]:
        return [op for op in self.ops if op.product == product]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            out.write(json.dumps({"initial": self.initial, "meta": self.meta}) + "\n")
            for op in self.ops:
                out.write(json.dumps(asdict(op)) + "\n")

    @classmethod
    def load(cls, path: Path) -> "History":
        lines = path.read_text().splitlines()
        head = json.loads(lines[0])
        initial = {p: {w: tuple(v) for w, v in ws.items()} for p, ws in head["initial"].items()}
        return cls(initial=initial, ops=[Op(**json.loads(line)) for line in lines[1:] if line.strip()],
                   meta=head.get("meta", {}))
