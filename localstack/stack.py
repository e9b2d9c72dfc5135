"""Bring the inventory stack up on a local AWS, and down again.

    python -m localstack.stack up    [--state-dir .local] [--port 4566] [--chaos SPEC] [--chaos-seed SEED]
    python -m localstack.stack down  [--state-dir .local]
    python -m localstack.stack token admin|shopper   (prints an access token for a demo user)
    python -m localstack.stack publish-frontend --stack-name NAME   (on AWS, after sam deploy)

`up` starts MiniStack with its fidelity fixes (unless AWS_ENDPOINT_URL points at a local AWS that is
already running, e.g. a LocalStack), packages the release binaries built by cargo, deploys
template.yaml with CloudFormation, seeds the demo catalogue and writes <state-dir>/stack.json.
Running it again updates the stack in place. The integration tests use the same functions.
--chaos arms the local AWS's nemesis (docs/CHAOS.md, "The faults"; the format is in nemesis.py), e.g.
--chaos "conflict:0.05,throttle:0.02"; --chaos-seed replays a run's dice.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import mimetypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from cfnlint.decode import cfn_yaml
from ministack.services.cloudformation import language_extensions

from localstack.inventory_client import Stack

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SEED = Path(__file__).resolve().parent / "seed.json"
LAUNCHER = Path(__file__).resolve().parent / "ministack_faithful.py"
RELEASE_DIR = ROOT / "target" / "release"
FRONTEND_DIST = ROOT / "frontend" / "dist"
# How often the product page refreshes availability while it is visible.
FRONTEND_REFRESH_SECONDS = 5
STACK_NAME = "inventory"
REGION = "us-east-1"
ARTIFACT_BUCKET = "inventory-artifacts"
# Local credentials only; MiniStack accepts any.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}


def step(message: str):
    print(f"==> {message}", flush=True)


# --- the local AWS ------------------------------------------------------------------------------

def healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def start_ministack(state_dir: Path, port: int, ttl_reaper_interval: float = 1.0, chaos: str = "",
                    chaos_seed: str = "") -> str:
    """Starts MiniStack (with fidelity fixes) on 127.0.0.1:port in the background; returns its endpoint.
    `chaos` arms the launcher's nemesis (FAITHFUL_CHAOS), on a running one through its control endpoint."""
    endpoint = f"http://127.0.0.1:{port}"
    pid_file = state_dir / "ministack.pid"
    if healthy(endpoint):
        if pid_file.exists():
            if chaos:
                arm_chaos(endpoint, chaos)
            return endpoint
        raise SystemExit(f"port {port} is taken by something this tool did not start; stop it or pick --port")
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, **LOCAL_CREDENTIALS,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        # The functions inherit this environment: their SDK clients must call the local AWS.
        "AWS_ENDPOINT_URL": endpoint,
        "TTL_REAPER_INTERVAL_SECONDS": str(ttl_reaper_interval),
        "LOG_LEVEL": "INFO",
        # MiniStack's IoT broker would take port 8883 on every interface; two stacks would collide.
        "IOT_MTLS_ENABLED": "0",
    }
    if chaos:  # else FAITHFUL_CHAOS, if set, passes through from this environment
        chaos_specs(chaos)  # a bad setting stops here, not in the launcher's log
        env["FAITHFUL_CHAOS"] = chaos
    if chaos_seed:
        env["FAITHFUL_CHAOS_SEED"] = chaos_seed
    log = open(state_dir / "ministack.log", "ab")
    process = subprocess.Popen([sys.executable, str(LAUNCHER)], env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, cwd=state_dir)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while not healthy(endpoint):
        if process.poll() is not None:
            raise SystemExit(f"MiniStack exited with {process.returncode}; see {state_dir / 'ministack.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"MiniStack not healthy after 30 s; see {state_dir / 'ministack.log'}")
        time.sleep(0.1)
    return endpoint


def chaos_specs(chaos: str) -> list[dict]:
    """The fault specs of a --chaos setting (the launcher's FAITHFUL_CHAOS format), checked."""
    from localstack.nemesis import parse_chaos, validated
    try:
        specs = parse_chaos(chaos)
        for spec in specs:
            validated(spec)
    except ValueError as err:
        raise SystemExit(f"--chaos: {err}") from None
    return specs


def arm_chaos(endpoint: str, chaos: str) -> None:
    """Arms the nemesis of a launcher already running (POST /_faithful/chaos)."""
    specs = chaos_specs(chaos)
    request = urllib.request.Request(f"{endpoint}/_faithful/chaos", data=json.dumps(specs).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as err:
        raise SystemExit(f"--chaos: {err.read().decode()}") from None


def stop_ministack(state_dir: Path) -> bool:
    pid_file = state_dir / "ministack.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)  # the launcher and the function processes it started
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    return True


def clients(endpoint: str):
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    config = BotoConfig(retries={"max_attempts": 3, "mode": "standard"})
    return lambda service: session.client(service, endpoint_url=endpoint, config=config)


# --- package and deploy ----------------------------------------------------------------------------

def load_template() -> dict:
    return json.loads(json.dumps(cfn_yaml.loads(TEMPLATE.read_text())))


def expanded_template() -> dict:
    """The template with AWS::LanguageExtensions applied (its Fn::ForEach loops unrolled, with the
    parameters' defaults) and SAM not yet: every resource under its logical id, as tests and tools
    read it. MiniStack's implementation of the transform, the one that deploys it locally."""
    template = load_template()
    defaults = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    return language_extensions.apply(template, defaults)


def functions_in(template: dict) -> dict[str, str]:
    """Logical id -> cargo binary name, for every function in the template. The functions are declared
    one by one (each with a policy of its own), never in an Fn::ForEach loop, which this skips."""
    return {
        logical_id: resource["Metadata"]["BuildProperties"]["Binary"]
        for logical_id, resource in template["Resources"].items()
        if not logical_id.startswith("Fn::ForEach::") and resource["Type"] == "AWS::Serverless::Function"
    }


def bootstrap_zip(binary: Path) -> bytes:
    """The binary as `bootstrap`, executable, with fixed timestamps so equal code gives an equal zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, binary.read_bytes())
    return buffer.getvalue()


def package(template: dict, s3) -> dict:
    """Uploads each function's zip under a content hash and points its CodeUri there."""
    try:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    for logical_id, binary_name in functions_in(template).items():
        binary = RELEASE_DIR / binary_name
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: run `cargo build --release` first (make does)")
        code = bootstrap_zip(binary)
        key = f"{binary_name}-{hashlib.sha256(code).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=code)
        template["Resources"][logical_id]["Properties"]["CodeUri"] = {"Bucket": ARTIFACT_BUCKET, "Key": key}
    return template


def deploy(cloudformation, s3, template: dict, parameters: dict[str, str]) -> dict[str, str]:
    """Creates or updates the stack and waits for it; returns its outputs. The template goes by S3
    (TemplateURL), as `sam deploy` sends it: CloudFormation takes at most 51,200 bytes inline."""
    body = json.dumps(template).encode()
    key = f"template-{hashlib.sha256(body).hexdigest()[:16]}.json"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
    request = dict(
        StackName=STACK_NAME,
        TemplateURL=f"https://s3.amazonaws.com/{ARTIFACT_BUCKET}/{key}",
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    try:
        cloudformation.describe_stacks(StackName=STACK_NAME)
        exists = True
    except ClientError:
        exists = False
    try:
        (cloudformation.update_stack if exists else cloudformation.create_stack)(**request)
    except ClientError as err:
        if "No updates are to be performed" not in str(err):
            raise
    deadline = time.monotonic() + 300
    while True:
        stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        status = stack["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if status.endswith("FAILED") or "ROLLBACK" in status or time.monotonic() > deadline:
            events = cloudformation.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
            reasons = [f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events
                       if e.get("ResourceStatusReason")][:10]
            raise SystemExit(f"deploy ended in {status}:\n" + "\n".join(reasons))
        time.sleep(0.5)


# --- the frontend --------------------------------------------------------------------------------

def local_frontend_origin(endpoint: str, bucket: str) -> str:
    """The bucket's website origin on the local AWS: AWS's s3-website host form under *.localhost,
    which browsers resolve to this machine and MiniStack serves as virtual-hosted S3."""
    port = endpoint.rsplit(":", 1)[-1]
    return f"http://{bucket}.s3-website-{REGION}.localhost:{port}"


def frontend_bucket(stack_name: str, account: str, region: str) -> str:
    return f"{stack_name}-web-{account}-{region}"  # as FrontendBucket's BucketName in template.yaml


def publish_frontend(s3, bucket: str, config: dict) -> None:
    """Uploads the built pages and the config.json that tells them where the API and Cognito are."""
    if not (FRONTEND_DIST / "index.html").exists():
        raise SystemExit(f"{FRONTEND_DIST} is missing: build the frontend first (make frontend)")
    for file in sorted(p for p in FRONTEND_DIST.rglob("*") if p.is_file()):
        key = file.relative_to(FRONTEND_DIST).as_posix()
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        # Hashed assets never change; the pages and config.json are re-read on every visit.
        cache = "public, max-age=31536000, immutable" if key.startswith("assets/") else "no-cache"
        s3.put_object(Bucket=bucket, Key=key, Body=file.read_bytes(), ContentType=content_type, CacheControl=cache)
    s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config, indent=2).encode(),
                  ContentType="application/json", CacheControl="no-cache")


def frontend_config(api_url: str, websocket_url: str, region: str, cognito_url: str, pool_id: str,
                    client_id: str, hold_seconds: int, catalogue: list[dict]) -> dict:
    return {
        "apiUrl": api_url,
        "websocketUrl": websocket_url,
        "region": region,
        "cognitoUrl": cognito_url,
        "userPoolId": pool_id,  # the pages sign in with SRP, which signs over the pool's name
        "userPoolClientId": client_id,
        "holdSeconds": hold_seconds,
        "refreshSeconds": FRONTEND_REFRESH_SECONDS,
        "products": [{"product_id": p["product_id"], "name": p.get("name", p["product_id"])} for p in catalogue],
    }


def seed(dynamodb, table: str) -> list[dict]:
    """Creates the demo items that do not exist yet; a re-run keeps whatever the stock is now."""
    catalogue = json.loads(SEED.read_text())["products"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for product in catalogue:
        for warehouse in product["warehouses"]:
            item = {
                "product_id": {"S": product["product_id"]},
                "warehouse_id": {"S": warehouse["warehouse_id"]},
                "stock_count": {"N": str(warehouse["stock_count"])},
                "reserved_count": {"N": "0"},
                "available_count": {"N": str(warehouse["stock_count"])},
                "threshold_level": {"N": str(warehouse["threshold_level"])},
                "version": {"N": "1"},
                "sequence": {"N": "1"},
                "last_updated": {"S": now},
                "last_change": {"M": {"kind": {"S": "set"}, "actor": {"S": "system:seed"}}},
            }
            try:
                dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(product_id)")
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
    return catalogue


DEMO_USERS = {
    "admin": {"username": "admin@example.com", "groups": ["inventory-admins"]},
    "shopper": {"username": "shopper@example.com", "groups": []},
}


def demo_password() -> str:
    # Meets the pool's policy (12+ characters, upper, lower, digit).
    return "Demo-" + secrets.token_urlsafe(12) + "a1A"


def ensure_demo_users(cognito, pool_id: str, previous: dict) -> dict:
    """Creates the demo admin and shopper (local only); keeps their passwords across re-runs."""
    users = {}
    for role, spec in DEMO_USERS.items():
        username = spec["username"]
        password = previous.get(role, {}).get("password") or demo_password()
        try:
            cognito.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS",
                                      UserAttributes=[{"Name": "email", "Value": username},
                                                      {"Name": "email_verified", "Value": "true"}])
        except ClientError as err:
            if err.response["Error"]["Code"] != "UsernameExistsException":
                raise
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
        for group in spec["groups"]:
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        users[role] = {"username": username, "password": password}
    return users


# make up's quiet period after an alert (the template's AlertQuietSeconds; 15 minutes by default on
# AWS): a minute, so a tester sees damping fold a churning cart's crossings and the backstop send
# the one alert that says where the item stands (localstack/scenarios/low_stock_alert.py).
LOCAL_ALERT_QUIET_SECONDS = 60


def up(state_dir: Path, port: int, ttl_reaper_interval: float = 1.0, hold_seconds: int = 900,
       backstop_schedule: str = "rate(1 minute)", chaos: str = "", chaos_seed: str = "",
       alert_quiet_seconds: int = LOCAL_ALERT_QUIET_SECONDS, digest_schedule: str | None = None) -> dict:
    """The whole bring-up; returns what it writes to <state-dir>/stack.json."""
    started = time.monotonic()
    external = os.environ.get("AWS_ENDPOINT_URL")
    if external:
        endpoint = external.rstrip("/")
        step(f"using the local AWS at {endpoint} (AWS_ENDPOINT_URL)")
        if chaos:
            arm_chaos(endpoint, chaos)
    else:
        step(f"starting MiniStack with fidelity fixes on 127.0.0.1:{port}")
        endpoint = start_ministack(state_dir, port, ttl_reaper_interval, chaos, chaos_seed)
    client = clients(endpoint)
    step("packaging functions")
    template = package(load_template(), client("s3"))
    step(f"deploying stack '{STACK_NAME}'")
    account = client("sts").get_caller_identity()["Account"]
    origin = local_frontend_origin(endpoint, frontend_bucket(STACK_NAME, account, REGION))
    outputs = deploy(client("cloudformation"), client("s3"), template, {
        "Architecture": "x86_64", "HoldSeconds": str(hold_seconds), "CreateLocalAlertsQueue": "true",
        "BackstopSchedule": backstop_schedule, "FrontendOrigin": origin,
        "AlertQuietSeconds": str(alert_quiet_seconds),
        # The e-mails' links: MiniStack serves each API at <api-id>.execute-api.localhost:<port> too.
        "LocalApiLinkDomain": f"localhost:{endpoint.rsplit(':', 1)[-1]}",
        **({"DigestSchedule": digest_schedule} if digest_schedule else {})})
    step("seeding the demo catalogue and demo users")
    catalogue = seed(client("dynamodb"), outputs["StockTableName"])
    stack_file = state_dir / "stack.json"
    previous = json.loads(stack_file.read_text()).get("demo_users", {}) if stack_file.exists() else {}
    users = ensure_demo_users(client("cognito-idp"), outputs["UserPoolId"], previous)
    # The local AWS serves every API under one port; on AWS this is outputs["ApiUrl"].
    api_url = f"{endpoint}/_aws/execute-api/{outputs['ApiId']}/{outputs['StageName']}"
    # The same for the live WebSocket API; on AWS this is outputs["LiveUrl"].
    websocket_url = f"ws{endpoint.removeprefix('http')}/_aws/execute-api/{outputs['LiveApiId']}/{outputs['StageName']}"
    step("publishing the frontend")
    publish_frontend(client("s3"), outputs["FrontendBucketName"], frontend_config(
        api_url, websocket_url, REGION, f"{endpoint}/", outputs["UserPoolId"], outputs["UserPoolClientId"],
        int(outputs["HoldSeconds"]), catalogue))
    stack = {
        "endpoint": endpoint,
        "region": REGION,
        "stack_name": STACK_NAME,
        "api_id": outputs["ApiId"],
        "api_url": api_url,
        "websocket_url": websocket_url,
        "frontend_origin": origin,
        "shop_url": f"{origin}/index.html",
        "admin_url": f"{origin}/admin.html",
        "stock_table": outputs["StockTableName"],
        "reservations_table": outputs["ReservationsTableName"],
        "requests_table": outputs["RequestsTableName"],
        "stock_stream_arn": outputs["StockStreamArn"],
        "reservations_stream_arn": outputs["ReservationsStreamArn"],
        "user_pool_id": outputs["UserPoolId"],
        "user_pool_client_id": outputs["UserPoolClientId"],
        "hold_seconds": int(outputs["HoldSeconds"]),
        "alert_quiet_seconds": int(outputs["AlertQuietSeconds"]),
        "alerts_topic_arn": outputs["AlertsTopicArn"],
        "alerts_queue_url": outputs["LocalAlertsQueueUrl"],
        "digest_queue_url": outputs["LocalDigestQueueUrl"],
        "events_queue_url": outputs["LocalEventsQueueUrl"],
        "event_bus_name": outputs["EventBusName"],
        "connections_table": outputs["ConnectionsTableName"],
        "stream_failures_queue_url": outputs["StreamFailuresQueueUrl"],
        "history_table": outputs["HistoryTableName"],
        "subscriptions_table": outputs["SubscriptionsTableName"],
        "operations_topic_arn": outputs["OperationsTopicArn"],
        "dashboard_name": outputs["DashboardName"],
        "functions": {name: outputs[f"{key}FunctionName"] for name, key in [
            ("check_thresholds", "CheckThresholds"), ("stock_events", "StockEvents"),
            ("expire_reservations", "ExpireReservations"),
            ("send_digest", "SendDigest"), ("back_in_stock", "BackInStock"),
            ("broadcast_stock", "BroadcastStock")]},
        "demo_products": [p["product_id"] for p in catalogue],
        # Local only: passwords of the demo users this bring-up created.
        "demo_users": users,
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    stack_file.write_text(json.dumps(stack, indent=2) + "\n")
    stack_file.chmod(0o600)
    step(f"stack ready in {time.monotonic() - started:.1f} s")
    return stack


def print_welcome(stack: dict, state_dir: Path):
    api = stack["api_url"]
    product = stack["demo_products"][0]
    users = stack["demo_users"]
    print(f"""
Inventory stack is up.
  Shop:         {stack['shop_url']}
  Admin panel:  {stack['admin_url']}
  API:          {api}
  Live stock:   {stack['websocket_url']}  (WebSocket)
  Local AWS:    {stack['endpoint']}  (region {stack['region']}, any credentials)
  Stack file:   {state_dir / 'stack.json'}
  Demo admin:   {users['admin']['username']} / {users['admin']['password']}
  Demo shopper: {users['shopper']['username']} / {users['shopper']['password']}
  Holds last:   {stack['hold_seconds']} s
  Alerts quiet: {stack['alert_quiet_seconds']} s after each low-stock alert (AWS default: 900 s)

Try:
  curl -s {api}/inventory/{product}
  CART=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')   # your cart's secret
  curl -s -X POST {api}/inventory/{product}/reserve -H "Cart-Token: $CART" -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" -d '{{"quantity": 2}}'
  curl -s -X DELETE {api}/inventory/{product}/reservations/<reservation_id> -H "Cart-Token: $CART"

  TOKEN=$(make -s token ROLE=shopper)   # checkout needs a signed-in user and the cart
  curl -s -X PUT {api}/inventory/{product} -H "Authorization: Bearer $TOKEN" -H "Cart-Token: $CART" -d '{{"reservation_id": "<id>"}}'
  TOKEN=$(make -s token ROLE=admin)     # stock changes need an inventory-admins member
  curl -s -X PUT {api}/inventory/{product} -H "Authorization: Bearer $TOKEN" -d '{{"adjust_by": 50, "warehouse_id": "main", "reason": "delivery"}}'
  curl -s -H "Authorization: Bearer $TOKEN" '{api}/inventory?status=LOW_STOCK'

Stop it with: make down
""")


def publish_to_aws(stack_name: str):
    """Publishes the built pages to a stack deployed on AWS (credentials and region from the usual
    AWS settings). The catalogue is empty there: the page opens products by id."""
    session = boto3.session.Session()
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])}
    region = session.region_name
    # Behind the edge layer (EdgeProtection) the pages call the API on their own HTTPS origin.
    api_url = outputs.get("EdgeUrl") or outputs["ApiUrl"]
    # The live socket goes to API Gateway directly (its own throttling; no edge rule for WebSockets).
    publish_frontend(session.client("s3"), outputs["FrontendBucketName"], frontend_config(
        api_url, outputs["LiveUrl"], region, f"https://cognito-idp.{region}.amazonaws.com/", outputs["UserPoolId"],
        outputs["UserPoolClientId"], int(outputs["HoldSeconds"]), []))
    print(f"published: {outputs['EdgeUrl'] + '/index.html' if 'EdgeUrl' in outputs else outputs['FrontendUrl']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "token", "publish-frontend"])
    parser.add_argument("role", nargs="?", choices=sorted(DEMO_USERS), default="admin")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "4566")))
    parser.add_argument("--stack-name", default=STACK_NAME, help="publish-frontend: the deployed stack on AWS")
    parser.add_argument("--chaos", default="", help="up: faults for the local AWS's nemesis (docs/CHAOS.md)")
    parser.add_argument("--chaos-seed", default="", help="up: the nemesis's seed, to replay a run")
    args = parser.parse_args()
    if args.command == "publish-frontend":
        publish_to_aws(args.stack_name)
        return
    if args.command == "up":
        stack = up(args.state_dir, args.port, float(os.environ.get("TTL_REAPER_INTERVAL_SECONDS", "1")),
                   int(os.environ.get("HOLD_SECONDS", "900")), chaos=args.chaos, chaos_seed=args.chaos_seed)
        print_welcome(stack, args.state_dir)
    elif args.command == "token":
        print(Stack(json.loads((args.state_dir / "stack.json").read_text())).token(args.role))
    else:
        print("stopped MiniStack" if stop_ministack(args.state_dir) else "nothing to stop (no pid file)")


if __name__ == "__main__":
    main()
