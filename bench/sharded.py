"""Table 8: a flash sale on one SKU, sharded stock (issue 19).

Storms of holds on one product, its stock split over N shard items (N = 1, 2, 4, ...), under the
local AWS's per-partition write limit scaled down (the nemesis's `hot-key`, docs/CHAOS.md): every
partition key of the stock table takes at most 1,000 × scale write units a second, a hold costs 2 on
its shard (a transaction), so one shard takes 500 × scale holds a second and N shards N times that.
Shoppers do not retry a 503 (throttled after the SDK's own retries); holds/s is what was granted.
Around them:
- the local AWS's own ceiling on the most shards with no limit (the scale must keep N's limit under it);
- a small sell-out on 8 shards, where shards run dry and holds spill to other shards: every unit is
  granted, nobody is refused while any shard has a unit;
- the stock table's reads per hold, counted by the local AWS per function;
- the model for AWS on paper (limits, capacity and cost per hold by N).

    python -m bench.sharded --smoke      # against the stack `make up` started (STACK_JSON), tiny sizes
    python -m bench.sharded              # the full sizes of `make bench`

Every storm ends with the item and each shard reconciled with the holds on record (invariant 2), no
unit oversold, and every granted hold on record; a failure raises. Wants a stack nothing else uses
meanwhile: the reads are counted stack-wide per function (on `make up`'s stack, the 15-minute holds of
earlier runs lapsing on sharded items add to the stream consumer's count), and the limit applies to
the whole stock table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

WAREHOUSE = "main"
SALE_STOCK = 100_000  # far more than any storm sells: nothing runs out, no hold spills for want of units
PARTITION_WCU = 1_000  # AWS: write units a second one partition (one item) takes
PARTITION_RCU = 3_000  # AWS: read units a second one partition takes
HOLD_SHARD_WCU = 2  # a hold writes its shard inside a transaction: 2 write units
NEW_TABLE_RCU = 12_000  # read units a second a new on-demand table takes at once (its warm throughput)
MAX_SHARDS = 32


# --- one item, one storm ----------------------------------------------------------------------------------

def new_item(stack, admin_token: str, shards: int, stock: int, prefix: str = "SALE") -> str:
    """A new product made through the admin API, as an operator would before a sale: the stock, then N."""
    product = f"{prefix}-{uuid.uuid4().hex[:10]}"
    created = stack.admin_put(product, {"warehouse_id": WAREHOUSE, "stock_count": stock, "threshold_level": 0,
                                        "reason": "bench: flash sale"}, admin_token)
    assert created.status_code == 201, created.text
    split = stack.admin_put(product, {"warehouse_id": WAREHOUSE, "shards": shards}, admin_token)
    assert split.status_code == 200 and split.json()["shards"] == shards, split.text
    assert len(stack.shards(product)) == shards
    return product


def storm(stack, product: str, concurrency: int, seconds: float | None = None, until_sold_out: bool = False,
          limit_seconds: float = 120) -> dict:
    """`concurrency` shoppers, each placing holds of 1 unit one after another (a new cart each, with an
    Idempotency-Key, as the product page sends), never retrying a 503: for `seconds`, or each until it
    is refused (409: sold out), at most `limit_seconds`. Holds/s counts the 201s answered in the window."""
    started = time.monotonic()
    window_end = started + (seconds if seconds is not None else limit_seconds)
    lock = threading.Lock()
    counts: Counter = Counter()
    granted_ids: list[str] = []
    refusals: list[dict] = []
    others: list[str] = []
    in_window, last_grant = [0], [0.0]

    def shopper(_):
        while time.monotonic() < window_end:
            response = stack.reserve(product, 1, WAREHOUSE, key=str(uuid.uuid4()))
            answered = time.monotonic()
            status = response.status_code
            with lock:
                counts[status] += 1
                if status in (200, 201):
                    granted_ids.append(response.json()["reservation_id"])
                    last_grant[0] = max(last_grant[0], answered - started)
                    if answered <= window_end:
                        in_window[0] += 1
                elif status == 409:
                    refusals.append(response.json()["error"])
                elif status != 503:
                    others.append(f"{status} {response.text[:200]}")
            if status == 409 and until_sold_out:
                return

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(shopper, range(concurrency)))
    elapsed = time.monotonic() - started
    attempts = sum(counts.values())
    granted = counts[200] + counts[201]
    window = seconds if seconds is not None else elapsed
    return {"product": product, "concurrency": concurrency, "seconds": window, "elapsed": elapsed,
            "attempts": attempts, "granted": granted, "refused": counts[409], "unavailable": counts[503],
            "other": len(others), "other_samples": others[:5], "granted_ids": granted_ids, "refusals": refusals,
            "per_second": in_window[0] / window, "last_grant": last_grant[0],
            "unavailable_per_1000": 1000 * counts[503] / attempts if attempts else 0.0}


def shard_for(reservation_id: str, count: int) -> int:
    """The shard a hold tries first (shared/src/sharding.rs, shard_for: the id as a 128-bit number mod N)."""
    return uuid.UUID(reservation_id).int % max(1, count)


def spilled_hold(hold: dict, count: int) -> bool:
    """Whether a hold spilled: took units from any shard but its own (a hold of one unit that spills
    takes it from one other shard; a larger one may span several)."""
    return set(hold["takes"]) != {shard_for(hold["reservation_id"], count)}


def settle(stack, product: str, stock: int, granted_ids: list[str], shards_asked: int) -> dict:
    """After a storm: the item and every shard reconciled with the holds on record, nothing oversold,
    every granted hold on record with exactly its unit; spills counted from the holds' allocations."""
    stack.assert_reconciled(product, settle=10)
    shards = stack.assert_shards_reconciled(product, settle=10)
    (on_hand, reserved, available), = stack.levels(product).values()
    assert on_hand == stock and 0 <= reserved <= on_hand and available == on_hand - reserved, \
        f"{product}: OVERSOLD or lost: stock {on_hand} (set {stock}), reserved {reserved}, available {available}"
    holds = stack.allocations(product)
    recorded = {h["reservation_id"] for h in holds}
    missing = [rid for rid in granted_ids if rid not in recorded]
    assert not missing, f"{product}: {len(missing)} granted hold(s) not on record, e.g. {missing[:3]}"
    active = [h for h in holds if h["state"] == "ACTIVE"]
    assert sum(h["quantity"] for h in active) == reserved, (product, reserved, len(active))
    spilled = sum(1 for h in holds if spilled_hold(h, shards_asked))
    return {"holds": len(holds), "spilled": spilled, "reserved": reserved, "available": available,
            "shard_available": [s["available"] for s in shards],
            "spills_per_1000": 1000 * spilled / len(holds) if holds else 0.0}


# --- what one hold reads, counted ---------------------------------------------------------------------------

def count_reads(stack, admin_token: str, shards: int, holds: int = 20, rounds: int = 3) -> dict:
    """Stock-table reads per hold, counted by the local AWS: rate-0 `throttle` faults never fire but
    count every call they match — GetItem and TransactGetItems of the stock table, made by the reserve
    function and by the stock stream's consumer (`stock_events`). Holds one at a time (no contention,
    no spill), counted until the consumer has handled their records. The counts are of the whole
    stack (any item's reads count), so each is the least of `rounds` rounds: other work only adds."""
    table = stack.description["stock_table"]
    product = new_item(stack, admin_token, shards, 1_000, prefix="READS")
    counters = {stack.arm_chaos("throttle", rate=0, operation=op, function=function, table=table)["id"]: (function, op)
                for function in ("ReserveInventory", "StockEvents") for op in ("GetItem", "TransactGetItems")}

    def quiet() -> dict:
        """The counts once they have not moved for 2 s (the item's creation handled, or the holds')."""
        seen, since, deadline = None, time.monotonic(), time.monotonic() + 30
        while time.monotonic() < deadline:
            now_seen = {counters[f["id"]]: f["seen"] for f in stack.faults() if f["id"] in counters}
            if now_seen != seen:
                seen, since = now_seen, time.monotonic()
            elif time.monotonic() - since > 2:
                break
            time.sleep(0.25)
        return seen

    per_round = []
    try:
        for _ in range(rounds):
            before = quiet()
            for _ in range(holds):
                response = stack.reserve(product, 1, WAREHOUSE, key=str(uuid.uuid4()))
                assert response.status_code == 201, response.text
            after = quiet()
            per_round.append({key: (after[key] - before[key]) / holds for key in after})
    finally:
        stack.clear_faults()
    per_hold = {key: min(counted[key] for counted in per_round) for key in per_round[0]}
    return {"shards": shards, "holds": holds, "rounds": rounds, "per_hold": per_hold}


# --- the table --------------------------------------------------------------------------------------------

def fmt(values, digits=0) -> str:
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{min(values):,.{digits}f} / **{statistics.median(values):,.{digits}f}** / {max(values):,.{digits}f}"


def sharded_table(stack, admin_token: str, shard_counts: list[int], seconds: float, concurrency: int,
                  scale: float, price: dict, repeats: int = 1, sellout_shards: int = 8,
                  sellout_per_shard: int = 5, ceiling_seconds: float = 6,
                  read_rounds: int = 3) -> tuple[dict[str, str], dict]:
    """Table 8 (module doc). Returns the markdown pieces — "storms" (the table), "sellout" (the
    sell-out's table), "reads" (the reads per hold counted), "model" (the model for AWS) — and the raw
    results; `template_fields` turns both into the template's fields."""
    table = stack.description["stock_table"]
    assert not stack.faults(), f"faults already armed on the stack: {stack.faults()}"
    assert shard_counts[0] == 1, "the baseline is N = 1"
    top = max(shard_counts)
    sellout_stock = sellout_shards * sellout_per_shard
    # The benchmark stack's holds last seconds: TTL paused throughout, so that no hold lapses while
    # reads are counted or during a storm (a lapse is one more write of its shard, and a read of the
    # item by the stream's consumer, and takes the hold off the record); they lapse after.
    pause_ttl = stack.description.get("hold_seconds", 0) < 600
    runs, sellouts = [], []
    if pause_ttl:
        stack.pause_ttl()
    try:
        print("    reads per hold, counted", flush=True)
        reads = [count_reads(stack, admin_token, n, rounds=read_rounds) for n in sorted({1, top})]
        # Every item made before the limit is armed (an admin write is a transaction over all shards).
        items = {(n, r): new_item(stack, admin_token, n, SALE_STOCK) for r in range(repeats) for n in shard_counts}
        ceiling_item = new_item(stack, admin_token, top, SALE_STOCK, prefix="CEILING")
        sellout_items = [new_item(stack, admin_token, sellout_shards, sellout_stock, prefix="SELLOUT")
                         for _ in range(repeats)]
        # What the local AWS itself serves on the most shards, without the limit: the limit's scale
        # must keep N = top well under it, or the storms measure the machine.
        print(f"    the local AWS's own ceiling: N = {top}, no limit", flush=True)
        ceiling = storm(stack, ceiling_item, concurrency, seconds=ceiling_seconds)
        assert ceiling["other"] == 0 and ceiling["unavailable"] == 0, ceiling["other_samples"]
        ceiling.update(settle(stack, ceiling_item, SALE_STOCK, ceiling["granted_ids"], top), shards=top)
        if ceiling["per_second"] < 1.5 * top * PARTITION_WCU * scale / HOLD_SHARD_WCU:
            print(f"    WARNING: the local AWS served only {ceiling['per_second']:.0f} holds/s on {top} shards with no "
                  f"limit, near the limit's {top * PARTITION_WCU * scale / HOLD_SHARD_WCU:g}: N = {top}'s figure "
                  "measures this machine too (is something else running?)", flush=True)
        stack.arm_chaos("hot-key", rate=1, table=table, params={"scale": scale, "per": "partition"})
        for r in range(repeats):
            for n in shard_counts:
                print(f"    storm: N = {n}, run {r + 1} of {repeats}", flush=True)
                run = storm(stack, items[(n, r)], concurrency, seconds=seconds)
                assert run["other"] == 0, f"unexpected answers: {run['other_samples']}"
                run.update(settle(stack, run["product"], SALE_STOCK, run["granted_ids"], n), shards=n)
                runs.append(run)
        for r, item in enumerate(sellout_items):
            print(f"    sell-out: {sellout_stock} units over {sellout_shards} shards, run {r + 1} of {repeats}", flush=True)
            sellout = storm(stack, item, concurrency, until_sold_out=True, limit_seconds=60)
            assert sellout["other"] == 0, f"unexpected answers: {sellout['other_samples']}"
            sellout.update(settle(stack, item, sellout_stock, sellout["granted_ids"], sellout_shards),
                           shards=sellout_shards)
            # A refusal is right only if the shards together had less than the hold's one unit.
            sellout["early"] = [e for e in sellout["refusals"]
                                if e.get("code") != "INSUFFICIENT_STOCK" or e.get("available", 1) >= 1]
            assert not sellout["early"], f"refused while units remained: {sellout['early'][:3]}"
            assert sellout["granted"] == sellout_stock == sellout["reserved"], \
                f"sell-out granted {sellout['granted']} of {sellout_stock} (reserved {sellout['reserved']})"
            sellouts.append(sellout)
    finally:
        stack.clear_faults()
        if pause_ttl:
            stack.resume_ttl()

    base = statistics.median(r["per_second"] for r in runs if r["shards"] == 1)
    per_shard = PARTITION_WCU * scale / HOLD_SHARD_WCU
    lines = ["| shards N | holds/s (min / **median** / max) | × N = 1 | the limit at this scale, holds/s | of the limit "
             "| 503 per 1,000 attempts | spills per 1,000 holds | granted / refused / 503 |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = {}
    for n in shard_counts:
        mine = [r for r in runs if r["shards"] == n]
        rates = [r["per_second"] for r in mine]
        ratios[n] = statistics.median(rates) / base
        lines.append(f"| {n} | {fmt(rates, 1)} | {ratios[n]:.2f} | {n * per_shard:,.1f} "
                     f"| {statistics.median(rates) / (n * per_shard):.0%} "
                     f"| {fmt([r['unavailable_per_1000'] for r in mine])} "
                     f"| {fmt([r['spills_per_1000'] for r in mine], 1)} "
                     f"| {sum(r['granted'] for r in mine):,} / {sum(r['refused'] for r in mine):,} "
                     f"/ {sum(r['unavailable'] for r in mine):,} |")
    sellout_lines = ["| run | shards N | stock | granted | refused (409) | refused with units left | 503 "
                     "| spilled holds | spills per 1,000 holds | seconds to the last unit |",
                     "|---|---|---|---|---|---|---|---|---|---|"]
    for r, s in enumerate(sellouts, 1):
        sellout_lines.append(f"| {r} | {sellout_shards} | {sellout_stock} | {s['granted']} | {s['refused']} "
                             f"| {len(s['early'])} | {s['unavailable']} | {s['spilled']} of {s['holds']} "
                             f"| {s['spills_per_1000']:.0f} | {s['last_grant']:.1f} |")
    reads_lines = ["| N | reserve: `GetItem` | reserve: `TransactGetItems` | stock stream consumer: `GetItem` "
                   "| stock stream consumer: `TransactGetItems` |", "|---|---|---|---|---|"]
    for r in reads:
        counted = r["per_hold"]
        reads_lines.append(f"| {r['shards']} | {counted[('ReserveInventory', 'GetItem')]:.2f} "
                           f"| {counted[('ReserveInventory', 'TransactGetItems')]:.2f} "
                           f"| {counted[('StockEvents', 'GetItem')]:.2f} | {counted[('StockEvents', 'TransactGetItems')]:.2f} |")
    model, model_facts = paper_model(price, reads)
    parts = {"storms": "\n".join(lines), "sellout": "\n".join(sellout_lines), "reads": "\n".join(reads_lines),
             "model": model}
    facts = {"runs": runs, "sellouts": sellouts, "reads": reads, "ceiling": ceiling, "base": base, "ratios": ratios,
             "per_shard": per_shard, "top": top, "scale": scale, "seconds": seconds, "concurrency": concurrency,
             "repeats": repeats, "read_holds": reads[0]["holds"], "read_rounds": read_rounds, **model_facts}
    return parts, facts


def template_fields(parts: dict[str, str], facts: dict) -> dict[str, str]:
    """The fields of table 8's section in bench/BENCHMARKS.template.md."""
    top, model = facts["top"], facts["model"]
    return {"sharded": parts["storms"], "sharded_sellout": parts["sellout"], "sharded_reads": parts["reads"],
            "sharded_model": parts["model"], "sharded_reads_bullet": reads_bullet(facts),
            "sharded_seconds": f"{facts['seconds']:g}", "sharded_concurrency": str(facts["concurrency"]),
            "sharded_repeats": str(facts["repeats"]), "sharded_scale": f"{facts['scale']:g}",
            "sharded_partition_wcu": f"{PARTITION_WCU * facts['scale']:g}", "sharded_per_shard": f"{facts['per_shard']:g}",
            "sharded_top": str(top), "sharded_top_limit": f"{top * facts['per_shard']:g}",
            "sharded_top_ratio": f"{facts['ratios'][top]:.1f}", "sharded_ceiling": f"{facts['ceiling']['per_second']:.0f}",
            "sharded_ceiling_seconds": f"{facts['ceiling']['seconds']:g}", "sharded_read_holds": str(facts["read_holds"]),
            "sharded_read_rounds": str(facts["read_rounds"]),
            "sharded_warm_reads": (f" Reads stay far below a new table's {NEW_TABLE_RCU:,} read units a second: "
                                   f"{model[MAX_SHARDS]['rru'] * model[MAX_SHARDS]['limit']:,.0f} at N = {MAX_SHARDS}'s "
                                   f"{model[MAX_SHARDS]['limit']:,} holds/s.")}


# --- the model for AWS -----------------------------------------------------------------------------------------

# On AWS a stream shard (one per partition: one per shard item) is read by one invocation at a time,
# so the stock stream's consumer makes a sharded item's whole read (1 GetItem + 1 TransactGetItems of
# all N shards) once per batch, whatever the batch holds. Assumed for the model: an invocation takes
# ~40 ms (reads, the alert state's write), so at most 25 batches a second per stream shard; and a
# reserve takes ~50 ms, so holds/s × 0.05 function instances, each reading the main item once per
# 2 s (it keeps the shard count and units per cart that long).
BATCHES_PER_SECOND = 25
RESERVE_SECONDS = 0.05
KEPT_SECONDS = 2
STREAM_READERS = 2  # the alerts consumer and the broadcaster each read a changed item whole per batch


def paper_model(price: dict, reads: list[dict]) -> tuple[str, dict]:
    """Holds a second one SKU takes on AWS by N, the capacity a hold uses and what it costs: DynamoDB's
    per-partition limits and on-demand prices applied to what a hold writes (table 3's "Requests and
    capacity per successful hold") and to what is read (above: per batch of the stream, and per
    function instance every 2 s, not per hold): a strongly consistent GetItem of the main item is 1
    read unit on shard 0, a TransactGetItems of all N shards 2 on each (shard 0 among them)."""
    lines = ["| N | write limit: holds/s (500 × N) | read units a second on shard 0 at that rate (it takes 3,000) "
             "| **holds/s per SKU** | write units per hold | read units per hold | DynamoDB $ per million holds "
             "| × N = 1 | stock table WCU/s at 500 × N |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = {}
    for n in (1, 2, 4, 8, 16, MAX_SHARDS):
        limit = PARTITION_WCU // HOLD_SHARD_WCU * n
        if n == 1:
            # An unsharded hold reads its item once (strongly consistent): 1 read unit, on its partition.
            shard0, rru = limit * 1, 1.0
        else:
            instances = limit * RESERVE_SECONDS
            reserve_reads = instances / KEPT_SECONDS  # GetItem of the main item, per instance every 2 s
            consumer_batches = STREAM_READERS * n * BATCHES_PER_SECOND  # each reader's batches of each stream shard
            shard0 = reserve_reads + consumer_batches * (1 + 2)  # its GetItem, and its part of each TransactGetItems
            rru = (reserve_reads + consumer_batches * (1 + 2 * n)) / limit
        wru = 8 + 1  # the transaction: shard, hold, cart record, request record (2 each); the audit entry (1)
        dollars = (wru * price["wru"] + rru * price["rru"]) * 1e6
        rows[n] = {"limit": limit, "shard0_rru": shard0, "wru": wru, "rru": rru, "dollars": dollars}
        lines.append(f"| {n} | {limit:,} | {shard0:,.0f} | **{limit:,}** | {wru} | {rru:.2f} | ${dollars:.2f} "
                     f"| {dollars / rows[1]['dollars']:.2f} | {HOLD_SHARD_WCU * limit:,} |")
    return "\n".join(lines), {"model": rows}


def reads_bullet(facts: dict) -> str:
    """The model's paragraph on reads."""
    model = facts["model"]
    top = model[MAX_SHARDS]
    over = [n for n, row in model.items() if n > 1 and row["shard0_rru"] > PARTITION_RCU]
    return wrap(
        f"- **Reads do not cap the holds.** A hold on a sharded item reads no shard on its way: the reserve "
        f"reads the main item once per function instance every {KEPT_SECONDS} s, and the stock stream's two "
        f"readers (the alerts consumer and the broadcaster) read a changed item whole once per batch of its "
        f"records (counted above with holds one at a time, each record its own batch: the most they read; in a "
        f"sale a batch carries many records). Assumed: {BATCHES_PER_SECOND} batches a second per reader on each "
        f"of the N stream shards, {RESERVE_SECONDS * 1000:.0f} ms a reserve. "
        + (f"From N = {over[0]} on that is more than shard 0's 3,000 read units a second: the readers are then "
           f"throttled and take fewer, larger batches (their reads are per batch, not per record), so alerts and "
           f"pushes lag a little while the holds, which are writes, keep their rate. " if over else "")
        + f"Read units per hold: {top['rru']:.2f} at N = {MAX_SHARDS} (${model[1]['dollars']:.2f} at N = 1 and "
        f"${top['dollars']:.2f} at N = {MAX_SHARDS} per million holds in DynamoDB).")


def wrap(bullet: str) -> str:
    """A list item wrapped as the document's text is."""
    return textwrap.fill(bullet, width=102, subsequent_indent="  ", break_on_hyphens=False)


def main() -> int:
    from bench.run import PRICE  # here: bench.run imports this module
    from localstack.inventory_client import Stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = parser.parse_args()
    stack = Stack.load()
    sizes = SMOKE if args.smoke else FULL
    started = time.monotonic()
    parts, facts = sharded_table(stack, stack.token("admin"), price=PRICE, **sizes)
    print(*parts.values(), reads_bullet(facts), sep="\n\n")
    print(f"\n{time.monotonic() - started:.0f} s; N = 1: {facts['base']:.1f} holds/s")
    return 0


# The sizes of `make bench` (bench/run.py uses these too).
SCALE = 0.005
FULL = {"shard_counts": [1, 2, 4, 8, 16], "seconds": 12, "concurrency": 24, "scale": SCALE, "repeats": 3}
SMOKE = {"shard_counts": [1, 2], "seconds": 3, "concurrency": 8, "scale": SCALE, "repeats": 1, "ceiling_seconds": 2,
         "read_rounds": 1}


if __name__ == "__main__":
    sys.exit(main())
