"""Hot item: many shoppers holding one product at once, at several concurrencies.

Three ways, each on a product of its own with the same stock and the same requests:
- "API": our reserve through the deployed HTTP API (function, transaction, everything);
- "ours, DynamoDB only": what our reserve sends, straight to DynamoDB: a strongly consistent read of
  the item (its units per cart), then one TransactWriteItems (counters, hold, the shopper's cart);
- "naive, DynamoDB only": the seed's literal flow - strongly consistent read of stock and reserved,
  check in code, conditional update of the counters, then write the reservation.
The last two are the like-for-like pair: same client, same DynamoDB, only the protocol differs.
"""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class HotItem:
    def __init__(self, stack):
        self.stack = stack
        self.stock_table = stack.description["stock_table"]
        self.holds_table = stack.description["reservations_table"]
        self.requests_table = stack.description["requests_table"]

    def new_product(self, stock: int) -> str:
        product = f"HOT-{uuid.uuid4().hex[:10]}"
        self.stack.put_stock_item(product, "main", stock, 0)
        return product

    # --- the three flows: each returns True (held) or False (refused) ------------------------------

    def api(self, product: str, quantity: int) -> bool:
        response = self.stack.reserve(product, quantity, "main", key=str(uuid.uuid4()))
        if response.status_code not in (201, 409):
            raise AssertionError(f"reserve answered {response.status_code}: {response.text}")
        return response.status_code == 201

    def ours_direct(self, dynamodb, product: str, quantity: int) -> bool:
        key = {"product_id": {"S": product}, "warehouse_id": {"S": "main"}}
        dynamodb.get_item(TableName=self.stock_table, Key=key, ConsistentRead=True)
        try:
            dynamodb.transact_write_items(TransactItems=[
                {"Update": {"TableName": self.stock_table, "Key": key,
                            "UpdateExpression": "SET reserved_count = reserved_count + :q, available_count = available_count - :q",
                            "ConditionExpression": "available_count >= :q",
                            "ExpressionAttributeValues": {":q": {"N": str(quantity)}}}},
                {"Put": {"TableName": self.holds_table, "Item": self.hold_item(product, quantity),
                         "ConditionExpression": "attribute_not_exists(reservation_id)"}},
                {"Update": {"TableName": self.requests_table, "Key": {"request_key": {"S": f"cart\n{uuid.uuid4()}"}},
                            "UpdateExpression": "SET holds = if_not_exists(holds, :zero) + :one",
                            "ConditionExpression": "attribute_not_exists(holds) OR holds < :most",
                            "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}, ":most": {"N": "20"}}}},
            ])
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise

    def naive_direct(self, dynamodb, product: str, quantity: int) -> bool:
        key = {"product_id": {"S": product}, "warehouse_id": {"S": "main"}}
        item = dynamodb.get_item(TableName=self.stock_table, Key=key, ConsistentRead=True)["Item"]
        stock, reserved = int(item["stock_count"]["N"]), int(item["reserved_count"]["N"])
        if stock - reserved < quantity:
            return False
        try:
            dynamodb.update_item(TableName=self.stock_table, Key=key,
                                 UpdateExpression="SET reserved_count = :new, available_count = :available",
                                 ConditionExpression="reserved_count = :seen",
                                 ExpressionAttributeValues={":new": {"N": str(reserved + quantity)},
                                                            ":available": {"N": str(stock - reserved - quantity)},
                                                            ":seen": {"N": str(reserved)}})
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # someone else changed the counters between the read and the write
            raise
        dynamodb.put_item(TableName=self.holds_table, Item=self.hold_item(product, quantity))
        return True

    @staticmethod
    def hold_item(product: str, quantity: int) -> dict:
        return {"reservation_id": {"S": str(uuid.uuid4())}, "product_id": {"S": product},
                "warehouse_id": {"S": "main"}, "quantity": {"N": str(quantity)}, "state": {"S": "BENCH"}}

    # --- a run -------------------------------------------------------------------------------------------

    def run(self, flow: str, concurrency: int, requests: int, stock: int) -> dict:
        product = self.new_product(stock)
        dynamodb = self.stack.client("dynamodb")  # botocore clients are thread-safe
        attempt = {
            "API": lambda: self.api(product, 1),
            "ours, DynamoDB only": lambda: self.ours_direct(dynamodb, product, 1),
            "naive, DynamoDB only": lambda: self.naive_direct(dynamodb, product, 1),
        }[flow]

        def timed(_):
            started = time.perf_counter()
            held = attempt()
            return held, (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            outcomes = list(pool.map(timed, range(requests)))
        elapsed = time.perf_counter() - started
        granted = sum(held for held, _ in outcomes)
        levels = self.stack.levels(product)["main"]
        latencies = [ms for _, ms in outcomes]
        return {
            "flow": flow, "concurrency": concurrency, "requests": requests, "stock": stock,
            "granted": granted, "refused": requests - granted,
            # Units still for sale at the end although someone was refused: a refusal without cause.
            "unsold_while_refused": min(levels[2], requests - granted),
            "oversold": max(0, levels[1] - stock), "reserved": levels[1],
            "per_second": requests / elapsed, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 99),
        }
