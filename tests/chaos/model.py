"""The service as a sequential model, one product at a time (README "API" and shared/src/service.rs,
holds.rs, admin.rs, store.rs): per warehouse stock, reserved and version; per hold its warehouse and
state. `step(state, op)` gives every state the operation may lead to with the answer observed; none
means the answer is impossible from that state.

A state is immutable and cheap to hash (the checker memoises on it): a tuple of (stock, reserved,
version) per warehouse, and `bytes` with one byte per reserve operation of the history: the hold it
placed, `state << 3 | warehouse index` (0: no hold).
"""

from __future__ import annotations

from dataclasses import dataclass

from .history import Op

ABSENT, ACTIVE, ACTIVE_PAST, COMMITTED, RELEASED, EXPIRED = range(6)
NAMES = {ACTIVE: "ACTIVE", ACTIVE_PAST: "ACTIVE", COMMITTED: "COMMITTED", RELEASED: "RELEASED", EXPIRED: "EXPIRED"}
MAX_STOCK = 10**9


@dataclass(frozen=True)
class State:
    levels: tuple  # ((stock, reserved, version), ...) in the model's warehouse order
    holds: bytes

    def hold(self, slot: int) -> tuple[int, int]:
        """(state, warehouse index) of the hold in `slot`."""
        code = self.holds[slot]
        return code >> 3, code & 7


class Model:
    def __init__(self, warehouses: list[str], initial: dict[str, tuple[int, int, int]], ops: list[Op]):
        self.warehouses = list(warehouses)
        self.index = {w: i for i, w in enumerate(self.warehouses)}
        reserves = [op for op in ops if op.kind == "reserve"]
        self.slot = {op.id: i for i, op in enumerate(reserves)}
        self.quantity = {op.id: op.args["quantity"] for op in reserves}
        self.initial = State(tuple(tuple(initial[w]) for w in self.warehouses), bytes(len(reserves)))
        if any(reserved for _, reserved, _ in self.initial.levels):
            raise ValueError("a history starts with no holds: initial reserved must be 0")

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _with_level(state: State, w: int, stock: int, reserved: int, version: int) -> State:
        levels = list(state.levels)
        levels[w] = (stock, reserved, version)
        return State(tuple(levels), state.holds)

    @staticmethod
    def _with_hold(state: State, slot: int, hold_state: int, w: int) -> State:
        holds = bytearray(state.holds)
        holds[slot] = hold_state << 3 | w
        return State(state.levels, bytes(holds))

    def describe(self, state: State) -> str:
        levels = "; ".join(f"{w}: stock {s} reserved {r} available {s - r} v{v}"
                           for w, (s, r, v) in zip(self.warehouses, state.levels))
        holds = [f"#{op_id} {NAMES[state.hold(slot)[0]]}{'(past expiry)' if state.hold(slot)[0] == ACTIVE_PAST else ''}"
                 f" {self.warehouses[state.hold(slot)[1]]}×{self.quantity[op_id]}"
                 for op_id, slot in self.slot.items() if state.hold(slot)[0] in (ACTIVE, ACTIVE_PAST)]
        return levels + ("; active holds: " + ", ".join(holds) if holds else "; no active holds")

    def available(self, state: State, w: int) -> int:
        stock, reserved, _ = state.levels[w]
        return stock - reserved

    # --- the operations ------------------------------------------------------------------------
    def step(self, state: State, op: Op) -> list[State]:
        return getattr(self, f"_{op.kind}")(state, op)

    def _reserve(self, state: State, op: Op) -> list[State]:
        q, wanted = op.args["quantity"], op.args.get("warehouse")
        candidates = [self.index[wanted]] if wanted is not None else range(len(self.warehouses))
        if wanted is not None and wanted not in self.index:
            return [state] if op.status in (None, 404) else []
        covering = [w for w in candidates if self.available(state, w) >= q]

        def place(w: int) -> State:
            stock, reserved, version = state.levels[w]
            return self._with_hold(self._with_level(state, w, stock, reserved + q, version), self.slot[op.id], ACTIVE, w)

        if op.status is None:  # may or may not have placed its hold
            return [state] + [place(w) for w in covering]
        body = op.body or {}
        if op.status in (200, 201):
            w = self.index.get(body.get("warehouse_id"))
            shown = body.get("status")
            # A retry answered 200 shows the hold as it is at the retry: it may have lapsed since.
            if w not in covering or body.get("quantity") != q or shown not in (("ACTIVE",) if op.status == 201
                                                                               else ("ACTIVE", "EXPIRED")):
                return []
            return [place(w)]
        code = body.get("error", {}).get("code")
        if op.status == 409 and code == "INSUFFICIENT_STOCK" and not covering:
            # With a warehouse, the transaction's refusal reports that warehouse's units at that moment.
            if wanted is not None and body["error"].get("available") != max(self.available(state, self.index[wanted]), 0):
                return []
            return [state]
        if op.status == 429:
            return [state]  # refused by the stage's throttling, nothing invoked
        return []

    def _end(self, state: State, op: Op, commit: bool) -> list[State]:
        slot = self.slot.get(op.args["hold"])
        if slot is None:
            return []
        hold, w = state.hold(slot)
        q = self.quantity[op.args["hold"]]
        stock, reserved, version = state.levels[w]
        if commit:
            can = hold == ACTIVE and stock >= q
            applied = self._with_hold(self._with_level(state, w, stock - q, reserved - q, version + 1), slot, COMMITTED, w)
        else:
            can = hold in (ACTIVE, ACTIVE_PAST)
            applied = self._with_hold(self._with_level(state, w, stock, reserved - q, version), slot, RELEASED, w)
        if op.status is None:
            return [state, applied] if can else [state]
        if op.status == 429:
            return [state]
        code = (op.body or {}).get("error", {}).get("code")
        shown = (op.body or {}).get("status")
        if hold == ABSENT:
            return []
        # A lapsed hold's record is gone between its TTL delete and the expiry consumer writing it
        # back as EXPIRED: to its holder it does not exist for that moment.
        if op.status == 404 and code == "RESERVATION_NOT_FOUND" and hold in (ACTIVE_PAST, EXPIRED):
            return [state]
        if commit:
            if op.status == 200 and shown == "COMMITTED":
                return [applied] if can else ([state] if hold == COMMITTED else [])
            if op.status == 410 and code == "RESERVATION_EXPIRED":
                return [state] if hold in (ACTIVE_PAST, EXPIRED) else []
            if op.status == 409 and code == "RESERVATION_RELEASED":
                return [state] if hold == RELEASED else []
            if op.status == 409 and code == "INSUFFICIENT_STOCK":
                return [state] if hold == ACTIVE and stock < q and op.body["error"].get("available") == max(stock, 0) else []
            return []
        if op.status == 200 and shown == "RELEASED":
            return [applied] if can else ([state] if hold == RELEASED else [])
        if op.status == 200 and shown == "EXPIRED":
            return [state] if hold == EXPIRED else []
        if op.status == 409 and code == "RESERVATION_COMMITTED":
            return [state] if hold == COMMITTED else []
        return []

    def _commit(self, state: State, op: Op) -> list[State]:
        return self._end(state, op, commit=True)

    def _release(self, state: State, op: Op) -> list[State]:
        return self._end(state, op, commit=False)

    def _admin(self, state: State, op: Op, new_stock) -> list[State]:
        w = self.index.get(op.args["warehouse"])
        if w is None:
            return []
        stock, reserved, version = state.levels[w]
        expected = op.args.get("expected_version")
        version_ok = expected is None or expected == version
        target = new_stock(stock)
        stock_ok = 0 <= target <= MAX_STOCK
        applied = self._with_level(state, w, target, reserved, version + 1)
        if op.status is None:
            return [state, applied] if version_ok and stock_ok else [state]
        if op.status == 429:
            return [state]
        error = (op.body or {}).get("error", {})
        if op.status == 200:
            # The answer's figures are read after the write (service.rs update_stock): only its
            # version can be held to it, as at least the write's own.
            return [applied] if version_ok and stock_ok and op.body.get("version", 0) >= version + 1 else []
        if op.status == 409 and error.get("code") == "VERSION_CONFLICT":
            return [state] if not version_ok and error.get("current_version") == version else []
        if op.status == 409 and error.get("code") in ("STOCK_BELOW_ZERO", "STOCK_ABOVE_LIMIT"):
            return [state] if version_ok and not stock_ok and error.get("stock_count") == stock else []
        return []

    def _set(self, state: State, op: Op) -> list[State]:
        return self._admin(state, op, lambda stock: op.args["stock_count"])

    def _adjust(self, state: State, op: Op) -> list[State]:
        return self._admin(state, op, lambda stock: stock + op.args["adjust_by"])

    def _get(self, state: State, op: Op) -> list[State]:
        if op.status is None or op.status == 429:
            return [state]
        return [state] if op.status == 200 and self._shows(state, op.body) else []

    def _shows(self, state: State, body: dict) -> bool:
        """Whether a read's figures are the state's, every warehouse and the totals."""
        seen = {w["warehouse_id"]: w for w in body.get("warehouses", [])}
        if set(seen) != set(self.warehouses):
            return False
        for w, (stock, reserved, version) in zip(self.warehouses, state.levels):
            shown = seen[w]
            if (shown["stock_count"], shown["reserved_count"], shown["available"], shown["version"]) != \
                    (stock, reserved, stock - reserved, version):
                return False
        if "stock_count" in body:  # GET's totals
            totals = [sum(level[i] for level in state.levels) for i in range(2)]
            if (body["stock_count"], body["reserved_count"], body["available"]) != (*totals, totals[0] - totals[1]):
                return False
        return True

    def _tick(self, state: State, op: Op) -> list[State]:
        slot = self.slot.get(op.args["hold"])
        if slot is None:
            return [state]
        hold, w = state.hold(slot)
        if hold != ACTIVE:
            return [state]
        ticked = self._with_hold(state, slot, ACTIVE_PAST, w)
        return [ticked] if op.definite else [state, ticked]  # cut off by a prefix: not yet, or already

    def _lapse(self, state: State, op: Op) -> list[State]:
        """TTL or the backstop returned a lapsed hold's units (the audit trail says when, at the latest)."""
        slot = self.slot[op.args["hold"]]
        hold, w = state.hold(slot)
        # A hold whose placing answer was lost was never ticked: no one could check it out anyway.
        if hold == ACTIVE_PAST or (hold == ACTIVE and op.args.get("anonymous")):
            stock, reserved, version = state.levels[w]
            lapsed = self._with_hold(self._with_level(state, w, stock, reserved - self.quantity[op.args["hold"]],
                                                      version), slot, EXPIRED, w)
            return [lapsed] if op.definite else [state, lapsed]  # cut off by a prefix: not yet, or already
        return [] if op.definite else [state]

    def _observe(self, state: State, op: Op) -> list[State]:
        """The final read: figures, and each reserve operation's hold as the table has it."""
        if not op.definite:  # cut off by a prefix
            return [state]
        if not self._shows(state, op.body):
            return []
        holds = op.body.get("holds", {})
        if op.body.get("phantoms"):
            return []
        for op_id, slot in self.slot.items():
            hold, w = state.hold(slot)
            recorded = holds.get(str(op_id))
            if hold == ABSENT:
                if recorded is not None:
                    return []
            elif recorded is None or recorded["state"] != NAMES[hold] or recorded["warehouse_id"] != self.warehouses[w]:
                return []
        return [state]
