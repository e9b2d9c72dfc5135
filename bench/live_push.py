"""Table 7: live stock on the pages. Many sockets open on the live WebSocket API, each watching one
product; a change (a hold through the HTTP API) is timed from the request to the push arriving on
every socket watching that product. Cases: all sockets on one product (one change → every socket),
and the sockets spread over 100 products (one change → its product's sockets only). The baseline is
the same change seen by one socket."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid

import requests
from websockets.asyncio.client import connect

OPEN_AT_ONCE = 50  # handshakes in flight (each runs the authorizer and the connect function)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def open_sockets(url: str, products: list[str], count: int) -> list:
    """`count` sockets, socket i watching products[i % len(products)], each subscribed (answer read)."""
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def one(i: int):
        async with gate:
            ws = await connect(url, open_timeout=60, max_queue=None)
            await ws.send(json.dumps({"action": "subscribe", "products": [products[i % len(products)]]}))
            while json.loads(await asyncio.wait_for(ws.recv(), 60)).get("type") != "subscribed":
                pass
            return ws

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def arrival(ws, product: str, available: int, deadline: float) -> float | None:
    """When the push that shows `available` for `product` arrived on `ws` (monotonic), or None."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except (asyncio.TimeoutError, TimeoutError):
            return None
        if message.get("type") == "stock" and message["product_id"] == product and message["available"] == available:
            return time.monotonic()
    return None


async def run_case(stack, sockets: int, spread: int, samples: int) -> dict:
    products = [f"LIVE-{uuid.uuid4().hex[:10]}" for _ in range(spread)]
    for product in products:
        stack.put_stock_item(product, "main", stock=10_000, threshold=0)
    opened = time.monotonic()
    sockets_open = await open_sockets(stack.description["websocket_url"], products, sockets)
    open_seconds = time.monotonic() - opened
    latencies_ms, missed = [], 0
    try:
        for sample in range(samples):
            product = products[sample % spread]
            watching = [ws for i, ws in enumerate(sockets_open) if products[i % spread] == product]
            available = 10_000 - (sample // spread + 1)
            deadline = time.monotonic() + 30
            waits = [asyncio.create_task(arrival(ws, product, available, deadline)) for ws in watching]
            started = time.monotonic()
            response = await asyncio.to_thread(
                requests.post, f"{stack.api_url}/inventory/{product}/reserve", json={"quantity": 1},
                headers={"Cart-Token": uuid.uuid4().hex + uuid.uuid4().hex}, timeout=30)
            assert response.status_code == 201, response.text
            for arrived in await asyncio.gather(*waits):
                if arrived is None:
                    missed += 1
                else:
                    latencies_ms.append((arrived - started) * 1000)
            await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets_open), return_exceptions=True)
    return {"sockets": sockets, "spread": spread, "samples": samples, "latencies_ms": latencies_ms,
            "missed": missed, "open_seconds": open_seconds,
            "watching": sockets // spread}


def live_push_table(stack, cases: list[tuple[int, int]], samples: int) -> tuple[str, dict]:
    results = [asyncio.run(run_case(stack, sockets, spread, samples)) for sockets, spread in cases]
    base = statistics.median(results[0]["latencies_ms"]) if results[0]["latencies_ms"] else float("nan")
    lines = ["| open sockets | products watched | sockets per change | pushes timed | missed | p50 ms | p99 ms | × one socket (p50) | sockets opened per s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat = r["latencies_ms"] or [float("nan")]
        p50 = statistics.median(lat)
        lines.append(f"| {r['sockets']:,} | {r['spread']} | {r['watching']:,} | {len(r['latencies_ms']):,} | {r['missed']} | "
                     f"{p50:.0f} | {percentile(lat, 0.99):.0f} | {p50 / base:.1f} | {r['sockets'] / r['open_seconds']:.0f} |")
    return "\n".join(lines), {"results": results}
