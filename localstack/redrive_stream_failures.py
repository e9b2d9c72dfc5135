"""Lists, and re-delivers, the stream records that failed all their retries.

    python -m localstack.redrive_stream_failures             # list what waits in the DLQ
    python -m localstack.redrive_stream_failures --redrive   # re-deliver each batch to its function
    python -m localstack.redrive_stream_failures --redrive --function NAME   # only that function's

Each message in the stream-failures queue (output StreamFailuresQueueUrl) is Lambda's on-failure
record: it names the function, the stream, the shard and the range of sequence numbers the event
source mapping skipped, one record (a record that failed alone, e.g. after bisection) or many (a
whole batch). Every record in the range is read back from the stream (DynamoDB keeps them 24 hours),
passed through the mapping's filter criteria as the mapping would, and handed to the function in
batches of the mapping's batch size, oldest range first. A range the function now handles is deleted
from the queue; one that still fails (an error, or a batch item failure) stays, and the script says
so. The consumers are idempotent: a record delivered twice changes nothing twice.

Reads the local stack's .local/stack.json (or STACK_JSON); with --stack-name it uses the deployed
stack's outputs and the usual AWS credentials and region instead. Exit code 1 if anything still fails.
"""

from __future__ import annotations

import argparse
import json
import operator as operator_
import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from localstack.inventory_client import lambda_record

ROOT = Path(__file__).resolve().parent.parent


def clients_and_queue(stack_name: str | None):
    if stack_name:
        session = boto3.session.Session()
        outputs = {o["OutputKey"]: o["OutputValue"] for o in
                   session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]}
        return session.client, outputs["StreamFailuresQueueUrl"]
    description = json.loads(Path(os.environ.get("STACK_JSON") or ROOT / ".local" / "stack.json").read_text())
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                     region_name=description["region"])
    return (lambda service: session.client(service, endpoint_url=description["endpoint"])), \
        description["stream_failures_queue_url"]


def waiting_messages(sqs, queue_url: str) -> list[dict]:
    messages = {}
    while True:
        page = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=120,
                                   WaitTimeSeconds=1).get("Messages", [])
        if not page:
            return list(messages.values())
        messages.update((m["MessageId"], m) for m in page)


def range_records(streams, info: dict) -> list[dict]:
    """Every record from the range's first to its last sequence number, as Lambda delivers them."""
    iterator = streams.get_shard_iterator(StreamArn=info["streamArn"], ShardId=info["shardId"],
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    last, records = int(info["endSequenceNumber"]), []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:
            if int(record["dynamodb"]["SequenceNumber"]) > last:
                return records
            records.append(lambda_record(record, info["streamArn"]))
        iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


# --- Lambda's event filtering (the mapping's FilterCriteria), for the rules a stream filter uses ---

def _matches_rule(rule, value, present: bool) -> bool:
    if not isinstance(rule, dict):
        if isinstance(rule, (int, float)) and not isinstance(rule, bool) and isinstance(value, (int, float)):
            return present and float(rule) == float(value)
        return present and rule == value
    if len(rule) != 1:
        raise ValueError(f"unsupported filter rule {rule}")
    (operator, operand), = rule.items()
    if operator == "exists":
        return present == bool(operand)
    if not present:
        return False
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if operator == "anything-but":
        if isinstance(operand, dict):
            return not _matches_rule(operand, value, present)
        return value not in (operand if isinstance(operand, list) else [operand])
    if operator == "numeric":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        tests = {"=": operator_.eq, "<": operator_.lt, "<=": operator_.le, ">": operator_.gt, ">=": operator_.ge}
        return all(tests[op](float(value), float(bound)) for op, bound in zip(operand[::2], operand[1::2]))
    raise ValueError(f"unsupported filter rule {rule}")


def matches(pattern: dict, event) -> bool:
    """Whether an event matches one filter pattern: every key of the pattern, nested objects by their
    keys, a list of rules by any of them (against any element, when the value is a list)."""
    for key, rule in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(rule, dict):
            inner = matches(rule, value if isinstance(value, dict) else {}) if present else _absent_ok(rule)
            if not inner:
                return False
        elif isinstance(rule, list):
            values = value if isinstance(value, list) and value else [value]
            if not any(_matches_rule(r, v, present) for r in rule for v in values):
                return False
        else:
            raise ValueError(f"filter pattern value for {key!r} must be an object or a list of rules")
    return True


def _absent_ok(pattern: dict) -> bool:
    """An absent object matches only a pattern that asks for its keys not to exist."""
    return all(isinstance(rule, list) and {"exists": False} in rule for rule in pattern.values())


def filtered(records: list[dict], mapping: dict) -> list[dict]:
    """The records the event source mapping would hand to the function (its filters are ORed)."""
    patterns = [json.loads(f["Pattern"]) for f in (mapping.get("FilterCriteria") or {}).get("Filters", [])]
    if not patterns:
        return records
    return [r for r in records if any(matches(p, r) for p in patterns)]


def mapping_of(lambda_, function: str, stream_arn: str) -> dict | None:
    try:
        mappings = lambda_.list_event_source_mappings(FunctionName=function,
                                                      EventSourceArn=stream_arn)["EventSourceMappings"]
    except ClientError:
        return None
    return next((m for m in mappings if m.get("EventSourceArn") == stream_arn), None)


def redeliver(lambda_, streams, failure: dict) -> tuple[bool, str]:
    """Re-delivers one failure record's range; (handled, what happened)."""
    info, function = failure["DDBStreamBatchInfo"], failure["requestContext"]["functionArn"]
    mapping = mapping_of(lambda_, function, info["streamArn"])
    if mapping is None:
        return False, "no event source mapping of this function on this stream (its filter is unknown)"
    try:
        records = range_records(streams, info)
    except ClientError as err:
        return False, f"the records can no longer be read from the stream ({err.response['Error']['Code']})"
    try:
        wanted = filtered(records, mapping)
    except ValueError as err:
        return False, f"the mapping's filter cannot be applied here: {err}"
    if not wanted:
        return True, f"nothing to re-deliver: the mapping's filter takes none of the {len(records)} record(s)"
    size = int(mapping.get("BatchSize") or 100)
    for first in range(0, len(wanted), size):
        batch = wanted[first:first + size]
        result = lambda_.invoke(FunctionName=function, Payload=json.dumps({"Records": batch}).encode())
        answer = json.loads(result["Payload"].read() or b"null")
        if "FunctionError" in result or (isinstance(answer, dict) and answer.get("batchItemFailures")):
            return False, f"{answer}"
    return True, f"re-delivered {len(wanted)} record(s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redrive", action="store_true", help="re-deliver the batches (default: only list them)")
    parser.add_argument("--stack-name", help="a stack deployed on AWS (default: the local stack)")
    parser.add_argument("--function", help="only the failures of this function (its name, or part of it)")
    args = parser.parse_args()
    client, queue_url = clients_and_queue(args.stack_name)
    sqs, streams, lambda_ = client("sqs"), client("dynamodbstreams"), client("lambda")
    failures = []
    for message in waiting_messages(sqs, queue_url):
        try:
            failure = json.loads(message["Body"])
            failure["DDBStreamBatchInfo"]["startSequenceNumber"], failure["requestContext"]["functionArn"]
        except (ValueError, KeyError, TypeError):
            print(f"message {message['MessageId']} is not a stream on-failure record; left in the queue")
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            continue
        if args.function and args.function not in failure["requestContext"]["functionArn"]:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            continue
        failures.append((failure, message))
    # Oldest range first, per function and stream, so each item's changes arrive in their order.
    failures.sort(key=lambda f: (f[0]["requestContext"]["functionArn"], f[0]["DDBStreamBatchInfo"]["streamArn"],
                                 int(f[0]["DDBStreamBatchInfo"]["startSequenceNumber"])))
    still_failing = 0
    for failure, message in failures:
        info, function = failure["DDBStreamBatchInfo"], failure["requestContext"]["functionArn"]
        print(f"{function.rsplit(':', 1)[-1]}: {info['batchSize']} record(s) {info['startSequenceNumber']}"
              f"..{info['endSequenceNumber']} of {info['shardId']} ({failure['requestContext']['condition']})")
        if not args.redrive:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            continue
        handled, what = redeliver(lambda_, streams, failure)
        if handled:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            print(f"  {what}; removed from the queue")
        else:
            still_failing += 1
            print(f"  still failing: {what}; left in the queue")
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
    print(f"{len(failures)} failed batch(es) in the queue" + (f", {still_failing} still failing" if args.redrive else ""))
    return 1 if still_failing else 0


if __name__ == "__main__":
    sys.exit(main())
