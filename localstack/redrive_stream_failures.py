"""Lists, and re-delivers, the stream batches that failed all their retries.

    python localstack/redrive_stream_failures.py             # list what waits in the DLQ
    python localstack/redrive_stream_failures.py --redrive   # re-deliver each batch to its function

Each message in the stream-failures queue (output StreamFailuresQueueUrl) names the function, the
stream, the shard and the range of sequence numbers. The records are read back from the stream
(DynamoDB keeps them 24 hours) and handed to the function as its event source mapping would. A
batch the function now handles is deleted from the queue; one that still fails stays, and the
script says so. The consumers are idempotent: a record delivered twice changes nothing twice.

Reads the local stack's .local/stack.json (or STACK_JSON); with --stack-name it uses the deployed
stack's outputs and the usual AWS credentials and region instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inventory_client import lambda_record  # noqa: E402

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


def batch_records(streams, info: dict) -> list[dict]:
    """The failed batch's records, from its first to its last sequence number."""
    iterator = streams.get_shard_iterator(StreamArn=info["streamArn"], ShardId=info["shardId"],
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=info["startSequenceNumber"])["ShardIterator"]
    last, records = int(info["endSequenceNumber"]), []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=100)
        for record in page["Records"]:
            if int(record["dynamodb"]["SequenceNumber"]) > last:
                return records
            records.append(lambda_record(record, info["streamArn"]))
        iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redrive", action="store_true", help="re-deliver the batches (default: only list them)")
    parser.add_argument("--stack-name", help="a stack deployed on AWS (default: the local stack)")
    args = parser.parse_args()
    client, queue_url = clients_and_queue(args.stack_name)
    sqs, streams, lambda_ = client("sqs"), client("dynamodbstreams"), client("lambda")
    messages = waiting_messages(sqs, queue_url)
    still_failing = 0
    for message in messages:
        failure = json.loads(message["Body"])
        info, function = failure["DDBStreamBatchInfo"], failure["requestContext"]["functionArn"]
        print(f"{function.rsplit(':', 1)[-1]}: {info['batchSize']} record(s) {info['startSequenceNumber']}"
              f"..{info['endSequenceNumber']} of {info['shardId']} ({failure['requestContext']['condition']})")
        if not args.redrive:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
            continue
        records = batch_records(streams, info)
        result = lambda_.invoke(FunctionName=function, Payload=json.dumps({"Records": records}).encode())
        answer = json.loads(result["Payload"].read() or b"null")
        if "FunctionError" in result or (answer or {}).get("batchItemFailures"):
            still_failing += 1
            print(f"  still failing: {answer}; left in the queue")
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            print(f"  re-delivered {len(records)} record(s); removed from the queue")
    print(f"{len(messages)} failed batch(es) in the queue" + (f", {still_failing} still failing" if args.redrive else ""))
    return 1 if still_failing else 0


if __name__ == "__main__":
    sys.exit(main())
