"""The local AWS's nemesis (localstack/nemesis.py, ministack_faithful.py feature 12): each fault has
AWS's shape, as the SDKs parse it, strikes where its filters say, and is counted.

docs/CHAOS.md, "The faults", names the AWS behaviour behind each.
"""

import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from tests.support import outside_the_contract, unique_id, wait_for

LAUNCHER = Path(__file__).resolve().parent.parent / "localstack" / "ministack_faithful.py"


@pytest.fixture(autouse=True)
def disarmed(stack):
    """Every test starts and ends with no fault armed, so none leaks into another test."""
    stack.clear_faults()
    yield
    stack.clear_faults()


def client(stack, service: str, attempts: int = 1):
    """A client of its own (so its own connections); with one attempt it shows the first answer."""
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=stack.description["region"])
    config = BotoConfig(retries={"total_max_attempts": attempts, "mode": "standard"})
    return session.client(service, endpoint_url=stack.description["endpoint"], config=config)


@pytest.fixture
def table(stack):
    name = unique_id("nemesis")
    stack.dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                                      {"AttributeName": "n", "AttributeType": "N"}],
                                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                                           {"AttributeName": "n", "KeyType": "RANGE"}])
    yield name
    stack.dynamodb.delete_table(TableName=name)


def put(dynamodb, table, item_id, n=0):
    return dynamodb.put_item(TableName=table, Item={"id": {"S": item_id}, "n": {"N": str(n)}})


def exists(stack, table, item_id, n=0) -> bool:
    return "Item" in stack.dynamodb.get_item(TableName=table, Key={"id": {"S": item_id}, "n": {"N": str(n)}},
                                             ConsistentRead=True)


def fault(stack, fault_id) -> dict:
    return next(f for f in stack.faults() if f["id"] == fault_id)


# --- The fault table ---------------------------------------------------------------------------------

def test_a_bad_spec_is_refused_with_what_is_wrong(stack):
    for spec, complaint in [
        ({"kind": "flood", "rate": 0.1}, "kind must be one of"),
        ({"kind": "throttle"}, "give a rate"),
        ({"kind": "throttle", "rate": 1.5}, "rate must be a number from 0 to 1"),
        ({"kind": "throttle", "rate": 0.1, "topic": "t"}, "throttle takes no ['topic']"),
        ({"kind": "throttle", "rate": 0.1, "params": {"error": "Nope"}}, "error must be one of"),
        ({"kind": "hot-key", "rate": 1, "params": {"scale": 0}}, "scale must be above 0"),
        ([{"kind": "throttle", "rate": 0.1}, {"kind": "flood"}], "kind must be one of"),
    ]:
        response = requests.post(f"{stack.description['endpoint']}/_faithful/chaos", json=spec, timeout=10)
        assert response.status_code == 400 and complaint in response.json()["message"], (spec, response.text)
    assert stack.faults() == [], "a list with one bad spec arms none of it"


def test_a_bad_chaos_setting_stops_the_launcher_at_start():
    result = subprocess.run([sys.executable, str(LAUNCHER)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "FAITHFUL_CHAOS": "conflict:0.1,throttle:often", "GATEWAY_PORT": "1"})
    assert result.returncode != 0
    assert "FAITHFUL_CHAOS: 'throttle:often': 'often' is not a number" in result.stderr


def test_the_same_seed_fires_the_same_calls(stack, table):
    """A run is replayed by its seed: each fault draws from its own random.Random(seed)."""
    dynamodb = client(stack, "dynamodb")

    def outcomes(seed: str) -> list[bool]:
        armed = stack.arm_chaos("throttle", rate=0.5, seed=seed, table=table)
        fired = []
        for i in range(30):
            try:
                put(dynamodb, table, f"replay-{i}")
                fired.append(False)
            except dynamodb.exceptions.ThrottlingException:
                fired.append(True)
        assert fault(stack, armed["id"])["fired"] == sum(fired) and fault(stack, armed["id"])["seen"] == 30
        stack.clear_faults()
        return fired

    first = outcomes("replay")
    assert 5 < sum(first) < 25, "about half"
    assert outcomes("replay") == first
    assert outcomes("another") != first


# --- DynamoDB: refused before it is applied ------------------------------------------------------------

def test_throttling_errors_are_aws_shaped_retried_and_not_applied(stack, table):
    """400 ThrottlingException (on demand: a hot partition) or ProvisionedThroughputExceededException,
    each with its ThrottlingReason, as boto3 parses them; the SDK retries them with backoff."""
    bare, retrying = client(stack, "dynamodb"), client(stack, "dynamodb", attempts=4)
    arn = stack.dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    stack.arm_chaos("throttle", count=1, operation="PutItem", table=table)
    with pytest.raises(bare.exceptions.ThrottlingException) as throttled:
        put(bare, table, "throttled")
    answer = throttled.value.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"]["Code"] == "ThrottlingException"
    assert answer["Error"]["Message"].startswith("Throughput exceeds the current capacity of your table or index.")
    assert answer["throttlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]
    assert not exists(stack, table, "throttled"), "a throttled write is not applied"

    stack.arm_chaos("throttle", count=2, operation="GetItem", table=table,
                    params={"error": "ProvisionedThroughputExceededException"})
    with pytest.raises(bare.exceptions.ProvisionedThroughputExceededException) as exceeded:
        bare.get_item(TableName=table, Key={"id": {"S": "x"}, "n": {"N": "0"}})
    assert exceeded.value.response["ThrottlingReasons"] == [
        {"reason": "TableReadProvisionedThroughputExceeded", "resource": arn}]
    answer = retrying.get_item(TableName=table, Key={"id": {"S": "x"}, "n": {"N": "0"}})
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1, "retried past the second refusal"


def test_a_hot_partition_key_is_throttled_above_its_scaled_write_rate(stack, table):
    """AWS: 1,000 WCU/s per partition; at scale 0.005, 5 units/s. Writes to one partition key (any
    sort key) above that are refused; as many writes spread over keys are not."""
    bare = client(stack, "dynamodb")
    armed = stack.arm_chaos("hot-key", rate=1, table=table, params={"scale": 0.005})

    def burst(key_of) -> tuple[int, float]:
        admitted, started = 0, time.monotonic()
        for i in range(20):
            try:
                put(bare, table, key_of(i), n=i)
                admitted += 1
            except bare.exceptions.ThrottlingException as refused:
                assert refused.response["throttlingReasons"][0]["reason"] == "TableWriteKeyRangeThroughputExceeded"
        return admitted, time.monotonic() - started

    admitted, took = burst(lambda i: "hot")
    assert 5 <= admitted <= 5 + 5 * took + 1, (admitted, took)
    assert fault(stack, armed["id"])["fired"] == 20 - admitted
    admitted, _ = burst(lambda i: f"spread-{i}")
    assert admitted == 20


def test_a_transaction_conflict_cancels_the_transaction_as_aws_does(stack, table):
    """TransactionCanceledException with one reason per item, the held one TransactionConflict; nothing
    applied."""
    bare = client(stack, "dynamodb")
    stack.arm_chaos("conflict", count=1, table=table)
    items = [{"Put": {"TableName": table, "Item": {"id": {"S": f"tx-{i}"}, "n": {"N": "0"}}}} for i in range(3)]
    with pytest.raises(bare.exceptions.TransactionCanceledException) as cancelled:
        bare.transact_write_items(TransactItems=items)
    answer = cancelled.value.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    reasons = answer["CancellationReasons"]
    assert len(reasons) == 3 and sorted(r["Code"] for r in reasons) == ["None", "None", "TransactionConflict"]
    held = next(r for r in reasons if r["Code"] == "TransactionConflict")
    assert held == {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    codes = ", ".join(r["Code"] for r in reasons)
    assert answer["Error"]["Message"] == f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    assert not any(exists(stack, table, f"tx-{i}") for i in range(3))
    bare.transact_write_items(TransactItems=items)  # the count is spent
    assert all(exists(stack, table, f"tx-{i}") for i in range(3))


def test_with_a_window_only_an_item_another_connection_just_wrote_conflicts(stack, table):
    writer, transactor = client(stack, "dynamodb"), client(stack, "dynamodb")
    armed = stack.arm_chaos("conflict", rate=1, table=table, params={"window_ms": 1500})

    def transact(dynamodb, item_id):
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"id": {"S": "other"}, "n": {"N": "0"}}}},
            {"Update": {"TableName": table, "Key": {"id": {"S": item_id}, "n": {"N": "0"}},
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "1"}}}}])

    put(writer, table, "contended")
    with pytest.raises(transactor.exceptions.TransactionCanceledException) as cancelled:
        transact(transactor, "contended")
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["None", "TransactionConflict"]
    put(writer, table, "mine")
    transact(writer, "mine")  # the same connection: its own earlier write, not a concurrent one
    put(writer, table, "settled")
    time.sleep(2)  # past the window
    transact(transactor, "settled")
    assert (fault(stack, armed["id"])["seen"], fault(stack, armed["id"])["fired"]) == (1, 1)


def test_the_product_retries_a_transaction_conflict_then_answers_503(stack, new_product):
    """store.rs `transact` retries a TransactionConflict 4 times, then gives up: 503 with Retry-After.
    (The Rust SDK parses the cancellation reasons as boto3 does.)"""
    product = new_product(main=10)
    # Only the reserve function's transactions: an earlier test's hold lapsing meanwhile is released
    # in a transaction on the same table (by the expiry consumer) and must not use up the count.
    armed = stack.arm_chaos("conflict", rate=1, table=stack.description["stock_table"], function="ReserveInventory")
    response = stack.reserve(product, 1)
    assert response.status_code == 503 and response.headers.get("Retry-After") == "1", response.text
    assert fault(stack, armed["id"])["fired"] == 4
    stack.clear_faults()
    assert stack.reserve(product, 1).status_code == 201
    assert stack.levels(product)["main"] == (10, 1, 9)


@pytest.mark.parametrize("error", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_the_products_sdk_retries_a_throttled_read(stack, new_product, error):
    """The Rust SDK takes both codes for throttling and retries (3 attempts): two refusals, then 200;
    three, and the API answers 503 (the store is busy)."""
    product = new_product(main=7)
    # Only the GET function's own Query: the stream consumers' reads of the same table (the
    # broadcaster reads each changed product) must not use up the count.
    on_the_read = {"operation": "Query", "table": stack.description["stock_table"], "function": "GetInventory"}
    armed = stack.arm_chaos("throttle", count=2, params={"error": error}, **on_the_read)
    response = stack.get(f"/inventory/{product}")
    assert response.status_code == 200, response.text
    assert fault(stack, armed["id"])["fired"] == 2
    stack.arm_chaos("throttle", count=3, params={"error": error}, **on_the_read)
    response = stack.get(f"/inventory/{product}")
    assert response.status_code == 503 and response.json()["error"]["code"] == "SERVICE_UNAVAILABLE", response.text


# --- DynamoDB: applied, then the answer lost -----------------------------------------------------------

def test_answers_lost_at_a_rate_each_apply_a_non_idempotent_write_once_more(stack, table):
    """Each lost answer is a 500 the SDK retries: an ADD lands once per call plus once per firing."""
    retrying = client(stack, "dynamodb", attempts=10)
    armed = stack.arm_chaos("applied-answer-lost", rate=0.3, seed="lost", operation="UpdateItem", table=table)
    key = {"id": {"S": "counter"}, "n": {"N": "0"}}
    for _ in range(20):
        retrying.update_item(TableName=table, Key=key, UpdateExpression="ADD c :one",
                             ExpressionAttributeValues={":one": {"N": "1"}})
    fired = fault(stack, armed["id"])["fired"]
    assert fired > 0
    counted = stack.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["c"]["N"]
    assert int(counted) == 20 + fired


def test_an_answer_held_past_the_callers_timeout_is_retried_and_applied_twice(stack, table):
    """The write is applied, its answer comes after the caller's read timeout: the SDK retries."""
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=stack.description["region"])
    impatient = session.client("dynamodb", endpoint_url=stack.description["endpoint"], config=BotoConfig(
        read_timeout=1, retries={"total_max_attempts": 3, "mode": "standard"}))
    armed = stack.arm_chaos("applied-answer-lost", count=1, operation="UpdateItem", table=table,
                            params={"answer": "timeout", "seconds": 2})
    key = {"id": {"S": "counter"}, "n": {"N": "0"}}
    answer = impatient.update_item(TableName=table, Key=key, UpdateExpression="ADD c :one",
                                   ExpressionAttributeValues={":one": {"N": "1"}})
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert stack.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["c"]["N"] == "2"
    assert fault(stack, armed["id"])["fired"] == 1


# --- A function process killed after its invocation's first write ------------------------------------

def test_a_function_killed_after_its_first_write_crashes_the_invocation_and_the_write_stays(stack, new_product):
    """The reserve function's first write is the hold's transaction: it is applied, then the process
    dies, and the API answers a 5xx (MiniStack: 502). A retry with the same Idempotency-Key finds the
    hold: one hold."""
    product = new_product(main=10)
    armed = stack.arm_chaos("kill", count=1, function="ReserveInventory")
    key = str(uuid.uuid4())
    with outside_the_contract():
        crashed = stack.reserve(product, 2, key=key)
    assert crashed.status_code in (500, 502), crashed.text
    assert fault(stack, armed["id"])["fired"] == 1
    assert stack.levels(product)["main"] == (10, 2, 8), "the write before the crash was applied"
    retried = stack.reserve(product, 2, key=key)
    assert retried.status_code in (200, 201), retried.text
    assert stack.levels(product)["main"] == (10, 2, 8)
    assert fault(stack, armed["id"])["fired"] == 1, "a new process, and the count is spent"


def test_a_kill_spares_calls_that_are_not_a_functions(stack, table):
    armed = stack.arm_chaos("kill", rate=1, table=table)
    put(client(stack, "dynamodb"), table, "from-the-test")
    assert exists(stack, table, "from-the-test")
    assert fault(stack, armed["id"])["seen"] == 0


# --- SNS Publish refused -------------------------------------------------------------------------------

@pytest.mark.parametrize("code, status", [("InternalError", 500), ("Throttling", 400)])
def test_a_refused_publish_is_sns_shaped_and_retried(stack, code, status):
    sqs, sns = stack.client("sqs"), client(stack, "sns")
    topic = stack.client("sns").create_topic(Name=unique_id("nemesis"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_id("nemesis"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                                  Attributes={"RawMessageDelivery": "true"})
    stack.arm_chaos("sns-publish", count=1, topic=topic, params={"error": code})
    with pytest.raises(sns.exceptions.ClientError) as refused:
        sns.publish(TopicArn=topic, Message="lost")
    answer = refused.value.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == status
    assert answer["Error"]["Code"] == code
    assert answer["Error"]["Type"] == ("Receiver" if status == 500 else "Sender")
    stack.arm_chaos("sns-publish", count=1, topic=topic, params={"error": code})
    published = client(stack, "sns", attempts=4).publish(TopicArn=topic, Message="delivered")
    assert published["ResponseMetadata"]["RetryAttempts"] == 1
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                                     WaitTimeSeconds=2).get("Messages", [])]
    assert bodies == ["delivered"], "a refused Publish delivers nothing"
    sqs.delete_queue(QueueUrl=queue_url)


@pytest.mark.parametrize("code", ["InternalError", "Throttling"])
def test_a_refused_publish_neither_loses_nor_doubles_the_products_alert(stack, new_product, inbox, code):
    product = new_product(main=(6, 5))
    armed = stack.arm_chaos("sns-publish", count=1, topic=stack.description["alerts_topic_arn"], params={"error": code})
    stack.reserve(product, 6, "main")  # straight to zero: one OUT_OF_STOCK
    inbox.wait_for(product, 1)
    assert [a["body"]["type"] for a in inbox.settled(product)][:1] == ["OUT_OF_STOCK"]
    assert [a["body"]["type"] for a in inbox.for_product(product)].count("OUT_OF_STOCK") == 1
    assert fault(stack, armed["id"])["fired"] == 1


# --- Stream deliveries: duplicated, delayed ------------------------------------------------------------

TRACING_CONSUMER = '''
import json, os, time

def handler(event, context):
    with open(os.environ["TRACE"], "a") as trace:
        trace.write(json.dumps([time.time(), [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]]) + "\\n")
    return {}
'''


@pytest.fixture
def traced_stream(stack, tmp_path):
    """traced_stream(ids, before_mapping): a table with these items in its stream, a consumer of its own
    mapped to it; returns (the function's name, when the mapping was made, the trace's batches)."""
    lambda_, created = stack.client("lambda"), []

    def run(ids, before_mapping=lambda name: None):
        name = unique_id("nemesis-stream")
        trace = tmp_path / f"{name}.trace"
        trace.touch()
        described = stack.dynamodb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("consumer.py", TRACING_CONSUMER)
        lambda_.create_function(FunctionName=name, Runtime="python3.11", Handler="consumer.handler",
                                Role="arn:aws:iam::000000000000:role/nemesis", Code={"ZipFile": buffer.getvalue()},
                                Environment={"Variables": {"TRACE": str(trace)}})
        for item_id in ids:
            stack.dynamodb.put_item(TableName=name, Item={"id": {"S": item_id}})
        before_mapping(name)
        mapped_at = time.time()
        mapping = lambda_.create_event_source_mapping(FunctionName=name, EventSourceArn=described["LatestStreamArn"],
                                                      StartingPosition="TRIM_HORIZON", BatchSize=10)
        created.append((name, mapping["UUID"]))

        def batches():
            return [json.loads(line) for line in trace.read_text().splitlines()]
        return name, mapped_at, batches

    yield run
    for name, mapping in created:
        lambda_.delete_event_source_mapping(UUID=mapping)
        lambda_.delete_function(FunctionName=name)
        stack.dynamodb.delete_table(TableName=name)


def test_a_handled_stream_batch_is_delivered_again(stack, traced_stream):
    armed = {}
    name, _, batches = traced_stream(["a", "b", "c"], lambda name: armed.update(
        stack.arm_chaos("stream-duplicate", count=1, function=name)))
    wait_for(lambda: len(batches()) >= 2, timeout=20, what="the batch and its duplicate")
    time.sleep(2)  # and nothing more
    assert [ids for _, ids in batches()] == [["a", "b", "c"], ["a", "b", "c"]]
    assert fault(stack, armed["id"])["fired"] == 1


def test_a_stream_batch_is_held_back_then_delivered_once(stack, traced_stream):
    armed = {}
    name, mapped_at, batches = traced_stream(["a", "b"], lambda name: armed.update(
        stack.arm_chaos("stream-delay", count=1, function=name, params={"seconds": 4})))
    [(delivered_at, ids)] = wait_for(batches, timeout=20, what="the delayed batch")
    assert ids == ["a", "b"]
    assert delivered_at - mapped_at >= 4, "held back its seconds"
    time.sleep(2)
    assert len(batches()) == 1, "delivered once"
    assert fault(stack, armed["id"])["fired"] == 1


# --- The TTL reaper lags, then catches up --------------------------------------------------------------

@pytest.fixture
def ttl_table(stack):
    name = unique_id("nemesis-ttl")
    stack.dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    stack.dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "purge_at"})
    yield name
    stack.resume_ttl()
    stack.dynamodb.delete_table(TableName=name)


def lags_then_catches_up(stack, ttl_table):
    """Expired items stay while the reaper lags, and are all deleted soon after the lag ends."""
    expired = [unique_id("TTL") for _ in range(3)]
    for item_id in expired:
        stack.dynamodb.put_item(TableName=ttl_table, Item={"id": {"S": item_id}, "purge_at": {"N": str(int(time.time()) - 1)}})

    def left() -> list[str]:
        return [i for i in expired if "Item" in stack.dynamodb.get_item(TableName=ttl_table, Key={"id": {"S": i}})]

    lag = stack.faithful("GET", "ttl")["lag_seconds_left"]
    assert stack.faithful("GET", "ttl")["paused"] is True and lag > 1
    ends = time.monotonic() + lag
    time.sleep(lag - 1)
    assert left() == expired, "nothing expires during the lag"
    wait_for(lambda: not left(), timeout=10, what="the catch-up")
    assert time.monotonic() >= ends - 0.5
    assert stack.faithful("GET", "ttl")["paused"] is False


def test_a_timed_ttl_pause_lags_then_catches_up(stack, ttl_table):
    state = stack.pause_ttl(seconds=4)
    assert state["paused"] is True and 3 < state["lag_seconds_left"] <= 4
    lags_then_catches_up(stack, ttl_table)


def test_the_ttl_lag_fault_stops_the_reaper_for_its_seconds(stack, ttl_table):
    armed = stack.arm_chaos("ttl-lag", count=1, params={"seconds": 6})
    wait_for(lambda: fault(stack, armed["id"])["fired"] == 1, timeout=5, what="the next reaper pass")
    lags_then_catches_up(stack, ttl_table)
