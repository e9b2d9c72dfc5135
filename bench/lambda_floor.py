"""Lambda floor: each function's init time and warm per-invocation overhead, against a hello-world
`lambda_runtime` binary built with the same profile, through a local Runtime API stub.

Init = process start -> its first request for work (GET .../invocation/next).
Warm overhead = event handed out -> response posted, for an event the function answers without
any I/O (a 4xx for the HTTP functions, an empty batch for the stream consumers), so what is measured
is the runtime loop, deserialising, logging and serialising: the part of every invocation that is ours.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import threading
import time
import io
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"


def http_event(path_params: dict, body: str | None = None, method: str = "GET") -> dict:
    return {"version": "2.0", "routeKey": "bench", "rawPath": "/bench", "rawQueryString": "", "headers": {},
            "pathParameters": path_params, "body": body, "isBase64Encoded": False,
            "requestContext": {"requestId": "bench", "http": {"method": method, "path": "/bench"}}}


# Per function: an event it answers without touching AWS (None: it always does I/O; init only).
NO_IO_EVENTS = {
    "get_inventory": http_event({"productId": "bad id"}),
    "reserve_inventory": http_event({"productId": "SKU-1"}, '{"quantity": 0}', "POST"),
    "release_reservation": http_event({"productId": "SKU-1", "reservationId": "not-a-uuid"}, None, "DELETE"),
    "update_inventory": http_event({"productId": "SKU-1"}, '{"stock_count": 1}', "PUT"),  # not signed in: 401
    "list_inventory": http_event({}),
    "get_history": http_event({"productId": "SKU-1"}),
    "back_in_stock": {**http_event({"productId": "bad id"}, '{"email": "a@example.com"}', "POST"),
                      "routeKey": "POST /inventory/{productId}/back-in-stock"},
    "stock_events": {"Records": []},
    "broadcast_stock": {"Records": []},
    "live_connections": {"requestContext": {"routeKey": "$default", "connectionId": "bench"}, "body": "not json"},
    "authorize_live": {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:0:bench/v1/$connect"},
    "expire_reservations": {"Records": []},
    "check_thresholds": None,
    "send_digest": None,
    "hello_lambda": {"hello": "world"},
}

FUNCTION_ENV = {
    "STOCK_TABLE": "bench-stock", "RESERVATIONS_TABLE": "bench-reservations", "HISTORY_TABLE": "bench-history",
    "REQUESTS_TABLE": "bench-requests", "HOLDS_REQUIRE_SIGN_IN": "false",
    "HOLD_SECONDS": "900", "HISTORY_RETENTION_DAYS": "365", "ALERT_QUIET_SECONDS": "900",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:bench", "STACK_NAME": "bench",
    "SUBSCRIPTIONS_TABLE": "bench-subscriptions", "SHOPPER_EMAIL_FROM": "no-reply@shop.example",
    "PUBLIC_API_URL": "https://bench.execute-api.us-east-1.amazonaws.com/v1",
    "CONNECTIONS_TABLE": "bench-connections", "EVENT_BUS_NAME": "bench-events",
    "LIVE_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/bench",
    "JWKS_URL": "http://127.0.0.1:9/jwks.json", "USER_POOL_CLIENT_ID": "bench",
    "TOKEN_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/bench",
    "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: an accidental call fails fast
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO",
}


class RuntimeApi:
    """Just enough of the Lambda Runtime API to run one function process and time it."""

    def __init__(self):
        self.events: queue.Queue = queue.Queue()
        self.first_next = threading.Event()
        self.first_next_at = 0.0
        self.sent_at: dict[str, float] = {}
        self.responded: queue.Queue = queue.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    return self._answer(404, b"{}")
                if not api.first_next.is_set():
                    api.first_next_at = time.perf_counter()
                    api.first_next.set()
                request_id, body = api.events.get()
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                api.sent_at[request_id] = time.perf_counter()
                self.wfile.write(payload)

            def do_POST(self):
                now = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("/")
                if "invocation" in parts:
                    request_id, outcome = parts[-2], parts[-1]
                    api.responded.put((request_id, outcome, now, body))
                self._answer(202, b"{}")

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the function process is killed at the end of a run: its connections reset

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def measure(binary: str, invocations: int) -> dict:
    event = NO_IO_EVENTS[binary]
    api = RuntimeApi()
    env = {**os.environ, **FUNCTION_ENV, "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": binary}
    started = time.perf_counter()
    process = subprocess.Popen([str(RELEASE / binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not api.first_next.wait(30):
            raise RuntimeError(f"{binary} never asked for work")
        init_ms = (api.first_next_at - started) * 1000
        warm = []
        if event is not None:
            for i in range(invocations + 5):  # the first few warm the allocator and connection pool
                request_id = f"req-{i}"
                api.events.put((request_id, event))
                got_id, outcome, at, body = api.responded.get(timeout=30)
                if got_id != request_id or outcome != "response":
                    raise RuntimeError(f"{binary}: {outcome} for {got_id}: {body[:300]!r}")
                if i >= 5:
                    warm.append((at - api.sent_at[request_id]) * 1e6)
        return {"init_ms": init_ms, "warm_us": warm}
    finally:
        process.kill()
        process.wait()
        api.close()


def sizes(binary: str) -> tuple[int, int]:
    path = RELEASE / binary
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "bootstrap")
    return path.stat().st_size, len(buffer.getvalue())


def run(runs: int, invocations: int) -> list[dict]:
    """Per binary: init over `runs` process starts, warm overhead over `invocations` per start."""
    rows = []
    for binary in NO_IO_EVENTS:
        inits, warms = [], []
        for _ in range(runs):
            result = measure(binary, invocations)
            inits.append(result["init_ms"])
            warms += result["warm_us"]
        size, zipped = sizes(binary)
        rows.append({"function": binary, "init_ms": inits, "warm_us": warms, "size": size, "zip": zipped})
    return rows


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)
