"""What every scenario script shares: plain-language steps, checks that say what was expected and
what was seen, and a PASS/FAIL verdict with the exit code to match.

A scenario runs against the stack in $STACK_JSON or .local/stack.json (`make up` writes it). It
creates products of its own (unique ids), so scenarios can run in any order, and twice.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Callable

from localstack.inventory_client import AlertInbox, Stack, new_cart_token, unique_id, wait_for  # noqa: F401


class Scenario:
    def __init__(self, name: str, stack: Stack):
        self.name = name
        self.stack = stack
        self.failures: list[str] = []
        self.started = time.monotonic()

    def step(self, text: str):
        print(f"\n• {text}", flush=True)

    def saw(self, text: str):
        print(f"    saw: {text}", flush=True)

    def expect(self, what: str, ok: bool, seen: object = None) -> bool:
        mark = "ok  " if ok else "FAIL"
        detail = "" if seen is None else f"  (saw {seen})"
        print(f"  [{mark}] expected {what}{detail}", flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def new_product(self, token: str, **warehouses) -> str:
        """A product of the scenario's own: warehouse=stock or warehouse=(stock, threshold)."""
        product = unique_id(self.name.upper().replace("-", "")[:10])
        for warehouse, spec in warehouses.items():
            stock, threshold = spec if isinstance(spec, tuple) else (spec, 0)
            response = self.stack.admin_put(product, {"warehouse_id": warehouse, "stock_count": stock,
                                                      "threshold_level": threshold, "reason": "scenario set-up"}, token)
            if response.status_code != 201:
                raise RuntimeError(f"could not create {product}/{warehouse}: {response.status_code} {response.text}")
        return product

    def fast_forward(self, reservation_id: str, ttl_too: bool):
        """Moves one hold's expiry into the past, as if its time had run out (holds last minutes).
        With ttl_too=False its TTL stays far off, as when DynamoDB's TTL is late (or, on LocalStack,
        its deletes carry no TTL identity): only the scheduled backstop can release it then."""
        past = str(int(time.time()) - 1)
        purge = past if ttl_too else str(int(time.time()) + 86400)
        self.stack.dynamodb.update_item(
            TableName=self.stack.description["reservations_table"],
            Key={"reservation_id": {"S": reservation_id}},
            UpdateExpression="SET expires_at = :past, sweep_due_at = :past, purge_at = :purge",
            ConditionExpression="#s = :active", ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":past": {"N": past}, ":purge": {"N": purge}, ":active": {"S": "ACTIVE"}})

    @staticmethod
    def run(name: str, body: Callable[["Scenario"], None], description: str):
        print(f"=== {name} ===\n{description.strip()}", flush=True)
        scenario = Scenario(name, Stack.load())
        try:
            body(scenario)
        except Exception:  # a crash is a failure with its story told
            traceback.print_exc()
            scenario.failures.append("the scenario ran to the end")
        took = time.monotonic() - scenario.started
        if scenario.failures:
            print(f"\nFAIL {name} ({took:.1f} s): " + "; ".join(scenario.failures), flush=True)
            sys.exit(1)
        print(f"\nPASS {name} ({took:.1f} s)", flush=True)
