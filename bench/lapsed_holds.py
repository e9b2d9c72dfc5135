"""Table 6: lapsed holds back on sale by the backstop alone, with DynamoDB TTL paused (as AWS, where
TTL deletes "within a few days"). The holds are written straight into the tables, already past their
expiry, exactly as a hold is stored (so that placing 10,000 of them does not dominate the run);
then the backstop is invoked until none is left, and the time is taken from the first invocation."""

from __future__ import annotations

import time
import uuid


def sweep_shard(reservation_id: str) -> str:
    return f"ACTIVE#{ord(reservation_id[0]) % 4}"  # shared/src/store/dynamo.rs, sweep_shard


def place_lapsed(stack, products: int, holds: int) -> list[str]:
    table, now = stack.description["reservations_table"], int(time.time())
    names = [f"LAPSED-{uuid.uuid4().hex[:10]}" for _ in range(products)]
    per_product = holds // products
    for name in names:
        stack.put_stock_item(name, "main", stock=2 * per_product, threshold=0, reserved=per_product)
    requests = []
    for name in names:
        for _ in range(per_product):
            rid = str(uuid.uuid4())
            requests.append({"PutRequest": {"Item": {
                "reservation_id": {"S": rid}, "product_id": {"S": name}, "warehouse_id": {"S": "main"},
                "quantity": {"N": "1"}, "state": {"S": "ACTIVE"}, "created_at": {"N": str(now - 60)},
                "expires_at": {"N": str(now - 1)}, "request_fingerprint": {"S": "quantity=1;warehouse=main"},
                "purge_at": {"N": str(now - 1)}, "sweep_shard": {"S": sweep_shard(rid)},
                "sweep_due_at": {"N": str(now - 1)}, "active_item": {"S": f"{name}#main"}}}})
    for start in range(0, len(requests), 25):
        batch = {table: requests[start:start + 25]}
        while batch:
            batch = stack.dynamodb.batch_write_item(RequestItems=batch).get("UnprocessedItems") or None
    return names


def lapsed_holds_table(stack, products: int, holds: int) -> tuple[str, dict]:
    with stack.ttl_paused():
        names = place_lapsed(stack, products, holds)
        started, runs, released, reports = time.perf_counter(), 0, 0, []
        while released < holds and runs < 10:
            report = stack.invoke("check_thresholds", {})
            reports.append(report)
            runs += 1
            released += report["holds_released"]
        seconds = time.perf_counter() - started
    on_sale = all(stack.levels(name)["main"][1] == 0 for name in names)
    assert released == holds and on_sale, f"released {released} of {holds}; reports {reports}"
    per_second = holds / seconds
    lines = ["| lapsed holds | products | backstop runs | seconds, first run to all back on sale | holds/s "
             "| × the 2-minute bound's need |",
             "|---|---|---|---|---|---|",
             f"| {holds:,} | {products} | {runs} | {seconds:.1f} | {per_second:,.0f} "
             f"| {per_second / (holds / 120):.1f} |"]
    return "\n".join(lines), {"seconds": seconds, "runs": runs, "per_second": per_second}
