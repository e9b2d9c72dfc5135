"""The linearizability checker (Wing & Gong's search with porcupine's memo on (linearized set, model
state)) and the final invariants, per product: histories compose per product, since no operation
touches two products.

`check_product` searches for an order of the operations, each placed within its window [call, ret],
in which the model (model.py) gives every definite answer observed. Unknown answers may or may not
have taken effect, inside their window. When no order exists, the shortest failing prefix is found
by bisection and reported with the model's state at the furthest point reached and the operations
that could not be placed after it.
"""

from __future__ import annotations

import calendar
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from .history import History, Op
from .model import Model, State

# States explored before a product's search gives up as undecided (reported, counted as a failure).
SEARCH_BUDGET = 3_000_000


@dataclass
class Verdict:
    product: str
    ok: bool
    ops: int
    explored: int = 0
    report: str = ""


@dataclass
class Search:
    ok: bool | None  # None: budget exhausted
    explored: int
    deepest: list = field(default_factory=list)  # op indices of the longest linearized path
    deepest_state: State | None = None


def search(model: Model, ops: list[Op], budget: int = SEARCH_BUDGET) -> Search:
    """Depth-first search for a linearization of `ops` (sorted by call)."""
    n = len(ops)
    call = [op.call for op in ops]
    ret = [op.ret for op in ops]
    full = (1 << n) - 1
    seen: set = set()
    best = Search(ok=False, explored=0, deepest=[], deepest_state=model.initial)

    def successors(mask: int, state: State):
        lo = (~mask & (mask + 1)).bit_length() - 1  # the first operation not yet placed
        earliest_ret, pending = float("inf"), []
        i = lo
        while i < n and call[i] <= earliest_ret:
            if not (mask >> i) & 1:
                pending.append(i)
                earliest_ret = min(earliest_ret, ret[i])
            i += 1
        # An operation may come next only if none still pending completed before it was invoked.
        for i in pending:
            if call[i] <= earliest_ret:
                for after in model.step(state, ops[i]):
                    yield i, after

    path: list[int] = []
    masks = [0]  # the set placed so far, at each depth
    stack = [successors(0, model.initial)]
    while stack:
        for i, after in stack[-1]:
            mask = masks[-1] | 1 << i
            if (mask, after) in seen:
                continue
            seen.add((mask, after))
            path.append(i)
            if len(path) > len(best.deepest):
                best.deepest, best.deepest_state = list(path), after
            if mask == full:
                best.ok, best.explored = True, len(seen)
                return best
            if len(seen) >= budget:
                best.ok, best.explored = None, len(seen)
                return best
            masks.append(mask)
            stack.append(successors(mask, after))
            break
        else:
            stack.pop()
            if path:
                path.pop()
                masks.pop()
    best.explored = len(seen)
    return best


def check_product(product: str, warehouses: list[str], initial: dict, ops: list[Op],
                  budget: int = SEARCH_BUDGET) -> Verdict:
    ops = sorted(ops, key=lambda op: (op.call, op.id))
    model = Model(warehouses, initial, ops)
    result = search(model, ops, budget)
    if result.ok:
        return Verdict(product, True, len(ops), result.explored)
    if result.ok is None:
        return Verdict(product, False, len(ops), result.explored,
                       f"{product}: undecided: the search gave up after {result.explored:,} states")
    return Verdict(product, False, len(ops), result.explored, failing_window(product, model, ops, budget))


def prefix_of(ops: list[Op], k: int) -> list[Op]:
    """The history as it stood when the k-th operation was invoked: the first k operations, those
    still running then unknown (they may or may not take effect), as Knossos cuts a history."""
    now = ops[k - 1].call
    return [op if op.ret <= now else replace(op, status=None, body=None) for op in ops[:k]]


def failing_window(product: str, model: Model, ops: list[Op], budget: int) -> str:
    """The shortest prefix (by invocation) with no linearization, and where the search got stuck in it."""
    initial = dict(zip(model.warehouses, model.initial.levels))

    def fails(k: int) -> bool:
        prefix = prefix_of(ops, k)
        return search(Model(model.warehouses, initial, prefix), prefix, budget).ok is False

    lo, hi = 1, len(ops)  # a prefix of a linearizable history is linearizable: bisect the first failing one
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(mid):
            hi = mid
        else:
            lo = mid + 1
    prefix = prefix_of(ops, lo)
    prefix_model = Model(model.warehouses, initial, prefix)
    stuck = search(prefix_model, prefix, budget)
    placed = set(stuck.deepest)
    lines = [f"{product}: NOT LINEARIZABLE. The shortest failing prefix is {lo} of {len(ops)} operations "
             f"(through #{prefix[-1].id}; operations still running then count as unknown); the search placed "
             f"at most {len(placed)} of them.",
             "  last placed: " + ("; ".join(prefix[i].describe() for i in stuck.deepest[-3:]) or "none"),
             f"  model state then: {prefix_model.describe(stuck.deepest_state)}",
             "  could not be placed after that (the failing window):"]
    lines += [f"    {op.describe()}" for i, op in enumerate(prefix) if i not in placed]
    return "\n".join(lines)


# --- The final invariants ---------------------------------------------------------------------------

def status_for(available: int, threshold: int) -> str:
    """domain.rs StockStatus::for_levels."""
    return "OUT_OF_STOCK" if available <= 0 else "LOW_STOCK" if available <= threshold else "IN_STOCK"


def crossing(recorded: str | None, available: int, threshold: int) -> tuple[str, str | None] | None:
    """alerts.rs `crossing`: (state to record, alert to send) or None to stay."""
    band = max(threshold // 5, 1)
    level = status_for(available, threshold)
    recovered = available > threshold + band
    current = recorded or "IN_STOCK"
    if current == "IN_STOCK" and level == "LOW_STOCK":
        return "LOW_STOCK", "LOW_STOCK"
    if current in ("IN_STOCK", "LOW_STOCK") and level == "OUT_OF_STOCK":
        return "OUT_OF_STOCK", "OUT_OF_STOCK"
    if current in ("LOW_STOCK", "OUT_OF_STOCK") and recovered:
        return "IN_STOCK", "BACK_IN_STOCK"
    if current == "IN_STOCK" and level == "IN_STOCK" and recorded is None:
        return "IN_STOCK", None
    return None


def expected_alerts(entries: list[dict]) -> list[str]:
    """The alerts one warehouse's changes call for, the audit trail's figures folded through the
    alert state from the item's creation."""
    state, alerts = None, []
    for entry in entries:
        after = entry["after"]
        change = crossing(state, after["available"], after["threshold_level"])
        if change:
            state, alert = change
            if alert:
                alerts.append(alert)
    return alerts


NEXT_STATE = {"LOW_STOCK": "LOW_STOCK", "OUT_OF_STOCK": "OUT_OF_STOCK", "BACK_IN_STOCK": "IN_STOCK"}


# alerts.rs `Cause::Holds`: holds coming and going, and the writes that cannot move `available`.
HOLD_CHANGES = ("hold", "released", "expired", "committed", "limit")


def alerted(product: str, w: str, chain: list[dict], item: dict, alerts: list[dict], quiet: int = 0) -> list[str]:
    """One alert per crossing the pipeline saw, none lost: the alerts (deduplicated by alert_id) in the
    order they were made follow the alert state machine from the item's creation, each announcing
    figures the item really had (a state in its audit trail) that call for it; at rest the last
    announced state is what the counters call for. (A crossing that a later change superseded before
    the pipeline read it is not announced: `expected_alerts` counts those too, for the report.)
    Damping: an alert caused by holds coming and going comes a quiet period (`quiet` seconds) after
    the one before it at the earliest, unless it is OUT_OF_STOCK."""
    unique = sorted({a["alert_id"]: a for a in alerts}.values(), key=lambda a: a["at"])
    real = {(e["after"]["stock_count"], e["after"]["reserved_count"], e["after"]["threshold_level"]) for e in chain}
    problems = []
    for before, after in zip(unique, unique[1:]) if quiet else ():
        gap = parse_rfc3339(after["at"]) - parse_rfc3339(before["at"])
        if after["type"] != "OUT_OF_STOCK" and after.get("cause") in HOLD_CHANGES and gap < quiet:
            problems.append(f"{product}/{w}: {after['type']} ({after['alert_id']}, caused by a {after['cause']}) "
                            f"{gap} s after the alert before it, inside the quiet period of {quiet} s")
    for alert in unique:
        figures = (alert["stock_count"], alert["reserved_count"], alert["threshold_level"])
        if figures not in real:
            problems.append(f"{product}/{w}: alert {alert['alert_id']} ({alert['type']}) announces figures {figures} "
                            "the item never had")
    # Alerts made within the same second may have been made in either order: any order that follows
    # the state machine will do.
    states = {None}
    for _, group in itertools.groupby(unique, key=lambda a: a["at"]):
        group = list(group)
        orders = list(itertools.permutations(group)) if len(group) <= 5 else [group]
        states = {end for start in states for order in orders for end in [follow(start, order)] if end != "invalid"}
        if not states:
            return problems + [f"{product}/{w}: alerts out of the state machine's order (an alert twice, or one "
                               f"lost between): {[a['type'] for a in unique]}"]
    at_rest = crossing(item.get("status"), item["available_count"], item["threshold_level"])
    if "pending_alert" in item or (at_rest and at_rest[1]):
        problems.append(f"{product}/{w}: at rest the item's alert state {item.get('status')} is not what its "
                        f"counters call for (available {item['available_count']}), or an alert is pending")
    announced = {state or "IN_STOCK" for state in states}
    if (item.get("status") or "IN_STOCK") not in announced:
        problems.append(f"{product}/{w}: the item's alert state at rest is {item.get('status')}, but the alerts "
                        f"sent leave it at {sorted(announced)}")
    return problems


def parse_rfc3339(at: str) -> int:
    return calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))


def follow(state: str | None, alerts) -> str | None:
    """The alert state after `alerts` from `state` ("invalid" if one of them could not be sent from there)."""
    for alert in alerts:
        current = state or "IN_STOCK"
        allowed = {"IN_STOCK": ("LOW_STOCK", "OUT_OF_STOCK"), "LOW_STOCK": ("OUT_OF_STOCK", "BACK_IN_STOCK"),
                   "OUT_OF_STOCK": ("BACK_IN_STOCK",)}[current]
        if alert["type"] not in allowed:
            return "invalid"
        state = NEXT_STATE[alert["type"]]
    return state


def stream_order(entry: dict) -> int:
    """An audit entry's place in its item's changes: the stream sequence number in its entry_id
    (`<writer's time>#<sequence>`): one item's records are in one shard, in the order of its writes."""
    return int(entry["entry_id"].rsplit("#", 1)[1])


def misordered(entries: list[dict]) -> list[tuple[str, str]]:
    """Pairs of one item's consecutive changes that the audit trail (ordered by entry_id, as
    GET …/history pages it) lists in the opposite order of the changes themselves."""
    pairs = []
    for w in {e["warehouse_id"] for e in entries}:
        mine = sorted((e for e in entries if e["warehouse_id"] == w), key=stream_order)
        pairs += [(a["entry_id"], b["entry_id"]) for a, b in zip(mine, mine[1:]) if a["entry_id"] > b["entry_id"]]
    return pairs


def check_final(product: str, observation: dict, entries: list[dict], alerts: list[dict]) -> list[str]:
    """The invariants on the state at rest: `observation` is the final read (items and every hold of
    the product from the tables), `entries` the product's audit trail, `alerts` the messages received
    (each an alert body). Returns the violations, each a sentence."""
    problems = []
    holds = observation["all_holds"]
    by_warehouse = defaultdict(list)
    for entry in entries:
        by_warehouse[entry["warehouse_id"]].append(entry)
    for item in observation["items"]:
        w = item["warehouse_id"]
        stock, reserved, available = item["stock_count"], item["reserved_count"], item["available_count"]
        if available != stock - reserved:
            problems.append(f"{product}/{w}: available {available} != stock {stock} - reserved {reserved}")
        active = sum(h["quantity"] for h in holds if h["warehouse_id"] == w and h["state"] == "ACTIVE")
        if reserved != active:
            problems.append(f"{product}/{w}: reserved {reserved} but its ACTIVE holds hold {active}")
        lapsed = [h["reservation_id"] for h in holds if h["warehouse_id"] == w and h["state"] == "ACTIVE"
                  and h["expires_at"] < observation["at"]]
        if lapsed:
            problems.append(f"{product}/{w}: holds past expiry still ACTIVE at rest: {lapsed}")
        chain = sorted(by_warehouse[w], key=stream_order)
        problems += conserved(product, w, chain, item, holds)
        problems += alerted(product, w, chain, item, [a for a in alerts if a["warehouse_id"] == w],
                            observation.get("alert_quiet_seconds", 0))
    ended = Counter(e["reservation_id"] for e in entries if e["kind"] in ("committed", "released", "expired"))
    twice = sorted(rid for rid, count in ended.items() if count > 1)
    if twice:
        problems.append(f"{product}: holds that left ACTIVE more than once (audit trail): {twice}")
    return problems


def conserved(product: str, w: str, chain: list[dict], item: dict, holds: list[dict]) -> list[str]:
    """Units conserved: the audit trail is one unbroken chain of figures from the item's creation to
    its counters now; only admin changes move the shelf count, except checkouts, which take exactly
    the units of the holds sold; holds move `reserved` by their quantity."""
    problems = []
    quantity = {h["reservation_id"]: h["quantity"] for h in holds}
    if not chain or chain[0]["before"] is not None:
        return [f"{product}/{w}: the audit trail does not start at the item's creation"]
    for before, entry in zip(chain, chain[1:]):
        if entry["before"] != before["after"]:
            return [f"{product}/{w}: audit trail broken at {entry['entry_id']}: before {entry['before']}, "
                    f"but the change before it left {before['after']}"]
    last = chain[-1]["after"]
    if (last["stock_count"], last["reserved_count"]) != (item["stock_count"], item["reserved_count"]):
        problems.append(f"{product}/{w}: the audit trail ends at {last}, the item is at {item}")
    sold = sum(h["quantity"] for h in holds if h["warehouse_id"] == w and h["state"] == "COMMITTED")
    taken = 0
    for entry in chain[1:]:
        d_stock = entry["after"]["stock_count"] - entry["before"]["stock_count"]
        d_reserved = entry["after"]["reserved_count"] - entry["before"]["reserved_count"]
        kind, q = entry["kind"], quantity.get(entry.get("reservation_id"), 0)
        expected = {"hold": (0, q), "released": (0, -q), "expired": (0, -q), "committed": (-q, -q)}.get(kind)
        if kind == "committed":
            taken -= d_stock
        if expected is not None and (d_stock, d_reserved) != expected:
            problems.append(f"{product}/{w}: {kind} of {entry.get('reservation_id')} (×{q}) moved stock by "
                            f"{d_stock} and reserved by {d_reserved}")
        elif expected is None and kind not in ("set", "adjust", "threshold", "limit", "reconciled"):
            problems.append(f"{product}/{w}: unknown change {kind}")
        elif kind == "reconciled" and d_stock:
            problems.append(f"{product}/{w}: the reconciler moved the shelf count by {d_stock}")
    if taken != sold:
        problems.append(f"{product}/{w}: checkouts took {taken} units off the shelf, the holds sold {sold}")
    return problems


def check_history(history: History, finals: dict | None = None, budget: int = SEARCH_BUDGET) -> list[Verdict]:
    """Every product of the history. `finals`: product -> (observation, audit entries, alerts) for the
    final invariants, when the history ran against a stack."""
    verdicts = []
    for product, initial in history.initial.items():
        verdict = check_product(product, sorted(initial), initial, history.for_product(product), budget)
        if finals and product in finals:
            problems = check_final(product, *finals[product])
            if problems:
                verdict.ok = False
                verdict.report = "\n".join(filter(None, [verdict.report, *problems]))
        verdicts.append(verdict)
    return verdicts
