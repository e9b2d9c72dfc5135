"""Stream records lost on purpose and got back: the expiry consumer (expire_reservations, on the
reservations table's stream) fails while DynamoDB TTL deletes lapsed holds, so their REMOVE records
use up their retries and land in the stream-failures queue (DLQ) instead of putting the units back on
sale. Once the consumer works again, the runbook's redrive (localstack/redrive_stream_failures.py)
re-delivers every record the DLQ names, and every hold ends EXPIRED with the counters right.

Two ways to fail, as the event source mapping sees them (template: BisectBatchOnFunctionError,
MaximumRetryAttempts 5, ReportBatchItemFailures, DLQ on failure):
  - the function crashes at start (a setting missing): a whole-batch function error, bisected down to
    single records, each then tried 6 times;
  - its store calls fail (RESERVATIONS_TABLE names a missing table): each record is reported as a
    batch item failure, retried from it 5 times, then skipped.
The backstop (check_thresholds) cannot save these holds: TTL has deleted them, so only the stream
records know them. The test stack runs the backstop daily, so only the redrive does it here.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest

from localstack.redrive_stream_failures import matches
from tests.support import TEST_HOLD_SECONDS, run_redrive, wait_for

HOLDS = (1, 2, 3, 4)  # quantities: 10 units held


@contextmanager
def environment_changed(stack, function: str, **changes):
    """The function runs with these environment variables changed (as an operator's bad deploy would
    leave it), and with its own again afterwards."""
    lambda_ = stack.client("lambda")
    name = stack.description["functions"][function]

    def configure(variables: dict):
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        wait_for(lambda: lambda_.get_function_configuration(FunctionName=name).get("LastUpdateStatus")
                 in (None, "Successful"), timeout=30, what=f"{name} updated")

    own = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    configure({**own, **changes})
    try:
        yield
    finally:
        configure(own)


class DeadLetters:
    """The on-failure records in the stream-failures queue, read without taking them away."""

    def __init__(self, stack):
        self.sqs, self.url = stack.client("sqs"), stack.description["stream_failures_queue_url"]
        self.seen: dict[str, dict] = {}  # by message id: a message received again counts once

    def read(self) -> list[dict]:
        received = []
        try:
            while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                       VisibilityTimeout=30, WaitTimeSeconds=1).get("Messages", []):
                received += messages
                self.seen.update((m["MessageId"], json.loads(m["Body"])) for m in messages)
        finally:  # visible again at once, for the next reader
            for message in received:
                self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=0)
        return list(self.seen.values())

    def naming(self, sequences: set[str], function: str) -> list[dict]:
        """The records of `function` whose range holds any of these sequence numbers."""
        def holds_one(record):
            info = record["DDBStreamBatchInfo"]
            low, high = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
            return any(low <= int(s) <= high for s in sequences)
        return [r for r in self.read() if r["requestContext"]["functionArn"].endswith(f":{function}") and holds_one(r)]

    def still_waiting(self, sequences: set[str], function: str) -> list[dict]:
        """Like naming(), but from the queue as it is now (after a redrive deleted some)."""
        self.seen.clear()
        return self.naming(sequences, function)


def no_hold_left_active(stack) -> bool:
    """No ACTIVE hold of any test is left (the sparse index lists exactly those)."""
    return not any(stack.dynamodb.query(
        TableName=stack.description["reservations_table"], IndexName="active-by-expiry", Limit=1,
        KeyConditionExpression="sweep_shard = :shard",
        ExpressionAttributeValues={":shard": {"S": f"ACTIVE#{shard}"}})["Items"] for shard in range(4))


def lose_the_expiry_of_some_holds(stack, new_product, **broken_settings):
    """Holds lapse while the expiry consumer is broken: TTL deletes them (one pass, on cue), the
    consumer fails on their REMOVE records until the mapping gives up on each. Returns the product,
    the holds and the REMOVE records' sequence numbers, once every one of those is in the DLQ."""
    function = stack.description["functions"]["expire_reservations"]
    # Holds the tests before this one left lapse within the hold length: the pass below would delete
    # them too, and each of their records would take its ~7 s of failed tries before ours are done
    # (44 of them once took longer than the wait below). Let the working consumer have them first.
    # (A hold some test keeps ACTIVE past that only makes this test slower, not wrong.)
    deadline = time.monotonic() + TEST_HOLD_SECONDS + 30
    while not no_hold_left_active(stack) and time.monotonic() < deadline:
        time.sleep(0.5)
    product = new_product(main=20)
    dead_letters = DeadLetters(stack)
    with stack.ttl_paused():
        holds = [stack.reserve(product, quantity, "main").json() for quantity in HOLDS]
        assert stack.levels(product) == {"main": (20, 10, 10)}
        with environment_changed(stack, "expire_reservations", **broken_settings):
            time.sleep(TEST_HOLD_SECONDS + 1.5)  # every hold lapsed; TTL has not deleted one
            assert stack.reap_ttl() >= len(HOLDS)
            assert stack.reservations(product) == [], "TTL deleted the holds"
            removes = {}
            for hold in holds:
                [remove] = [r for r in stack.stream_records("reservations", hold["reservation_id"])
                            if r["eventName"] == "REMOVE"]
                removes[hold["reservation_id"]] = remove["dynamodb"]["SequenceNumber"]
            started = time.monotonic()

            def every_record_dead_lettered():
                named = dead_letters.naming(set(removes.values()), function)
                covered = {s for s in removes.values() for r in named
                           if int(r["DDBStreamBatchInfo"]["startSequenceNumber"]) <= int(s)
                           <= int(r["DDBStreamBatchInfo"]["endSequenceNumber"])}
                return named if covered == set(removes.values()) else None

            dead = wait_for(every_record_dead_lettered, timeout=240, what="every REMOVE record in the DLQ")
            print(f"all {len(removes)} REMOVE records in the DLQ after {time.monotonic() - started:.1f} s")
            # Lost for now: the units stay held although no hold is left.
            assert stack.levels(product) == {"main": (20, 10, 10)}
    return product, holds, removes, dead


def redrive_and_check(stack, tmp_path, product, holds, removes, dead):
    function = stack.description["functions"]["expire_reservations"]
    listed = run_redrive(stack, tmp_path, "--function", function)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for record in dead:
        info = record["DDBStreamBatchInfo"]
        assert f"{info['startSequenceNumber']}..{info['endSequenceNumber']}" in listed.stdout
    assert stack.levels(product) == {"main": (20, 10, 10)}, "listing re-delivers nothing"

    redriven = run_redrive(stack, tmp_path, "--redrive", "--function", function)
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert "  still failing:" not in redriven.stdout and ", 0 still failing" in redriven.stdout
    assert redriven.stdout.count("; removed from the queue") >= len(dead)
    states = {h["reservation_id"]: h["state"] for h in stack.reservations(product)}
    assert states == {h["reservation_id"]: "EXPIRED" for h in holds}
    assert stack.assert_reconciled(product) == {"main": (20, 0, 20)}
    assert DeadLetters(stack).still_waiting(set(removes.values()), function) == []
    # A second redrive finds nothing of ours, and a repeated delivery would change nothing anyway.
    again = run_redrive(stack, tmp_path, "--redrive", "--function", function)
    assert again.returncode == 0 and "re-delivered" not in again.stdout, again.stdout
    assert stack.levels(product) == {"main": (20, 0, 20)}


def test_holds_lost_to_a_crashing_expiry_consumer_are_released_by_the_redrive(stack, new_product, tmp_path):
    """A whole-batch function error: bisected to single records, each discarded alone after 6 tries."""
    product, holds, removes, dead = lose_the_expiry_of_some_holds(stack, new_product, STOCK_TABLE="")
    for record in dead:
        info = record["DDBStreamBatchInfo"]
        assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
        assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 6  # 1 + MaximumRetryAttempts
        assert record["responseContext"]["functionError"] == "Unhandled"
    assert sorted(r["DDBStreamBatchInfo"]["startSequenceNumber"] for r in dead) == sorted(removes.values())
    redrive_and_check(stack, tmp_path, product, holds, removes, dead)


def test_holds_lost_to_failing_store_calls_are_released_by_the_redrive(stack, new_product, tmp_path):
    """Batch item failures: each record retried from itself, then skipped alone."""
    missing = f"missing-table-{int(time.time())}"
    product, holds, removes, dead = lose_the_expiry_of_some_holds(stack, new_product, RESERVATIONS_TABLE=missing)
    for record in dead:
        assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert record["responseContext"]["functionError"] is None  # the invocations themselves succeeded
    redrive_and_check(stack, tmp_path, product, holds, removes, dead)


# --- The redrive applies the mapping's filter as Lambda does (no stack needed) -------------------

TTL_DELETES = {"eventName": ["REMOVE"], "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}}
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.mark.parametrize("record, taken", [
    ({"eventName": "REMOVE", "userIdentity": TTL_IDENTITY}, True),
    ({"eventName": "REMOVE"}, False),  # a user's delete
    ({"eventName": "MODIFY", "userIdentity": TTL_IDENTITY}, False),
    ({"eventName": "REMOVE", "userIdentity": {"type": "Service", "principalId": "someone.else"}}, False),
])
def test_the_redrive_filters_as_the_expiry_mapping_does(record, taken):
    assert matches(TTL_DELETES, record) is taken


def test_the_redrive_knows_the_usual_filter_rules():
    assert matches({"eventName": ["INSERT", "MODIFY"]}, {"eventName": "MODIFY"})
    assert not matches({"eventName": ["INSERT", "MODIFY"]}, {"eventName": "REMOVE"})
    image = {"dynamodb": {"NewImage": {"state": {"S": "ACTIVE"}, "n": {"N": "3"}}}}
    assert matches({"dynamodb": {"NewImage": {"state": {"S": [{"prefix": "ACT"}]}}}}, image)
    assert matches({"dynamodb": {"NewImage": {"state": {"S": [{"anything-but": ["EXPIRED"]}]}}}}, image)
    assert matches({"dynamodb": {"NewImage": {"gone": [{"exists": False}]}}}, image)
    assert not matches({"dynamodb": {"NewImage": {"state": [{"exists": False}]}}}, image)
    assert matches({"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 3})
    with pytest.raises(ValueError):
        matches({"eventName": [{"wildcard": "*"}]}, {"eventName": "REMOVE"})
