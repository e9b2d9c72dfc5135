"""The event pipeline: stock stream -> alerts; TTL expiry -> release; the scheduled backstop.
Invariants 3-5: each transition once, lapsed holds back on sale, one alert per crossing, none lost."""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support import TEST_HOLD_SECONDS, run_redrive, unique_id, wait_for


def before(alerts, hold):
    """The alerts raised while `hold` was live (test holds lapse after a few seconds)."""
    return [a for a in alerts if a["body"]["at"] < hold["expires_at"]]


def test_reserving_across_the_threshold_sends_one_low_stock_alert(stack, new_product, inbox):
    product = new_product(main=(10, 5))
    first = stack.reserve(product, 4, "main").json()   # 6 left: still in stock
    stack.reserve(product, 1, "main")                  # 5 left: at the threshold -> LOW_STOCK
    # The alert tells the figures the consumer reads when it judges the crossing: taken before the
    # next hold, they are the crossing's own (a consumer that lags would say where it stands then).
    [alert] = before(inbox.wait_for(product, 1), first)
    stack.reserve(product, 1, "main")                  # 4 left: still low, no second alert
    assert alert["subject"] == f"Low stock: {product} at main - 5 left to sell, 10 on the shelf"
    body = alert["body"]
    assert (body["type"], body["warehouse_id"], body["available"], body["stock_count"], body["reserved_count"],
            body["threshold_level"], body["crossings"], body["cause"]) == ("LOW_STOCK", "main", 5, 10, 5, 5, 1, "hold")
    assert body["alert_id"] and body["at"].endswith("Z")
    assert alert["attributes"] == {"kind": "alert", "type": "LOW_STOCK", "product_id": product,
                                   "warehouse_id": "main", "alert_id": body["alert_id"]}
    assert len(before(inbox.settled(product), first)) == 1


def test_down_to_zero_then_restock(stack, new_product, inbox, tokens):
    product = new_product(main=(6, 5))   # in stock
    stack.reserve(product, 6, "main")     # straight to zero: one OUT_OF_STOCK, no LOW_STOCK on the way
    inbox.wait_for(product, 1)
    stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 20, "reason": "delivery"}, tokens["admin"])
    alerts = inbox.settled(product)
    kinds = [a["body"]["type"] for a in alerts]
    assert kinds == ["OUT_OF_STOCK", "BACK_IN_STOCK"], kinds
    assert alerts[0]["subject"] == f"Out of stock: {product} at main - 0 left to sell, 6 on the shelf"
    assert alerts[1]["subject"] == f"Back in stock: {product} at main - 20 left to sell, 26 on the shelf"


def test_holds_wobbling_around_the_threshold_do_not_re_alert(stack, new_product, inbox):
    product = new_product(main=(20, 10))  # band 2: recovery needs more than 12 available
    first = stack.reserve(product, 11, "main").json()    # 9 left -> LOW_STOCK
    for _ in range(5):
        hold = stack.reserve(product, 3, "main").json()          # 6 left
        stack.release(product, hold["reservation_id"])           # 9 left
        other = stack.reserve(product, 1, "main").json()         # 8 left
        stack.release(product, other["reservation_id"])          # 9 left
    extra = stack.reserve(product, 3, "main").json()             # 6
    stack.release(product, extra["reservation_id"])              # 9
    alerts = before(inbox.settled(product), first)
    assert [a["body"]["type"] for a in alerts] == ["LOW_STOCK"]


def test_a_lapsed_hold_is_released_by_the_ttl_path(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    assert stack.levels(product) == {"main": (5, 2, 3)}
    started = time.monotonic()
    wait_for(lambda: stack.levels(product) == {"main": (5, 0, 5)}, timeout=TEST_HOLD_SECONDS + 15,
             what="the lapsed hold's units back on sale")
    assert time.monotonic() - started >= TEST_HOLD_SECONDS - 2
    [record] = [h for h in stack.reservations(product)]
    assert (record["reservation_id"], record["state"]) == (hold["reservation_id"], "EXPIRED")
    item = stack.dynamodb.get_item(TableName=stack.description["reservations_table"], ConsistentRead=True,
                                   Key={"reservation_id": {"S": hold["reservation_id"]}})["Item"]
    assert item["ended_by"]["S"] == "system:ttl"
    stack.assert_reconciled(product)


def delay_ttl(stack, reservation_id):
    """As if DynamoDB TTL were late (it may take days on AWS): move the hold's purge time away."""
    stack.dynamodb.update_item(TableName=stack.description["reservations_table"],
                               Key={"reservation_id": {"S": reservation_id}},
                               UpdateExpression="SET purge_at = :later",
                               ExpressionAttributeValues={":later": {"N": str(int(time.time()) + 86400)}})


def test_the_backstop_releases_a_hold_ttl_has_not_deleted(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    delay_ttl(stack, hold["reservation_id"])
    time.sleep(TEST_HOLD_SECONDS + 1.5)
    assert stack.levels(product) == {"main": (5, 2, 3)}, "nothing but the backstop may release it here"
    report = stack.invoke("check_thresholds", {})
    assert report["holds_released"] >= 1
    assert stack.levels(product) == {"main": (5, 0, 5)}
    [record] = stack.reservations(product)
    assert record["state"] == "EXPIRED"
    # A second run finds nothing more to release for it.
    stack.invoke("check_thresholds", {})
    assert stack.levels(product) == {"main": (5, 0, 5)}
    stack.assert_reconciled(product)


def test_one_hold_the_backstop_cannot_release_does_not_block_the_others(stack, new_product):
    broken, fine = new_product(main=5), new_product(main=5)
    stuck = stack.reserve(broken, 1, "main").json()
    good = stack.reserve(fine, 1, "main").json()
    delay_ttl(stack, stuck["reservation_id"])
    delay_ttl(stack, good["reservation_id"])
    # The stuck hold's stock item disappears (a bad manual clean-up): releasing it must fail.
    stack.dynamodb.delete_item(TableName=stack.description["stock_table"],
                               Key={"product_id": {"S": broken}, "warehouse_id": {"S": "main"}})
    time.sleep(TEST_HOLD_SECONDS + 1.5)
    report = stack.invoke("check_thresholds", {})
    assert report["failures"] >= 1
    assert stack.levels(fine) == {"main": (5, 0, 5)}, "the good hold was released despite the broken one"
    [stuck_now] = stack.reservations(broken)
    assert stuck_now["state"] == "ACTIVE", "nothing half-done to the broken hold"


def test_ttl_and_backstop_racing_move_the_counters_once(stack, new_product):
    product = new_product(main=30)
    holds = [stack.reserve(product, 1, "main").json() for _ in range(12)]
    assert stack.levels(product) == {"main": (30, 12, 18)}
    time.sleep(TEST_HOLD_SECONDS - 0.5)
    # Around expiry: the TTL reaper deletes each second while backstop runs race it.
    with ThreadPoolExecutor(max_workers=3) as pool:
        for _ in range(6):
            list(pool.map(lambda _: stack.invoke("check_thresholds", {}), range(3)))
            time.sleep(0.3)
    wait_for(lambda: stack.levels(product) == {"main": (30, 0, 30)}, timeout=15, what="every hold released")
    states = {h["reservation_id"]: h["state"] for h in stack.reservations(product)}
    assert set(states) == {h["reservation_id"] for h in holds}
    assert set(states.values()) == {"EXPIRED"}
    time.sleep(2)  # late stream deliveries must not move anything
    assert stack.levels(product) == {"main": (30, 0, 30)}
    stack.assert_reconciled(product)


def test_a_repeated_ttl_delivery_changes_nothing(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    wait_for(lambda: stack.levels(product) == {"main": (5, 0, 5)}, timeout=TEST_HOLD_SECONDS + 15,
             what="the TTL path")
    removes = [r for r in stack.stream_records("reservations", hold["reservation_id"]) if r["eventName"] == "REMOVE"]
    assert len(removes) == 1 and removes[0]["userIdentity"]["principalId"] == "dynamodb.amazonaws.com"
    for _ in range(2):
        response = stack.invoke("expire_reservations", {"Records": removes})
        assert response["batchItemFailures"] == []
    assert stack.levels(product) == {"main": (5, 0, 5)}
    stack.assert_reconciled(product)


def test_the_expiry_consumer_ignores_deletes_that_are_not_ttl(stack, new_product):
    product = new_product(main=5)
    hold = stack.reserve(product, 2, "main").json()
    item = stack.dynamodb.get_item(TableName=stack.description["reservations_table"], ConsistentRead=True,
                                   Key={"reservation_id": {"S": hold["reservation_id"]}})["Item"]
    forged = {"eventID": "1", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "eventVersion": "1.1",
              "awsRegion": "us-east-1", "eventSourceARN": stack.description["reservations_stream_arn"],
              "dynamodb": {"Keys": {"reservation_id": item["reservation_id"]}, "OldImage": item,
                           "SequenceNumber": "1", "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    stack.invoke("expire_reservations", {"Records": [forged]})  # a user's delete: no service identity
    assert stack.levels(product) == {"main": (5, 2, 3)}


def test_a_repeated_stock_batch_sends_no_second_alert(stack, new_product, inbox, tokens):
    product = new_product(main=(6, 5))
    stack.admin_put(product, {"warehouse_id": "main", "adjust_by": -2}, tokens["admin"])  # 4 left: LOW
    inbox.wait_for(product, 1)
    batch = stack.stream_records("stock", product)
    assert len(batch) >= 2
    for _ in range(2):
        assert stack.invoke("stock_events", {"Records": batch})["batchItemFailures"] == []
    assert len(inbox.settled(product)) == 1


def test_a_poison_record_ends_in_the_dlq_and_later_records_still_flow(stack, new_product, inbox, tokens, tmp_path):
    poison = unique_id("POISON")
    # A stock item whose counter is not a number: the consumer cannot read it.
    stack.dynamodb.put_item(TableName=stack.description["stock_table"], Item={
        "product_id": {"S": poison}, "warehouse_id": {"S": "main"}, "stock_count": {"S": "lots"},
        "reserved_count": {"N": "0"}, "available_count": {"N": "1"}, "threshold_level": {"N": "5"}})
    product = new_product(main=(6, 5))
    stack.admin_put(product, {"warehouse_id": "main", "adjust_by": -6}, tokens["admin"])  # OUT_OF_STOCK
    [poison_record] = stack.stream_records("stock", poison)
    sequence = poison_record["dynamodb"]["SequenceNumber"]
    sqs = stack.client("sqs")
    dlq = stack.description["stream_failures_queue_url"]
    dead_letters = {}  # by message id: a message seen again after its visibility timeout counts once

    def poison_dead_letter():
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in messages:
            dead_letters[m["MessageId"]] = json.loads(m["Body"])
            sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        return [d for d in dead_letters.values() if d["DDBStreamBatchInfo"]["startSequenceNumber"] == sequence]

    def dead_letter_of(function: str):
        name = stack.description["functions"][function]
        return [d for d in poison_dead_letter() if d["requestContext"]["functionArn"].endswith(f":{name}")]

    # Both consumers of the stock stream (alerts; the audit trail with the live pages and the feed)
    # give up on it, each once.
    [dead] = wait_for(lambda: dead_letter_of("stock_events"), timeout=60, what="the poison record in the DLQ")
    wait_for(lambda: dead_letter_of("broadcast_stock"), timeout=60, what="the audit trail's dead letter")
    assert len(poison_dead_letter()) == 2
    info = dead["DDBStreamBatchInfo"]
    assert (info["batchSize"], info["endSequenceNumber"]) == (1, sequence)
    assert info["streamArn"] == stack.description["stock_stream_arn"]
    assert dead["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert [a["body"]["type"] for a in inbox.wait_for(product, 1, timeout=30)] == ["OUT_OF_STOCK"]
    # The runbook's redrive re-delivers both batches from the stream; the record is still poison, so
    # both stay in the queue and the script says so (exit 1).
    redrive = run_redrive(stack, tmp_path, "--redrive")
    assert redrive.returncode == 1, redrive.stdout + redrive.stderr
    assert redrive.stdout.count("  still failing:") == 2, redrive.stdout
    assert "2 failed batch(es) in the queue, 2 still failing" in redrive.stdout
    assert len(poison_dead_letter()) == 2


def test_the_backstop_repairs_a_drifted_status_and_sends_its_alert(stack, new_product, inbox):
    product = new_product(main=(3, 5))  # created low: one LOW_STOCK
    inbox.wait_for(product, 1)
    wait_for(lambda: stack.alert_state(product) == "LOW_STOCK", timeout=10, what="the LOW_STOCK state")
    # Drift: someone writes the stored status by hand. Counters unchanged, so the stream ignores it.
    stack.dynamodb.update_item(TableName=stack.description["stock_table"],
                               Key={"product_id": {"S": product}, "warehouse_id": {"S": "main"}},
                               UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                               ExpressionAttributeValues={":s": {"S": "IN_STOCK"}})
    time.sleep(1.5)
    assert len(inbox.for_product(product)) == 1
    report = stack.invoke("check_thresholds", {})
    assert report["statuses_repaired"] >= 1 and report["alerts_sent"] >= 1
    assert stack.alert_state(product) == "LOW_STOCK"
    alerts = inbox.settled(product)
    assert [a["body"]["type"] for a in alerts] == ["LOW_STOCK", "LOW_STOCK"]
    assert alerts[0]["body"]["alert_id"] != alerts[1]["body"]["alert_id"]


def test_the_backstop_sends_an_alert_that_was_claimed_but_not_published(stack, new_product, inbox):
    product = new_product(main=(10, 5))
    time.sleep(1.5)
    claimed = {"alert_id": str(uuid.uuid4()), "type": "LOW_STOCK", "product_id": product, "warehouse_id": "main",
               "available": 3, "stock_count": 10, "reserved_count": 7, "threshold_level": 5,
               "at": "2026-01-01T00:00:00Z"}
    # As if a consumer claimed the crossing and died before publishing.
    stack.dynamodb.update_item(TableName=stack.description["stock_table"],
                               Key={"product_id": {"S": product}, "warehouse_id": {"S": "main"}},
                               UpdateExpression="SET pending_alert = :a",
                               ExpressionAttributeValues={":a": {"S": json.dumps(claimed, separators=(",", ":"))}})
    stack.invoke("check_thresholds", {})
    [alert] = inbox.wait_for(product, 1)
    assert alert["body"]["alert_id"] == claimed["alert_id"]
    assert "pending_alert" not in stack.stock_item(product)
    stack.invoke("check_thresholds", {})
    assert len(inbox.settled(product)) == 1


def test_the_backstop_runs_on_a_schedule(stack):
    events = stack.client("events")
    function_arn = stack.client("lambda").get_function(
        FunctionName=stack.description["functions"]["check_thresholds"])["Configuration"]["FunctionArn"]
    rules = events.list_rule_names_by_target(TargetArn=function_arn)["RuleNames"]
    assert len(rules) == 1
    assert events.describe_rule(Name=rules[0])["ScheduleExpression"] == "rate(1 day)"  # the test stack's setting
