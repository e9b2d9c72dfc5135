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
from websockets.exceptions import ConnectionClosed

# Handshakes in flight (each runs the authorizer and the connect function; the local AWS starts a
# function process per concurrent invocation, so more would only load the 2 cores with processes).
OPEN_AT_ONCE = 8


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
    """When the push that shows `available` for `product` arrived on `ws` (monotonic), or None (not
    in time, or the socket was closed: the broadcaster hangs up on a page whose push failed)."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except (asyncio.TimeoutError, TimeoutError, ConnectionClosed):
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
    cart = {"Cart-Token": uuid.uuid4().hex + uuid.uuid4().hex}

    async def everyone_sees(watching, product, available, started) -> list[float | None]:
        deadline = time.monotonic() + 30
        arrived = await asyncio.gather(*(arrival(ws, product, available, deadline) for ws in watching))
        return [None if at is None else (at - started) * 1000 for at in arrived]

    try:
        for sample in range(samples):
            product = products[sample % spread]
            watching = [ws for i, ws in enumerate(sockets_open) if products[i % spread] == product]
            # Timed: a hold of 1 (10,000 -> 9,999 for sale), request sent -> push on every watcher.
            started = time.monotonic()
            waits = asyncio.ensure_future(everyone_sees(watching, product, 9_999, started))
            response = await asyncio.to_thread(requests.post, f"{stack.api_url}/inventory/{product}/reserve",
                                               json={"quantity": 1}, headers=cart, timeout=30)
            assert response.status_code == 201, response.text
            for latency in await waits:
                if latency is None:
                    missed += 1
                else:
                    latencies_ms.append(latency)
            # Not timed: the hold given back (it would lapse in the benchmark stack's short holds),
            # and its push drained from every watcher before the next sample.
            drained = asyncio.ensure_future(everyone_sees(watching, product, 10_000, time.monotonic()))
            released = await asyncio.to_thread(
                requests.delete, f"{stack.api_url}/inventory/{product}/reservations/{response.json()['reservation_id']}",
                headers=cart, timeout=30)
            assert released.status_code == 200, released.text
            await drained
    finally:
        # A few at a time, as they were opened: each close runs the disconnect function.
        gate = asyncio.Semaphore(OPEN_AT_ONCE)

        async def close(ws):
            async with gate:
                await ws.close()

        await asyncio.gather(*(close(ws) for ws in sockets_open), return_exceptions=True)
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
