"""`make bench`: runs every benchmark on this machine and rewrites docs/BENCHMARKS.md.

    python -m bench.run                 # the full run (a few minutes), rewrites docs/BENCHMARKS.md
    python -m bench.run --smoke --out F # a tiny run (make test), written to F: the benchmarks never rot

Brings up a stack of its own (own MiniStack on a free port, 3-second holds) and stops it at the end.
Figures are ratios against a baseline measured in the same run; absolute times on a shared 2-core
machine are noisy, so each table gives min / median / max of repeated runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench import lambda_floor, sharded
from bench.hot_item import HotItem
from bench.lapsed_holds import lapsed_holds_table
from bench.live_push import live_push_table
from localstack import stack as stack_tool
from localstack.inventory_client import Stack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# AWS list prices, us-east-1 (checked 2026-11): HTTP API per request, Lambda arm64 per GB-second and
# per request, DynamoDB on-demand per write / read request unit.
PRICE = {"api": 1.00e-6, "lambda_gb_s": 0.0000133334, "lambda_request": 0.20e-6,
         "wru": 0.625e-6, "rru": 0.125e-6}
MEMORY_GB = 256 / 1024
BENCH_HOLD_SECONDS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fmt(values, digits=1) -> str:
    low, mid, high = lambda_floor.summary(values)
    return f"{low:.{digits}f} / **{mid:.{digits}f}** / {high:.{digits}f}"


# --- 1. Lambda floor --------------------------------------------------------------------------------

def floor_table(runs: int, invocations: int) -> tuple[str, dict]:
    rows = lambda_floor.run(runs, invocations)
    base = next(r for r in rows if r["function"] == "hello_lambda")
    base_init, base_warm = statistics.median(base["init_ms"]), statistics.median(base["warm_us"])
    lines = ["| function | init ms (min / **median** / max) | × hello | warm µs per invocation | × hello | binary MB | zip MB |",
             "|---|---|---|---|---|---|---|"]
    worst = {"init": (0.0, ""), "warm": (0.0, "")}
    for row in rows:
        init_ratio = statistics.median(row["init_ms"]) / base_init
        warm = fmt(row["warm_us"], 0) if row["warm_us"] else "— (always does I/O)"
        warm_ratio = f"{statistics.median(row['warm_us']) / base_warm:.2f}" if row["warm_us"] else "—"
        lines.append(f"| `{row['function']}` | {fmt(row['init_ms'])} | {init_ratio:.1f} | {warm} | {warm_ratio} "
                     f"| {row['size'] / 1e6:.1f} | {row['zip'] / 1e6:.1f} |")
        if row["function"] != "hello_lambda":
            worst["init"] = max(worst["init"], (init_ratio, row["function"]))
            if row["warm_us"]:
                worst["warm"] = max(worst["warm"], (statistics.median(row["warm_us"]) / base_warm, row["function"]))
    return "\n".join(lines), {"base_init": base_init, "base_warm": base_warm, "worst": worst}


# --- 2. Handler CPU -------------------------------------------------------------------------------------

HANDLER_GROUPS = ["get_inventory", "reserve_inventory", "release_reservation", "update_inventory (admin adjust)"]


def handler_cpu_table(smoke: bool) -> str:
    timing = (["--warm-up-time", "0.1", "--measurement-time", "0.3", "--sample-size", "10"] if smoke
              else ["--warm-up-time", "2", "--measurement-time", "5", "--sample-size", "50"])
    subprocess.run(["cargo", "bench", "--locked", "-p", "handler_cpu", "--bench", "handlers", "--", *timing],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    def median_us(group: str, function: str) -> tuple[float, float, float]:
        estimate = json.loads((ROOT / "target" / "criterion" / group / function / "new" / "estimates.json").read_text())
        interval = estimate["median"]["confidence_interval"]
        return (interval["lower_bound"] / 1000, estimate["median"]["point_estimate"] / 1000, interval["upper_bound"] / 1000)

    lines = ["| handler | our handler µs (95 % CI low / **median** / high) | bare SDK call(s) µs | × bare SDK | ours adds µs |",
             "|---|---|---|---|---|"]
    for group in HANDLER_GROUPS:
        ours, bare = median_us(group, "handler"), median_us(group, "bare SDK")
        lines.append(f"| `{group}` | {ours[0]:.1f} / **{ours[1]:.1f}** / {ours[2]:.1f} | {bare[1]:.1f} "
                     f"| {ours[1] / bare[1]:.2f} | {ours[1] - bare[1]:.1f} |")
    return "\n".join(lines)


# --- 3. Hot item -------------------------------------------------------------------------------------

def hot_item_table(stack: Stack, concurrencies: list[int], requests: int, repeats: int) -> tuple[str, list[dict]]:
    bench = HotItem(stack)
    flows = ["API", "ours, DynamoDB only", "naive, DynamoDB only"]
    results = []
    for concurrency in concurrencies:
        for flow in flows:
            for _ in range(repeats):
                results.append(bench.run(flow, concurrency, requests, stock=requests // 2))
    lines = ["| concurrency | flow | holds/s (min / **median** / max) | p50 ms | p99 ms | granted / refused | refused with units left | oversold | × naive holds/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for concurrency in concurrencies:
        naive = statistics.median(r["per_second"] for r in results
                                  if r["flow"] == flows[2] and r["concurrency"] == concurrency)
        for flow in flows:
            runs = [r for r in results if r["flow"] == flow and r["concurrency"] == concurrency]
            per_second = [r["per_second"] for r in runs]
            lines.append(
                f"| {concurrency} | {flow} | {fmt(per_second, 0)} | {statistics.median(r['p50_ms'] for r in runs):.1f} "
                f"| {statistics.median(r['p99_ms'] for r in runs):.1f} "
                f"| {statistics.median(r['granted'] for r in runs):.0f} / {statistics.median(r['refused'] for r in runs):.0f} "
                f"| {max(r['unsold_while_refused'] for r in runs)} | {max(r['oversold'] for r in runs)} "
                f"| {statistics.median(per_second) / naive:.2f} |")
    return "\n".join(lines), results


# --- 4. Pipeline ---------------------------------------------------------------------------------------

def pipeline_table(stack: Stack, admin_token: str, samples: int) -> tuple[str, dict]:
    sqs = stack.client("sqs")
    queue = stack.description["alerts_queue_url"]
    to_alert, to_available = [], []
    for _ in range(samples):
        product = f"PIPE-{uuid.uuid4().hex[:10]}"
        stack.put_stock_item(product, "main", 10, 5)
        time.sleep(0.3)  # let the creation settle so the change below is the one crossing
        changed = time.perf_counter()
        assert stack.admin_put(product, {"warehouse_id": "main", "adjust_by": -7, "reason": "bench"},
                               admin_token).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            arrived = time.perf_counter()
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            if any(product in m["Body"] for m in messages):
                to_alert.append((arrived - changed) * 1000)
                break
        hold = stack.reserve(product, 1, "main", key=str(uuid.uuid4())).json()
        expires = datetime.fromisoformat(hold["expires_at"].replace("Z", "+00:00")).timestamp()
        deadline = time.time() + BENCH_HOLD_SECONDS + 15
        while time.time() < deadline:
            if stack.levels(product)["main"][1] == 0:
                to_available.append(time.time() - expires)
                break
            time.sleep(0.02)
    lines = ["| path | samples | min / **median** / max |", "|---|---|---|",
             f"| admin write → alert in the subscribed queue (ms) | {len(to_alert)} | {fmt(to_alert, 0)} |",
             f"| hold expiry → units available again (s) | {len(to_available)} | {fmt(to_available, 2)} |"]
    return "\n".join(lines), {"alert_ms": to_alert, "available_s": to_available}


# --- 5. Cost -------------------------------------------------------------------------------------------

def reserve_duration_ms(stack: Stack) -> float:
    """The reserve function's own latency (its request log lines), median: what Lambda bills."""
    values = [json.loads(message)["fields"]["latency_ms"]
              for _, message in stack.function_log_messages("ReserveInventory") if '"latency_ms"' in message]
    return statistics.median(values) if values else float("nan")


def cost_table(duration_ms: float, extra_round_trip_ms: float) -> str:
    def per_million(lambda_ms: float, wru: float, rru: float) -> dict:
        billed_ms = max(1.0, round(lambda_ms + 0.4999))
        lambda_cost = PRICE["lambda_request"] + MEMORY_GB * billed_ms / 1000 * PRICE["lambda_gb_s"]
        return {"api": PRICE["api"] * 1e6, "lambda": lambda_cost * 1e6, "dynamodb": (wru * PRICE["wru"] + rru * PRICE["rru"]) * 1e6,
                "billed_ms": billed_ms}

    # Ours: a strongly consistent read of the item (1 RRU), one TransactWriteItems of four items
    # (counters, hold, cart, request record: 2 WRU each in a transaction) + the audit entry (1 WRU)
    # written by broadcast_stock from the stream (stream reads by Lambda are free).
    ours = per_million(duration_ms, 8 + 1, 1)
    # Naive: a strongly consistent GetItem (1 RRU), a conditional UpdateItem and a PutItem (1 WRU each),
    # in sequence: two more round trips inside the function.
    naive = per_million(duration_ms + extra_round_trip_ms, 2, 1)
    lines = ["| per million successful holds | API Gateway | Lambda (256 MB, arm64) | DynamoDB | total | × naive |",
             "|---|---|---|---|---|---|"]
    total_naive = naive["api"] + naive["lambda"] + naive["dynamodb"]
    for name, c in (("ours (read, transaction, audit entry)", ours), ("naive (read, update, put)", naive)):
        total = c["api"] + c["lambda"] + c["dynamodb"]
        lines.append(f"| {name} | ${c['api']:.2f} | ${c['lambda']:.2f} ({c['billed_ms']:.0f} ms billed) "
                     f"| ${c['dynamodb']:.2f} | **${total:.2f}** | {total / total_naive:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (f"{platform.node()}: {cpu}, {len([l for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('processor')])} cores, "
            f"Linux {platform.release()}; commit `{commit or 'uncommitted'}`; "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check the benchmarks still work")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    runs, invocations = (1, 5) if args.smoke else (5, 200)
    concurrencies, requests, repeats = ([1, 8], 16, 1) if args.smoke else ([1, 8, 32, 64], 200, 3)
    samples = 1 if args.smoke else 5
    lapsed_products, lapsed_holds = (4, 200) if args.smoke else (100, 10_000)
    # (open sockets, products they watch): one product, then spread over 100 products.
    # Not 1,000: the local AWS keeps a function process per open WebSocket connection (table 7's text).
    live_cases = [(1, 1), (2, 1)] if args.smoke else [(1, 1), (10, 1), (100, 1), (100, 10), (100, 100)]
    live_samples = 2 if args.smoke else 10
    sharded_sizes = sharded.SMOKE if args.smoke else sharded.FULL

    print("==> 1. Lambda floor", flush=True)
    floor, floor_facts = floor_table(runs, invocations)
    print("==> 2. handler CPU (criterion)", flush=True)
    handler_cpu = handler_cpu_table(args.smoke)
    state_dir = Path(tempfile.mkdtemp(prefix="inventory-bench-", dir=ROOT / ".local"))
    try:
        print("==> bringing up a stack for the benchmarks", flush=True)
        description = stack_tool.up(state_dir, free_port(), ttl_reaper_interval=1.0, hold_seconds=BENCH_HOLD_SECONDS,
                                    backstop_schedule="rate(1 day)")
        stack = Stack(description, state_dir)
        admin = stack.token("admin")
        print("==> 3. hot item", flush=True)
        hot, hot_results = hot_item_table(stack, concurrencies, requests, repeats)
        print("==> 4. pipeline", flush=True)
        pipeline, pipeline_facts = pipeline_table(stack, admin, samples)
        duration = reserve_duration_ms(stack)
        ones = [r for r in hot_results if r["concurrency"] == 1]
        extra = max(0.0, statistics.median(r["p50_ms"] for r in ones if r["flow"].startswith("naive"))
                    - statistics.median(r["p50_ms"] for r in ones if r["flow"].startswith("ours")))
        cost = cost_table(duration, extra)
        print("==> 6. lapsed holds, TTL paused: the backstop alone", flush=True)
        lapsed, lapsed_facts = lapsed_holds_table(stack, lapsed_products, lapsed_holds)
        print("==> 7. live pushes", flush=True)
        live, _ = live_push_table(stack, live_cases, live_samples)
        print("==> 8. flash sale on one SKU: sharded stock", flush=True)
        sharded_parts, sharded_facts = sharded.sharded_table(stack, admin, price=PRICE, **sharded_sizes)
    finally:
        stack_tool.stop_ministack(state_dir)

    oversold = max(r["oversold"] for r in hot_results)
    assert oversold == 0, f"OVERSOLD by {oversold}: {hot_results}"
    text = (HERE / "BENCHMARKS.template.md").read_text().format(
        machine=machine(), smoke=" (smoke run: tiny sizes, figures meaningless)" if args.smoke else "",
        floor=floor, handler_cpu=handler_cpu, hot=hot, pipeline=pipeline, cost=cost, lapsed=lapsed, live=live, live_samples=live_samples, reserve_ms=f"{duration:.1f}", extra_ms=f"{extra:.1f}",
        worst_init=floor_facts["worst"]["init"][1], worst_init_ratio=f"{floor_facts['worst']['init'][0]:.1f}",
        worst_warm=floor_facts["worst"]["warm"][1], worst_warm_ratio=f"{floor_facts['worst']['warm'][0]:.2f}",
        runs=runs, invocations=invocations, requests=requests, repeats=repeats, samples=samples,
        **sharded.template_fields(sharded_parts, sharded_facts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"==> wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
