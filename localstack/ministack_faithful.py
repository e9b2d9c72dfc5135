"""Start MiniStack with small fidelity fixes, so the stack behaves locally as it does on AWS.

Each fix restores one AWS behaviour that the product relies on (see ../README.md, "Local AWS").
MiniStack is pinned (requirements.txt); every internal a fix touches is fingerprinted below, and a
MiniStack whose internals differ stops here with a clear error instead of running unfaithfully.
Product code never special-cases the emulator: these fixes are the only place that knows.

At run time it also serves a control endpoint, /_faithful/..., on MiniStack's port: pause and resume
the TTL reaper, arm the nemesis's faults (feature 12, "The control endpoint" below, ../docs/CHAOS.md).

Usage: python ministack_faithful.py            (GATEWAY_PORT, BIND_HOST, TTL_REAPER_INTERVAL_SECONDS,
                                                FAITHFUL_CHAOS, FAITHFUL_CHAOS_SEED: faults armed from the start)
       python ministack_faithful.py --check    (verify the fingerprints and exit)
       python ministack_faithful.py --fingerprints (print them, to re-pin after reviewing an upgrade)
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import concurrent.futures
import contextvars
import hashlib
import heapq
import inspect
import json
import logging
import os
import queue
import select
import signal
import sys
import threading
import time
import uuid
from importlib.metadata import version
from urllib.parse import parse_qs

from nemesis import (PARTITION_WRITE_UNITS_PER_SECOND, WRITE_OPERATIONS, Nemesis, WriteRate, internal_server_error,
                     parse_chaos, sns_error, throttled, transaction_conflict)

PINNED_VERSION = "1.5.33"

# sha256 of the source of every MiniStack function a fix replaces, wraps or relies on.
FINGERPRINTS = {
    "dynamodb._ttl_reaper": "66841bfd60279dd7a992068c2507c2fce8791c33c4a28d754b2e66a819cf0933",
    "dynamodb._emit_stream_event": "8568d0446f26eaba3f9c3b344c3451cf0684981c8207d7df50da03164495b21b",
    "dynamodb._build_change_record": "45f604ee477218c38962119da32482c17974d070e1a9887f64273c46570bc4a7",
    "dynamodb._remove_item": "5cce50c99688dab8a5219d2e4bbcd06fc3b74c932d6aa6b47db5afc614203a1e",
    "dynamodb._update_ttl": "e8243a4fbbb8997d50df7a01ceccf9841238b74356b22756a0c1cd71c8dc1056",
    "provisioners._ddb_create": "277586e016c693bd24c48e035ce2462bc8a6a2a7bad88531b3282eb881aa2d8d",
    "provisioners._ddb_update": "0665980ffdd064916e0e92c990a498d09b787ca0c11a08a77293773f9fe80bc7",
    "lambda_runtime.ProvidedWorker._build_handler_class": "806d5b8e506093e3c5822e742c2df98e9b7626ac3001c470086a19d17958dbaa",
    "lambda_runtime.Worker._drain_stderr_bounded": "3fd7cc742872e604e4937310429a4021719467dd7d2993734c4331c01e4427ab",
    "lambda_runtime.ProvidedWorker.invoke": "00d96a1a25c6146afbac3d89105a4ae630523b6c5a112e49c3da3783487a8fe3",
    "lambda_runtime.ProvidedWorker._spawn": "f34380f97fd03e7d3849ed35015f3766d38e8f0e85dc7c029cdf17c00d620e2b",
    "lambda_runtime.ProvidedWorker._pump_output": "0ee89e67e92686b1bc35bc1fb2874058c97880a2790a4121717db07d7a7f4bf9",
    "dynamodb_streams._get_records": "bb50abe735aab60d4a9bd69b8f637dee97ed9fc8818805659ec1dbe366520bc7",
    "lambda_svc._poll_dynamodb_streams": "2b2460e933a9f3c3fb00d9e15763d11977533af74787eb39ce1f39bbe6e54e8b",
    "lambda_svc._execute_function": "3ceb16d6480a2161601b152da88f1633573e5143f94de16fab84877d447165be",
    "lambda_svc._send_ddb_stream_failure_record": "0efd5f5ffe2d6df57a30204eb0a4d226406f6f3f0bf81b3cbc1040c31fc748a0",
    "lambda_svc._dynamodb_stream_table_from_arn_spec": "339c3125c285fe02eb713f710f7f967dc72a22072b6292fa420941710c7132a2",
    "dynamodb.stream_records_since": "aed31a353fda9770d3babb2d6091616fd2e60fcee3c78aee7c197e490182f27a",
    "lambda_svc._provided_worker_env": "8cccaed6a6d8792afe3d2840bbe7f59d1b66365f92505f340545a5aef203b3f3",
    "apigateway._handle_execute_in_scope": "aa60b8b0dfaafaa2880d52a7b62fe8ed3f6d92c0e26da47c26f64747d156f6b0",
    "provisioners._apigw_v2_stage_props": "471b3f01003ce14eca0944094e444897e65ae9100989964acfa2edc6a13c4286",
    "provisioners._cw_metric_alarm_record": "4565fcede1ebf266b93fd427e72d1606f3de10bea9993e680a1ef4d03485aada",
    "apigateway._cors_response_headers": "1cd36db5d0c4ff03757f5e8e9fda98f6e94600e31faba8dce275b028788f5d29",
    "apigateway.handle_execute": "c7a2f92d7eb6b8d55141e5a6b39fbc12d974c0f1e3c1af5bf2d984020688d5b6",
    "lambda_svc._poll_loop": "6a443090919adccf3e405dd7e5603cf353d8d1112635dc3e126f3b5cf8fc3866",
    "lambda_svc._iter_all_esms": "7db06c0627a59696f16e20a197656df6556dc1096ef490720049c2abdeeeec21",
    "lambda_svc._get_func_record_for_qualifier": "a86e90478088123dc1675e52d0c9ac692f6c91cbadebd1d7eac46575f627c91c",
    "lambda_svc._apply_filter_criteria": "d8d7d5c8f77ea1ac431ccaf2e5ae888968c5e3a62d5ac3ef177043011a679fd3",
    "lambda_svc._throttle_response": "647221d5b0775feb5335a56f6640977c1b1477937e3edd635d8919aa577c41ae",
    "dynamodb.stream_start_position": "3b822e76fbb147fa08b60c91c04d91a05d62bf84950a323e73121f9fb7fb76a3",
    "dynamodb.stream_end_position": "d0483912696df38d9e0f06251f452197cafd4283e56d2ff1565180905f5897a3",
    "dynamodb_streams._describe_stream": "8971045db3134ac91c65d4100e2c748717ee62ffb1c72f34ccb9edf4867f45d3",
    "sqs._queue_by_arn": "b4981875c8186c194675ead2fe848fb6902c7a15e0f31cef586da2d4d665189e",
    "dynamodb.handle_request": "1201f2ac993ce1a07339816d280e7b86da8395988b41f91ce72caade86e12406",
    "app._lazy_handler": "6cfcc348de12319333bbd624b85d014cf607ecb009913996b6206122ba8650cd",
    "app.main": "aae886212adbdc544e4d253fa9ee5db1b6c690ef85b8421df796fbdc095ed4ee",
    "cloudwatch_logs._filter_log_events": "9b3d13c713b5d3cb25b0405db33ba3e5fd0fff5f7c8250c5d28e1b7d05f71b63",
    "sns.handle_request": "a6cb34ecce860f66b656cc556ad59c8c7de1c783a30262652cdb9603164b7fdf",
    "lambda_runtime.acquire_worker": "5017d144adb5b983050914401f482f2ad1332f4564c96903c20ab7e4defad7da",
    "provisioners._apigw_v2_authorizer_create": "011125c50072e8b205afc8a0e49f33cbdb1af18624910816b54ce14659a7bfe8",
    "apigateway._create_route_response": "25199e09ef0343da68d9817ee8fa3312c0e4b51bccd5bf8c7407160c56d1938d",
    "apigateway._delete_route_response": "d9b0759faf45f2438249693b99b97e9a4920742c30212be2e7f681b485573d60",
    "apigateway.handle_websocket": "6d609b2db6a0147dcd30bb3c0cb300f9d3a911573b52bb8604a71eaf89677c34",
}

TTL_REAPER_THREAD = "dynamodb-ttl-reaper"
# The identity AWS puts on the stream record of a TTL delete. Consumers filter on it.
TTL_SERVICE_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
# AWS ignores TTL values more than five years in the past (they are taken as milliseconds etc.).
TTL_MAX_AGE_SECONDS = 5 * 365 * 24 * 3600

log = logging.getLogger("ministack_faithful")


class FidelityError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"ministack_faithful: {message}\n"
                         f"  The fidelity fixes were written for ministack {PINNED_VERSION}; "
                         "re-check them before changing the pin.")


def _import_ministack_without_its_ttl_reaper():
    """Import MiniStack's DynamoDB service with its own TTL reaper thread left unstarted.

    The thread starts at import time, so it is skipped by name while the module loads."""
    real_start = threading.Thread.start

    def start(thread: threading.Thread):
        if thread.name != TTL_REAPER_THREAD:
            real_start(thread)

    threading.Thread.start = start
    try:
        from ministack.services import dynamodb  # noqa: F401  (starts nothing else we skip)
    finally:
        threading.Thread.start = real_start
    if any(t.name == TTL_REAPER_THREAD for t in threading.enumerate()):
        raise FidelityError("MiniStack's own TTL reaper started anyway")


def _modules():
    from ministack import app
    from ministack.core import lambda_runtime
    from ministack.core import responses
    from ministack.services import dynamodb
    from ministack.services.cloudformation import provisioners
    return app, lambda_runtime, responses, dynamodb, provisioners


def _lambda_service():
    from ministack.services import lambda_svc
    return lambda_svc


def _streams_service():
    from ministack.services import dynamodb_streams
    return dynamodb_streams


def _sqs_service():
    from ministack.services import sqs
    return sqs


def _logs_service():
    from ministack.services import cloudwatch_logs
    return cloudwatch_logs


def _sns_service():
    from ministack.services import sns
    return sns


def _apigateway():
    from ministack.services import apigateway
    return apigateway


def _fingerprint(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def _relied_on():
    _, lambda_runtime, _, dynamodb, provisioners = _modules()
    return {
        "dynamodb._ttl_reaper": dynamodb._ttl_reaper,
        "dynamodb._emit_stream_event": dynamodb._emit_stream_event,
        "dynamodb._build_change_record": dynamodb._build_change_record,
        "dynamodb._remove_item": dynamodb._remove_item,
        "dynamodb._update_ttl": dynamodb._update_ttl,
        "provisioners._ddb_create": provisioners._ddb_create,
        "provisioners._ddb_update": provisioners._ddb_update,
        "lambda_runtime.ProvidedWorker._build_handler_class": lambda_runtime.ProvidedWorker._build_handler_class,
        "lambda_runtime.Worker._drain_stderr_bounded": lambda_runtime.Worker._drain_stderr_bounded,
        "lambda_runtime.ProvidedWorker.invoke": lambda_runtime.ProvidedWorker.invoke,
        "lambda_runtime.ProvidedWorker._spawn": lambda_runtime.ProvidedWorker._spawn,
        "lambda_runtime.ProvidedWorker._pump_output": lambda_runtime.ProvidedWorker._pump_output,
        "lambda_svc._provided_worker_env": _lambda_service()._provided_worker_env,
        "lambda_svc._poll_dynamodb_streams": _lambda_service()._poll_dynamodb_streams,
        "lambda_svc._execute_function": _lambda_service()._execute_function,
        "lambda_svc._send_ddb_stream_failure_record": _lambda_service()._send_ddb_stream_failure_record,
        "lambda_svc._dynamodb_stream_table_from_arn_spec": _lambda_service()._dynamodb_stream_table_from_arn_spec,
        "dynamodb.stream_records_since": dynamodb.stream_records_since,
        "dynamodb_streams._get_records": _streams_service()._get_records,
        "apigateway._handle_execute_in_scope": _apigateway()._handle_execute_in_scope,
        "provisioners._apigw_v2_stage_props": provisioners._apigw_v2_stage_props,
        "provisioners._cw_metric_alarm_record": provisioners._cw_metric_alarm_record,
        "apigateway._cors_response_headers": _apigateway()._cors_response_headers,
        "apigateway.handle_execute": _apigateway().handle_execute,
        "lambda_svc._poll_loop": _lambda_service()._poll_loop,
        "lambda_svc._iter_all_esms": _lambda_service()._iter_all_esms,
        "lambda_svc._get_func_record_for_qualifier": _lambda_service()._get_func_record_for_qualifier,
        "lambda_svc._apply_filter_criteria": _lambda_service()._apply_filter_criteria,
        "lambda_svc._throttle_response": _lambda_service()._throttle_response,
        "dynamodb.stream_start_position": dynamodb.stream_start_position,
        "dynamodb.stream_end_position": dynamodb.stream_end_position,
        "dynamodb_streams._describe_stream": _streams_service()._describe_stream,
        "sqs._queue_by_arn": _sqs_service()._queue_by_arn,
        "dynamodb.handle_request": dynamodb.handle_request,
        "app._lazy_handler": _modules()[0]._lazy_handler,
        "app.main": _modules()[0].main,
        "cloudwatch_logs._filter_log_events": _logs_service()._filter_log_events,
        "sns.handle_request": _sns_service().handle_request,
        "lambda_runtime.acquire_worker": lambda_runtime.acquire_worker,
        "provisioners._apigw_v2_authorizer_create": provisioners._apigw_v2_authorizer_create,
        "apigateway._create_route_response": _apigateway()._create_route_response,
        "apigateway._delete_route_response": _apigateway()._delete_route_response,
        "apigateway.handle_websocket": _apigateway().handle_websocket,
    }


def check_fingerprints():
    installed = version("ministack")
    if installed != PINNED_VERSION:
        raise FidelityError(f"ministack {installed} is installed, {PINNED_VERSION} is pinned")
    for name, obj in _relied_on().items():
        if _fingerprint(obj) != FINGERPRINTS.get(name):
            raise FidelityError(f"{name} is not the code the fixes were written against")
    if _streams_service()._DEFAULT_SHARD_ID != DDB_STREAM_SHARD_ID:
        raise FidelityError("MiniStack's DynamoDB stream shard is not the one on-failure records name")


# --- Fix 1: TTL deletes emit REMOVE stream records with the TTL service identity ---------------
# AWS: "Items deleted by TTL appear in DynamoDB Streams as service deletions" with userIdentity
# {type: Service, principalId: dynamodb.amazonaws.com}. MiniStack's reaper removed items silently,
# so no TTL-expiry consumer could ever run. Only Number TTL attributes count, as on AWS.
# --- Fix 2: a configurable reaper interval (MiniStack sleeps a fixed 60 s) ----------------------
# AWS gives no bound ("typically within a few days"); locally a short interval keeps tests fast.
# The deletes run on MiniStack's event loop, where its API handlers run, so a TTL delete is atomic
# with respect to every other write, as a TTL delete is on AWS.
# --- Feature 11: the TTL reaper can be paused and resumed at run time ---------------------------
# On AWS expired items may stay for hours or days before TTL deletes them; a test makes that happen
# with POST /_faithful/ttl/pause (and /resume, or /reap for one pass now; see the control endpoint).
# The pause is checked on the event loop, in the pass itself, so no pass starts after it answered.

_ttl_delete = contextvars.ContextVar("ttl_delete", default=False)


def _install_ttl_stream_identity():
    _, _, _, dynamodb, _ = _modules()
    build_change_record = dynamodb._build_change_record

    def build_change_record_with_identity(*args, **kwargs):
        record = build_change_record(*args, **kwargs)
        if _ttl_delete.get():
            record["userIdentity"] = dict(TTL_SERVICE_IDENTITY)
        return record

    dynamodb._build_change_record = build_change_record_with_identity


def _install_streams_api_identity_shape():
    """The same identity, as each reader sees it: Lambda event records say
    {"type", "principalId"}; the DynamoDB Streams API's Identity shape says {"Type", "PrincipalId"}."""
    streams = _streams_service()
    get_records = streams._get_records

    def get_records_with_api_identity(data):
        status, headers, body = get_records(data)
        if status != 200 or b"userIdentity" not in body:
            return status, headers, body
        page = json.loads(body)
        for record in page.get("Records", []):
            identity = record.get("userIdentity")
            if identity:
                record["userIdentity"] = {"Type": identity.get("type"), "PrincipalId": identity.get("principalId")}
        return status, headers, json.dumps(page, ensure_ascii=False).encode("utf-8")

    streams._get_records = get_records_with_api_identity


def reap_expired_items(now: float | None = None) -> int:
    """Delete every expired item of every TTL-enabled table, emitting a service-identity REMOVE."""
    _, _, responses, dynamodb, _ = _modules()
    now = time.time() if now is None else now
    reaped = 0
    with dynamodb._lock:
        for (account_id, region, table_name), setting in list(dynamodb._ttl_settings.all_items()):
            attr = setting.get("AttributeName")
            if setting.get("TimeToLiveStatus") != "ENABLED" or not attr:
                continue
            table = dynamodb._tables.get_scoped(account_id, region, table_name)
            if not table:
                continue
            for pk_val, sk_map in list(table["items"].items()):
                for sk_val, item in list(sk_map.items()):
                    try:
                        expires = float((item.get(attr) or {})["N"])
                    except (KeyError, TypeError, ValueError):
                        continue  # not a Number: AWS never expires it
                    if not (now - TTL_MAX_AGE_SECONDS <= expires <= now):
                        continue
                    old_item = dynamodb._remove_item(table, pk_val, sk_val)
                    if old_item is None:
                        continue
                    scope = (responses._request_account_id.set(account_id),
                             responses._request_region.set(region), _ttl_delete.set(True))
                    try:
                        dynamodb._emit_stream_event(table_name, "REMOVE", old_item, None)
                    finally:
                        _ttl_delete.reset(scope[2])
                        responses._request_region.reset(scope[1])
                        responses._request_account_id.reset(scope[0])
                    reaped += 1
    return reaped


class TtlReaper:
    """Whether the reaper runs, and how often; changed at run time through the control endpoint."""

    def __init__(self, interval: float):
        self.interval = interval
        self.paused = threading.Event()
        self.lag_until = 0.0  # time.monotonic() before which a timed pause (a lag) holds it

    def lag(self, seconds: float) -> None:
        self.lag_until = max(self.lag_until, time.monotonic() + seconds)

    def resume(self) -> None:
        self.paused.clear()
        self.lag_until = 0.0

    def held(self) -> bool:
        return self.paused.is_set() or time.monotonic() < self.lag_until

    def state(self) -> dict:
        return {"paused": self.held(), "interval_seconds": self.interval,
                "lag_seconds_left": round(max(0.0, self.lag_until - time.monotonic()), 1)}


TTL_REAPER = TtlReaper(float(os.environ.get("TTL_REAPER_INTERVAL_SECONDS", "1")))


def _start_ttl_reaper(interval: float):
    app = _modules()[0]
    TTL_REAPER.interval = interval

    async def reap_on_loop():
        return 0 if TTL_REAPER.held() else reap_expired_items()

    def loop_forever():
        while True:
            time.sleep(TTL_REAPER.interval)
            loop = app._MAIN_LOOP
            if loop is None or TTL_REAPER.held():
                continue
            firing = NEMESIS.fires("ttl-lag")
            if firing:  # AWS's lag: nothing expires for a while, then everything due at once
                TTL_REAPER.lag(firing[0].params["seconds"])
                log.info("nemesis: TTL reaper lags for %ss", firing[0].params["seconds"])
                continue
            try:
                reaped = asyncio.run_coroutine_threadsafe(reap_on_loop(), loop).result(timeout=30)
                if reaped:
                    log.info("TTL reaper deleted %d expired item(s)", reaped)
            except Exception:  # keep reaping; one bad pass must not stop expiry for good
                log.exception("TTL reaper pass failed")

    threading.Thread(target=loop_forever, daemon=True, name="faithful-ttl-reaper").start()


# --- Fix 3: TimeToLiveSpecification in a template enables TTL ----------------------------------
# AWS::DynamoDB::Table's TimeToLiveSpecification is ignored by MiniStack's provisioner, so TTL stayed
# DISABLED after deploy. Apply it after create and update through MiniStack's own UpdateTimeToLive.

def _install_template_ttl():
    _, _, _, dynamodb, provisioners = _modules()
    handlers = provisioners._RESOURCE_HANDLERS["AWS::DynamoDB::Table"]

    def apply_ttl(table_name: str, props: dict):
        spec = props.get("TimeToLiveSpecification")
        if not spec:
            return
        enabled = str(spec.get("Enabled", False)).lower() == "true"
        status, _, body = dynamodb._update_ttl({
            "TableName": table_name,
            "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": spec.get("AttributeName", "")},
        })
        if status >= 400:
            raise ValueError(f"TimeToLiveSpecification of {table_name}: {body!r}")

    create, update = handlers["create"], handlers["update"]

    def create_with_ttl(logical_id, props, stack_name):
        physical_id, attrs = create(logical_id, props, stack_name)
        apply_ttl(physical_id, props)
        return physical_id, attrs

    def update_with_ttl(physical_id, old_props, new_props, stack_name, logical_id=None):
        result = update(physical_id, old_props, new_props, stack_name, logical_id)
        apply_ttl(result[0] if isinstance(result, tuple) else physical_id, new_props)
        return result

    handlers["create"], handlers["update"] = create_with_ttl, update_with_ttl


# --- Fix 4: no Nagle stall on the Lambda Runtime API -------------------------------------------
# MiniStack writes the /next response (headers, then body) in two sends; with Nagle's algorithm and
# the client's delayed ACK every invocation stalled ~40 ms. AWS's Runtime API has no such stall.

def _install_runtime_api_nodelay():
    _, lambda_runtime, _, _, _ = _modules()
    build = lambda_runtime.ProvidedWorker._build_handler_class

    def build_without_nagle(self, *args, **kwargs):
        handler_class = build(self, *args, **kwargs)
        handler_class.disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY in setup()
        return handler_class

    lambda_runtime.ProvidedWorker._build_handler_class = build_without_nagle


# --- Fix 5: an invocation's log is complete, and the response is not held back for it ----------
# AWS returns the response as soon as the runtime posts it, and every line the function wrote
# reaches CloudWatch Logs. MiniStack instead waited up to 50 ms after each response for a first
# line from the thread that reads the function's output, and took what that thread had queued so
# far: under load a line written just before the response could miss its invocation's log (and
# come out with the next invocation, or never if there was none). Here the output pipe is read
# under a lock, by the reader thread and by the drain after each response, so every line the
# function wrote before posting its response is in that invocation's log, without any wait.

class _FunctionOutput:
    """The read end of a function's stdout+stderr pipe, split into lines for the log queue."""

    def __init__(self, fd: int, log_queue):
        self.fd, self.log_queue = fd, log_queue
        self.lock = threading.Lock()
        self.partial = b""
        self.open = True
        os.set_blocking(fd, False)

    def sweep(self) -> None:
        """Moves every complete line now in the pipe into the queue."""
        with self.lock:
            while self.open:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    return
                except (OSError, ValueError):
                    chunk = b""
                if not chunk:  # end of file: the process is gone
                    self.open = False
                    chunk = b"\n" if self.partial else b""
                *lines, self.partial = (self.partial + chunk).split(b"\n")
                for line in lines:
                    self._put(line.decode("utf-8", errors="replace").rstrip("\r"))

    def _put(self, line: str) -> None:
        # As MiniStack does: a full queue drops its oldest line rather than stall the function.
        while True:
            try:
                self.log_queue.put_nowait(line)
                return
            except queue.Full:
                try:
                    self.log_queue.get_nowait()
                except queue.Empty:
                    pass


def _install_complete_prompt_logs():
    _, lambda_runtime, _, _, _ = _modules()
    drain = lambda_runtime.Worker._drain_stderr_bounded

    def pump_output(self, stream, log_queue):
        output = _FunctionOutput(stream.fileno(), log_queue)
        self._function_output = output
        readable = select.poll()  # not select.select: MiniStack's descriptors go past FD_SETSIZE
        readable.register(output.fd, select.POLLIN)
        try:
            while output.open:
                readable.poll(100)
                output.sweep()
        except (OSError, ValueError):
            pass
        finally:
            with output.lock:  # a later drain must not read a descriptor number reused elsewhere
                output.open = False
                stream.close()

    def drain_complete(self, first_line_wait=0.0, idle_confirm=0.0, hard_cap=0.05):
        output = getattr(self, "_function_output", None)
        if output is not None:
            output.sweep()
        return drain(self, first_line_wait=first_line_wait, idle_confirm=idle_confirm, hard_cap=hard_cap)

    lambda_runtime.ProvidedWorker._pump_output = pump_output
    lambda_runtime.ProvidedWorker._drain_stderr_bounded = drain_complete


# --- Fix 6: a function's LoggingConfig reaches its runtime ----------------------------------------
# Lambda's advanced logging controls hand LoggingConfig to the runtime as AWS_LAMBDA_LOG_FORMAT and
# AWS_LAMBDA_LOG_LEVEL (JSON format only); MiniStack kept them in the config, so logs came out as text.

def _install_logging_config_env():
    lambda_svc = _lambda_service()
    worker_env = lambda_svc._provided_worker_env

    def worker_env_with_logging_config(config: dict, code_dir: str, port: int) -> dict:
        env = worker_env(config, code_dir, port)
        logging_config = config.get("LoggingConfig") or {}
        if str(logging_config.get("LogFormat", "")).upper() == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            if logging_config.get("ApplicationLogLevel"):
                env["AWS_LAMBDA_LOG_LEVEL"] = logging_config["ApplicationLogLevel"]
        return env

    lambda_svc._provided_worker_env = worker_env_with_logging_config


# --- Fix 7: DynamoDB stream failures as on AWS: retries, bisection, the on-failure record --------
# AWS, for a DynamoDB stream event source mapping (Lambda developer guide: "Using AWS Lambda with
# Amazon DynamoDB", error handling, and "Configuring partial batch response with DynamoDB and Lambda";
# CloudFormation reference of AWS::Lambda::EventSourceMapping):
#  - a function error (the function returns an error, crashes or times out): Lambda retries the batch
#    until it succeeds, its records pass MaximumRecordAgeInSeconds, or MaximumRetryAttempts retries
#    have failed. With BisectBatchOnFunctionError it splits the failed batch in two and retries each
#    half on its own; "splitting a batch does not count towards the retry quota".
#  - with ReportBatchItemFailures: Lambda checkpoints before the lowest reported sequence number and
#    retries from it ("the batch is bisected at the returned sequence number and Lambda retries only
#    the remaining records"); an empty or null itemIdentifier (or, as here, one not in the batch)
#    fails the whole batch; an empty or null list is a success.
#  - when the retries run out it discards the records, goes on with the shard, and sends the OnFailure
#    destination an invocation record naming them: requestContext {requestId, functionArn, condition
#    "RetryAttemptsExhausted", approximateInvokeCount}, responseContext {statusCode, executedVersion,
#    functionError}, version "1.0", timestamp (with milliseconds), DDBStreamBatchInfo {shardId,
#    startSequenceNumber, endSequenceNumber, approximateArrivalOfFirstRecord and ...OfLastRecord
#    (whole seconds), batchSize, streamArn}. The records themselves are not in it.
# MiniStack retried a failed batch whole until MaximumRecordAgeInSeconds and took a partial batch
# failure response for a success. Here MiniStack's DynamoDB stream poller is replaced by one that
# follows those rules. Where AWS documents no detail, the choice made here (unsure):
#  - a failed batch is halved by its count of delivered records (the first half takes the odd one),
#    down to single records; a batch counts against MaximumRetryAttempts only when it cannot be split
#    (one record, or bisection off). So a poison record is invoked alone 1 + MaximumRetryAttempts times
#    and discarded alone, and a whole batch is discarded only with bisection off. The halves are fixed
#    ranges of the failed batch, delivered (first half first) before anything newer is read.
#  - a record reported by ReportBatchItemFailures 1 + MaximumRetryAttempts times is discarded alone
#    (AWS may discard the rest of the retried batch with it); the retry re-reads from the checkpoint.
#  - approximateInvokeCount counts the invocations of the discarded range itself; functionError is
#    "Unhandled" after a function error and null after a partial batch failure response (the
#    invocations themselves succeeded; a published record of a stream mapping with statusCode 200 and
#    functionError null fits that). AWS also "consolidates failed messages metadata" into one record
#    (batchSize above 1); not done here: one record per discarded range.
#  - kept from MiniStack: a failed batch whose oldest record is past MaximumRecordAgeInSeconds is
#    discarded whole (condition "MaxRecordAgeExceeded": MiniStack's name, AWS's is not checked here),
#    and a failed batch waits 1 s before its retry (AWS's pause between retries is not documented).

DDB_STREAM_SHARD_ID = "shardId-00000000000000000000-00000000"  # the one shard MiniStack's Streams API has


class StreamBatch:
    """Stream positions [start, end) delivered to the function as one batch, with its failures so far."""

    def __init__(self, start: int, end: int, retries: int = 0):
        self.start, self.end, self.retries, self.invocations = start, end, retries, 0

    def __repr__(self):
        return f"StreamBatch({self.start}, {self.end}, retries={self.retries})"


def _iso_millis(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def _iso_seconds(at) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(at)))


def stream_failure_record(function_config: dict, records: list[dict], stream_arn: str, condition: str,
                          invocations: int, function_error: str | None) -> dict:
    """The on-failure invocation record AWS sends for discarded DynamoDB stream records."""
    now = time.time()
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_config.get("FunctionArn", ""),
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": function_config.get("Version") or "$LATEST",
            "functionError": function_error,
        },
        "version": "1.0",
        "timestamp": _iso_millis(now),
        "DDBStreamBatchInfo": {
            "shardId": DDB_STREAM_SHARD_ID,
            "startSequenceNumber": str(first["SequenceNumber"]),
            "endSequenceNumber": str(last["SequenceNumber"]),
            "approximateArrivalOfFirstRecord": _iso_seconds(first.get("ApproximateCreationDateTime", now)),
            "approximateArrivalOfLastRecord": _iso_seconds(last.get("ApproximateCreationDateTime", now)),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _deliver_to_destination(destination: str, body: str) -> None:
    """Sends an on-failure record to an SQS queue or SNS topic, as MiniStack's own ESM code does."""
    lambda_svc = _lambda_service()
    try:
        service = lambda_svc.parse_arn(destination).service
    except lambda_svc.ArnParseError:
        log.warning("on-failure destination %s is not an ARN; record dropped", destination)
        return
    if service == "sqs":
        from ministack.services import sqs
        queue = sqs._queue_by_arn(destination)
        if queue is None:
            log.warning("on-failure queue %s does not exist; record dropped", destination)
            return
        now = time.time()
        queue["messages"].append({
            "id": str(uuid.uuid4()), "body": body, "md5_body": hashlib.md5(body.encode()).hexdigest(),
            "md5_attrs": "", "receipt_handle": None, "sent_at": now, "visible_at": now + sqs.queue_delay(queue),
            "receive_count": 0, "first_receive_at": None, "message_attributes": {},
            "sys": {"SenderId": lambda_svc.get_account_id(), "SentTimestamp": str(int(now * 1000))},
            "group_id": None, "dedup_id": None, "dedup_cache_key": None, "seq": None,
        })
        lambda_svc.esm_wake.set()
    elif service == "sns":
        from ministack.services import sns
        if destination in sns._topics:
            sns._fanout(destination, str(uuid.uuid4()), body, "Lambda ESM failure", "", {})
    else:
        log.warning("on-failure destination %s is neither SQS nor SNS; record dropped", destination)


def _reported_failure(result: dict, delivered: list[dict]):
    """For a ReportBatchItemFailures response: None (success), the lowest failed sequence number, or
    "batch" when the response fails the whole batch (an empty, null or unknown itemIdentifier)."""
    body = result.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    failures = body.get("batchItemFailures") if isinstance(body, dict) else None
    if not failures:
        return None
    in_batch = {r["dynamodb"].get("SequenceNumber") for r in delivered}
    identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
    if any(not i or i not in in_batch for i in identifiers):
        return "batch"
    return min(identifiers, key=int)


def _flag(value) -> bool:
    return value is True or str(value).lower() == "true"


def _install_stream_failure_semantics():
    lambda_svc = _lambda_service()
    dynamodb = _modules()[3]
    pending: dict[str, list[StreamBatch]] = {}  # mapping UUID -> ranges to deliver next, from the checkpoint on
    reports: dict[tuple[str, str], int] = {}  # (mapping UUID, sequence number) -> partial failure reports
    delayed: dict[str, int] = {}  # mapping UUID -> the checkpoint whose batch the nemesis held back

    def checkpoint(esm_id: str, position: int) -> None:
        with lambda_svc._dynamodb_stream_positions_lock:
            lambda_svc._dynamodb_stream_positions[esm_id] = position

    def done_with(esm_id: str, batch: StreamBatch, position: int) -> None:
        """Everything before `position` is handled: the checkpoint moves there."""
        queue = pending.setdefault(esm_id, [])
        if queue and queue[0] is batch:
            if position >= batch.end:
                queue.pop(0)
            else:
                batch.start = position
        checkpoint(esm_id, position)

    def retry_later(esm_id: str, batch: StreamBatch) -> None:
        queue = pending.setdefault(esm_id, [])
        if not (queue and queue[0] is batch):
            queue.insert(0, batch)
        lambda_svc._esm_backoff_until[esm_id] = time.time() + lambda_svc._ESM_BACKOFF_SECONDS

    def discard(esm, func_rec, records, stream_arn, condition, invocations, function_error) -> None:
        destination = ((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        config = func_rec.get("config") or func_rec
        record = stream_failure_record(config, records, stream_arn, condition, invocations, function_error)
        if destination:
            _deliver_to_destination(destination, json.dumps(record))
        info = record["DDBStreamBatchInfo"]
        log.info("%s: %d stream record(s) %s..%s discarded (%s after %d invocation(s))%s",
                 config.get("FunctionName"), info["batchSize"], info["startSequenceNumber"],
                 info["endSequenceNumber"], condition, invocations,
                 f", sent to {destination}" if destination else "")

    def poll_mapping(esm: dict) -> bool:
        """One step of one mapping; True if its checkpoint moved."""
        if not esm.get("Enabled", True):
            return False
        stream_arn = esm.get("EventSourceArn", "")
        try:
            spec = lambda_svc.parse_arn(stream_arn)
        except lambda_svc.ArnParseError:
            return False
        if (spec.service != "dynamodb" or spec.account_id != lambda_svc.get_account_id()
                or spec.region != lambda_svc.get_region()):
            return False
        table_stream = lambda_svc._dynamodb_stream_table_from_arn_spec(spec)
        if table_stream is None:
            return False
        table_name = table_stream[0]
        func_rec, _ = lambda_svc._get_func_record_for_qualifier(esm["FunctionName"], esm.get("Qualifier"))
        if func_rec is None:
            return False
        table = dynamodb._tables.get(table_name)
        if not table or table.get("LatestStreamArn") != stream_arn:
            return False
        horizon, end = dynamodb.stream_start_position(table_name), dynamodb.stream_end_position(table_name)
        if end == horizon:
            return False
        esm_id = esm["UUID"]
        if lambda_svc._esm_backoff_until.get(esm_id, 0) > time.time():
            return False
        with lambda_svc._dynamodb_stream_positions_lock:
            positions = lambda_svc._dynamodb_stream_positions
            if esm_id not in positions:
                positions[esm_id] = horizon if esm.get("StartingPosition", "LATEST") == "TRIM_HORIZON" else end
            position = positions[esm_id] = max(positions[esm_id], horizon)
        queue = pending.setdefault(esm_id, [])
        if queue and queue[0].start != position:
            queue.clear()  # the checkpoint moved elsewhere (records expired, the mapping was reset)
        if queue:
            batch = queue[0]
            raw = dynamodb.stream_records_since(table_name, position, batch.end - position)
        else:
            raw = dynamodb.stream_records_since(table_name, position, int(esm.get("BatchSize") or 100))
            batch = StreamBatch(position, position + len(raw))
        if not raw:
            return False
        batch.end = position + len(raw)
        delivered = lambda_svc._apply_filter_criteria(raw, esm)
        if not delivered:  # every record filtered out: handled
            done_with(esm_id, batch, batch.end)
            return True
        name = (func_rec.get("config") or func_rec).get("FunctionName", esm["FunctionName"])
        if delayed.pop(esm_id, None) != position:
            firing = NEMESIS.fires("stream-delay", function=name, table={table_name})
            if firing:  # held back once; delivered when the delay is over
                delayed[esm_id] = position
                lambda_svc._esm_backoff_until[esm_id] = time.time() + firing[0].params["seconds"]
                log.info("nemesis: %s's batch from %d held back %ss", name, position, firing[0].params["seconds"])
                return False
        result = lambda_svc._execute_function(func_rec, {"Records": delivered})
        if result.get("throttle"):  # not invoked: retried until the records expire, never counted
            retry_later(esm_id, batch)
            return False
        batch.invocations += 1
        failed = "batch" if result.get("error") else None
        if failed is None and "ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []):
            failed = _reported_failure(result, delivered)
        if failed is None:
            for record in delivered if reports else ():
                reports.pop((esm_id, record["dynamodb"].get("SequenceNumber")), None)
            esm["LastProcessingResult"] = f"OK - {len(delivered)} records"
            if result.get("log"):
                lambda_svc.logger.info("ESM: Lambda %s output:\n%s", name, result["log"])
            if NEMESIS.fires("stream-duplicate", function=name, table={table_name}):
                log.info("nemesis: %s's batch from %d will be delivered again", name, position)
                return False  # the checkpoint stays: the next poll delivers the same records again
            done_with(esm_id, batch, batch.end)
            lambda_svc._esm_backoff_until.pop(esm_id, None)
            return True
        esm["LastProcessingResult"] = "FAILED"
        retries = esm.get("MaximumRetryAttempts")
        retries = -1 if retries is None else int(retries)
        if failed != "batch":  # a partial batch failure: the records before the failed one are done
            index = next(i for i, r in enumerate(raw) if r["dynamodb"].get("SequenceNumber") == failed)
            count = reports[(esm_id, failed)] = reports.get((esm_id, failed), 0) + 1
            if 0 <= retries < count:
                reports.pop((esm_id, failed), None)
                discard(esm, func_rec, [raw[index]], stream_arn, "RetryAttemptsExhausted", count, None)
                done_with(esm_id, batch, batch.start + index + 1)
                return True
            done_with(esm_id, batch, batch.start + index)
            if queue and queue[0] is batch:
                retry_later(esm_id, batch)
            else:  # the retry reads again from the checkpoint
                lambda_svc._esm_backoff_until[esm_id] = time.time() + lambda_svc._ESM_BACKOFF_SECONDS
            return index > 0
        body = result.get("body") if isinstance(result.get("body"), dict) else {}
        log.info("%s failed a batch of %d stream record(s): %s %s", name, len(delivered),
                 body.get("errorType"), str(body.get("errorMessage", ""))[:200])
        max_age = esm.get("MaximumRecordAgeInSeconds")
        if max_age and int(max_age) > 0:
            oldest = min(float(r["dynamodb"].get("ApproximateCreationDateTime", time.time())) for r in delivered)
            if time.time() - oldest > int(max_age):
                discard(esm, func_rec, delivered, stream_arn, "MaxRecordAgeExceeded", batch.invocations, "Unhandled")
                done_with(esm_id, batch, batch.end)
                return True
        if _flag(esm.get("BisectBatchOnFunctionError")) and len(delivered) > 1:
            split_at = delivered[(len(delivered) + 1) // 2]["dynamodb"]["SequenceNumber"]
            split = batch.start + next(i for i, r in enumerate(raw) if r["dynamodb"]["SequenceNumber"] == split_at)
            halves = [StreamBatch(batch.start, split, batch.retries), StreamBatch(split, batch.end, batch.retries)]
            if queue and queue[0] is batch:
                queue[0:1] = halves
            else:
                queue[0:0] = halves
            lambda_svc._esm_backoff_until[esm_id] = time.time() + lambda_svc._ESM_BACKOFF_SECONDS
            return False
        if 0 <= retries <= batch.retries:
            discard(esm, func_rec, delivered, stream_arn, "RetryAttemptsExhausted", batch.invocations, "Unhandled")
            done_with(esm_id, batch, batch.end)
            return True
        batch.retries += 1
        retry_later(esm_id, batch)
        return False

    def poll_in_scope(account_id: str, region: str, esm: dict) -> bool:
        scope = lambda_svc._request_account_id.set(account_id), lambda_svc._request_region.set(region)
        try:
            return poll_mapping(esm)
        except Exception:  # one mapping's trouble must not stop the others
            log.exception("stream event source mapping %s", esm.get("UUID"))
            return False
        finally:
            lambda_svc._request_region.reset(scope[1])
            lambda_svc._request_account_id.reset(scope[0])

    # Fix 15: each mapping polls on its own, as on AWS, where every event source mapping has its own
    # pollers: MiniStack invoked one mapping's function after another's, so a slow consumer delayed
    # every other one (the alerts waited for the broadcaster's pushes). One poll in flight per
    # mapping keeps each mapping's batches in order.
    in_flight: dict[str, concurrent.futures.Future] = {}
    pollers = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="esm-poll")

    def poll_dynamodb_streams() -> bool:
        mappings = list(lambda_svc._iter_all_esms())
        for gone in in_flight.keys() - {esm.get("UUID") for _, _, esm in mappings}:
            in_flight.pop(gone)
        polls = []
        for account_id, region, esm in mappings:
            running = in_flight.get(esm.get("UUID"))
            if running is None or running.done():
                running = in_flight[esm.get("UUID")] = pollers.submit(poll_in_scope, account_id, region, esm)
            polls.append(running)
        done, still_running = concurrent.futures.wait(polls, timeout=0.05)
        # Busy while a poll runs or one moved its checkpoint: the loop comes back at once.
        return bool(still_running) or any(poll.result() for poll in done)

    lambda_svc._poll_dynamodb_streams = poll_dynamodb_streams


# --- Fix 8: an HTTP API's CorsConfiguration from a template takes effect -------------------------
# CloudFormation spells the keys AllowOrigins, AllowMethods, ...; MiniStack stored them as given but
# reads allowOrigins, allowMethods, ..., so a template's CORS matched no origin: every preflight was
# refused. The keys are read in the API's own spelling, as AWS does for both.
# --- Fix 9: API stage throttling ------------------------------------------------------------------
# AWS admits ThrottlingBurstLimit requests at once and ThrottlingRateLimit per second after that
# (a token bucket per stage) and answers the rest 429 {"message":"Too Many Requests"} without
# invoking the integration. MiniStack stored a stage's DefaultRouteSettings and never applied them,
# and from a template stored them in CloudFormation's spelling, which GetStage then dropped.

def _camel_case_keys(settings: dict) -> dict:
    return {key[:1].lower() + key[1:]: value for key, value in settings.items()}


class TokenBucket:
    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _route_settings(settings: dict) -> dict:
    """Route settings in the API's spelling and types, as GetStage returns them."""
    settings = _camel_case_keys(settings or {})
    if "throttlingBurstLimit" in settings:
        settings["throttlingBurstLimit"] = int(settings["throttlingBurstLimit"])
    if "throttlingRateLimit" in settings:
        settings["throttlingRateLimit"] = float(settings["throttlingRateLimit"])
    return settings


def _install_http_api_cors_and_throttling():
    from ministack.services import apigateway
    provisioners = _modules()[4]
    stage_props = provisioners._apigw_v2_stage_props

    def stage_props_in_api_spelling(props):
        record = stage_props(props)
        record["defaultRouteSettings"] = _route_settings(record["defaultRouteSettings"])
        return record

    provisioners._apigw_v2_stage_props = stage_props_in_api_spelling
    handle = apigateway._handle_execute_in_scope
    buckets: dict[tuple[str, str], TokenBucket] = {}

    def admitted(api_id: str, stage: str) -> bool:
        settings = _route_settings((apigateway._stages.get(api_id, {}).get(stage) or {}).get("defaultRouteSettings"))
        rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
        if rate is None or burst is None:
            return True
        bucket = buckets.get((api_id, stage))
        if bucket is None or (bucket.rate, bucket.burst) != (float(rate), float(burst)):
            bucket = buckets[(api_id, stage)] = TokenBucket(float(rate), float(burst))
        return bucket.admit()

    async def handle_faithfully(api_id, stage, path, method, headers, body, query_params, *rest, **kwargs):
        api = apigateway._apis.get(api_id)
        if api and api.get("corsConfiguration"):
            api["corsConfiguration"] = _camel_case_keys(api["corsConfiguration"])
        if method != "OPTIONS" and not admitted(api_id, stage):
            return 429, {"Content-Type": "application/json"}, b'{"message":"Too Many Requests"}'
        return await handle(api_id, stage, path, method, headers, body, query_params, *rest, **kwargs)

    apigateway._handle_execute_in_scope = handle_faithfully


# --- Fix 10: metric-math alarms in a template --------------------------------------------------
# CloudFormation creates an alarm on a metric-math expression (Properties.Metrics); MiniStack refused
# the whole stack. The alarm is stored with its Metrics and no single metric, as DescribeAlarms
# shows one; MiniStack evaluates single-metric alarms only, so it never changes state locally.

def _install_metric_math_alarms():
    provisioners = _modules()[4]
    record = provisioners._cw_metric_alarm_record

    def record_with_metric_math(name, props):
        if not props.get("Metrics"):
            return record(name, props)
        single = {key: value for key, value in props.items() if key != "Metrics"}
        alarm = record(name, {**single, "MetricName": "metric-math", "Namespace": "metric-math"})
        for key in ("MetricName", "Namespace", "Statistic", "Period", "Dimensions", "Unit", "ExtendedStatistic"):
            alarm.pop(key, None)
        alarm["Metrics"] = props["Metrics"]
        return alarm

    provisioners._cw_metric_alarm_record = record_with_metric_math


# --- Feature 12: the nemesis: AWS's rarer failures, on cue or at a rate ---------------------------
# The fault table and the error bodies are in nemesis.py; here is where each fault strikes. Each is a
# thing AWS does (../docs/CHAOS.md, "The faults", has the sources):
#  - applied-answer-lost: a DynamoDB write is applied and its answer lost: 500 InternalServerError,
#    which the SDKs retry ("OK to retry? Yes"), so a write that is not idempotent (an UpdateItem ADD)
#    is applied twice. A TransactWriteItems retry carries the same ClientRequestToken, which DynamoDB
#    (and MiniStack) answers from the first result: applied once. Only a call that succeeded is hit.
#    With answer=timeout the answer comes only after `seconds`: a caller whose attempt timeout is
#    shorter (the product's is 2 s) gives up and retries, as after an answer lost on the way.
#  - conflict: TransactWriteItems cancelled, 400 TransactionCanceledException, the item another request
#    holds saying TransactionConflict, the rest None; nothing applied. AWS does this when a concurrent
#    transaction or write holds an item. MiniStack runs requests one at a time, so with window_ms the
#    fault fires only when another connection wrote one of the items that many ms before ("concurrent");
#    without, at its rate on any transaction.
#  - throttle: 400 ThrottlingException (on-demand tables, a hot partition) or
#    ProvisionedThroughputExceededException, not applied; the SDKs retry both with backoff.
#  - hot-key: writes to one partition key (or item) above AWS's 1,000 WCU/s per partition times
#    `scale` (default 0.01: 10 units/s) are refused as an on-demand table refuses them:
#    ThrottlingException, reason TableWriteKeyRangeThroughputExceeded. A write is 1 unit per item, 2 in
#    a transaction (AWS: per KB, twice for transactions; item size is not counted here).
#  - kill: after the first write of an invocation succeeds, the function's process that sent it is
#    SIGKILLed (a crash mid-invocation: API Gateway answers a 5xx, a stream batch is retried). The caller
#    is found by its TCP connection: the client port of the request -> the socket's inode in
#    /proc/net/tcp -> the function process holding it.
#  - sns-publish: SNS Publish refused, nothing delivered: 500 InternalError or 400 Throttling "Rate
#    exceeded", in SNS's query (XML) error shape; the SDKs retry both.
#  - stream-duplicate: a stream batch the function handled is delivered again from the same checkpoint
#    (Lambda's event source mappings deliver at least once).
#  - stream-delay: a stream batch is held back `seconds` before its delivery (iterator age grows).
#  - ttl-lag: at a reaper pass the TTL reaper stops for `seconds` (AWS: expired items are typically
#    deleted within days), then catches up with one pass over everything expired.
# Armed from the start by FAITHFUL_CHAOS (and FAITHFUL_CHAOS_SEED) or at run time by /_faithful/chaos.

NEMESIS = Nemesis(os.environ.get("FAITHFUL_CHAOS_SEED") or None)
# The caller of the request being handled: ((client host, client port), server port).
_caller = contextvars.ContextVar("caller", default=None)


def _table_name(name) -> str | None:
    if not isinstance(name, str):
        return None
    return name.split(":table/", 1)[1].split("/", 1)[0] if ":table/" in name else name  # a table ARN


def dynamodb_request_tables(data: dict) -> set[str]:
    """The tables a DynamoDB request names: TableName, a transaction's items, a batch's tables."""
    names = {data.get("TableName")}
    for item in data.get("TransactItems") or []:
        if isinstance(item, dict):
            names |= {(op or {}).get("TableName") for op in item.values() if isinstance(op, dict)}
    names |= set(data.get("RequestItems") or {})
    return {t for t in map(_table_name, names) if t}


def written_items(operation: str, data: dict) -> list[tuple[tuple | None, int]]:
    """((table, partition key, sort key) or None if unknown, write units) of each item a write names,
    in request order (a transaction's entries by index; a ConditionCheck writes 0 units)."""
    dynamodb = _modules()[3]
    named: list[tuple[object, object, int]] = []  # (table, key or item attributes, units)
    if operation == "PutItem":
        named.append((data.get("TableName"), data.get("Item"), 1))
    elif operation in ("UpdateItem", "DeleteItem"):
        named.append((data.get("TableName"), data.get("Key"), 1))
    elif operation == "TransactWriteItems":
        for entry in data.get("TransactItems") or []:
            action, op = next(iter(entry.items()), (None, {})) if isinstance(entry, dict) else (None, {})
            op = op if isinstance(op, dict) else {}
            named.append((op.get("TableName"), op.get("Key") or op.get("Item"), 0 if action == "ConditionCheck" else 2))
    elif operation == "BatchWriteItem":
        for table_name, requests in (data.get("RequestItems") or {}).items():
            for request in requests if isinstance(requests, list) else []:
                request = request if isinstance(request, dict) else {}
                attributes = (request.get("PutRequest") or {}).get("Item") or (request.get("DeleteRequest") or {}).get("Key")
                named.append((table_name, attributes, 1))
    items = []
    for table_name, attributes, units in named:
        name = _table_name(table_name)
        table = dynamodb._tables.get(name) if name else None
        if not table or not isinstance(attributes, dict):
            items.append((None, units))
            continue
        sort_key = json.dumps(attributes.get(table["sk_name"]), sort_keys=True) if table["sk_name"] else ""
        items.append(((name, json.dumps(attributes.get(table["pk_name"]), sort_keys=True), sort_key), units))
    return items


class Contention:
    """When each item was last written, and by which connection: what a conflict window looks at."""

    def __init__(self):
        self.touched: dict[tuple, tuple[float, object]] = {}

    def record(self, items, caller) -> None:
        now = time.monotonic()
        if len(self.touched) > 100_000:  # forget what no window can reach
            self.touched = {key: touch for key, touch in self.touched.items() if now - touch[0] < 60}
        for key, _ in items:
            if key is not None:
                self.touched[key] = (now, caller)

    def contended(self, items, caller, window: float) -> int | None:
        """The index of the first item another connection wrote within `window` seconds, if any."""
        now = time.monotonic()
        for index, (key, _) in enumerate(items):
            touch = self.touched.get(key)
            if touch is not None and touch[1] != caller and now - touch[0] <= window:
                return index
        return None


CONTENTION = Contention()
DYNAMODB_KINDS = ("throttle", "hot-key", "conflict", "kill", "applied-answer-lost")
HOT_KEY_RATES: dict[str, WriteRate] = {}  # fault id -> its buckets


def _table_arn(tables: set[str]) -> str:
    dynamodb = _modules()[3]
    table = dynamodb._tables.get(min(tables)) if tables else None
    return table["TableArn"] if table else ""


def _refusal(operation: str, data: dict, tables: set[str], caller):
    """The answer of a fault that refuses this DynamoDB call before it is applied, or None."""
    write = operation in WRITE_OPERATIONS
    # Which function made the call is looked up only for a fault that asks (it reads /proc).
    by_function = any(f.kind in ("throttle", "conflict") and f.filters.get("function") for f in NEMESIS.faults)
    found = _function_process(caller) if by_function and caller else None
    function = found[0].func_name if found else None
    firing = NEMESIS.fires("throttle", operation=operation, table=tables, function=function)
    if firing:
        return throttled(firing[0].params["error"], _table_arn(tables), write, key_range=False)
    if not write:
        return None
    items = written_items(operation, data)

    def over_rate(fault):
        per_item = fault.params["per"] == "item"
        units: dict[tuple, int] = {}
        for key, count in items:
            if key is not None and count:
                key = key if per_item else key[:2]
                units[key] = units.get(key, 0) + count
        rate = HOT_KEY_RATES.setdefault(fault.id, WriteRate())
        return rate.admit(units, PARTITION_WRITE_UNITS_PER_SECOND * fault.params["scale"])

    firing = NEMESIS.fires("hot-key", when=over_rate, table=tables)
    if firing:
        return throttled("ThrottlingException", _table_arn({firing[1][0]}), True, key_range=True)
    if operation != "TransactWriteItems" or not items:
        return None

    def conflicting_item(fault):
        window = fault.params["window_ms"] / 1000
        if window == 0:
            return fault.random.randrange(len(items))
        return CONTENTION.contended(items, caller, window)

    firing = NEMESIS.fires("conflict", when=conflicting_item, table=tables, function=function)
    if firing:
        return transaction_conflict(len(items), firing[1])
    return None


def _function_process(caller):
    """(worker, pid) of the function process whose connection sent the request being handled, or None."""
    lambda_runtime = _modules()[1]
    (_, client_port), server_port = caller
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as sockets:
                next(sockets)
                for line in sockets:
                    fields = line.split()
                    if (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)) == (client_port, server_port):
                        inode = f"socket:[{fields[9]}]"
                        break
        except OSError:
            continue
        if inode:
            break
    if inode is None:
        return None
    with lambda_runtime._lock:
        workers = [worker for pool in lambda_runtime._workers.values() for worker in pool]
    for worker in workers:
        process = getattr(worker, "_proc", None)
        if process is None or process.poll() is not None:
            continue
        try:
            descriptors = os.listdir(f"/proc/{process.pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{process.pid}/fd/{fd}") == inode:
                    return worker, process.pid
            except OSError:
                continue
    return None


_first_writes_seen: dict[int, str] = {}  # function pid -> the invocation whose first write was looked at


def _kill_after_first_write(operation: str, tables: set[str], caller) -> None:
    found = _function_process(caller) if caller else None
    if found is None:
        return
    worker, pid = found
    invocation = worker._current_request_id
    if invocation is None or _first_writes_seen.get(pid) == invocation:
        return
    _first_writes_seen[pid] = invocation
    if NEMESIS.fires("kill", function=worker.func_name, table=tables, operation=operation):
        log.info("nemesis: killed %s (pid %d) after its invocation's first write (%s)", worker.func_name, pid, operation)
        os.kill(pid, signal.SIGKILL)


def _install_nemesis():
    dynamodb = _modules()[3]
    handle = dynamodb.handle_request

    async def handle_with_nemesis(method, path, headers, body, query_params):
        if not any(NEMESIS.active(kind) for kind in DYNAMODB_KINDS):
            return await handle(method, path, headers, body, query_params)
        operation = headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return await handle(method, path, headers, body, query_params)
        tables, caller = dynamodb_request_tables(data), _caller.get()
        refused = _refusal(operation, data, tables, caller)
        if refused is not None:
            log.info("nemesis: %s on %s refused: %s", operation, sorted(tables), json.loads(refused[2])["__type"])
            return refused
        response = await handle(method, path, headers, body, query_params)
        if not 200 <= response[0] < 300 or operation not in WRITE_OPERATIONS:
            return response
        if any(f.kind == "conflict" and f.params["window_ms"] for f in NEMESIS.faults):
            CONTENTION.record(written_items(operation, data), caller)
        if NEMESIS.active("kill"):
            _kill_after_first_write(operation, tables, caller)
        firing = NEMESIS.fires("applied-answer-lost", service="dynamodb", operation=operation, table=tables)
        if firing and firing[0].params["answer"] == "timeout":
            log.info("nemesis: %s on %s applied, answered after %ss", operation, sorted(tables), firing[0].params["seconds"])
            await asyncio.sleep(firing[0].params["seconds"])  # other requests go on meanwhile
        elif firing:
            log.info("nemesis: %s on %s applied, answered 500 InternalServerError", operation, sorted(tables))
            return internal_server_error()
        return response

    dynamodb.handle_request = handle_with_nemesis

    sns = _sns_service()
    handle_sns = sns.handle_request

    async def handle_sns_with_nemesis(method, path, headers, body, query_params):
        if NEMESIS.active("sns-publish"):
            params = {**{k: v if isinstance(v, str) else v[0] for k, v in query_params.items()},
                      **{k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}}
            firing = params.get("Action") == "Publish" and NEMESIS.fires("sns-publish", topic=params.get("TopicArn"))
            if firing:
                log.info("nemesis: SNS Publish to %s refused: %s", params.get("TopicArn"), firing[0].params["error"])
                return sns_error(firing[0].params["error"])
        return await handle_sns(method, path, headers, body, query_params)

    sns.handle_request = handle_sns_with_nemesis


# --- The control endpoint: /_faithful/... on MiniStack's own port --------------------------------
#   GET    /_faithful               the TTL reaper's state and the nemesis's faults
#   GET    /_faithful/ttl           {"paused", "interval_seconds", "lag_seconds_left"}
#   POST   /_faithful/ttl/pause     stop deleting expired items (as AWS may for hours); with a body
#                                   {"seconds": n}, only for n seconds, then catch up
#   POST   /_faithful/ttl/resume    start again (ends a timed pause too)
#   POST   /_faithful/ttl/reap      one pass now, paused or not: {"reaped": n}
#   GET    /_faithful/chaos         {"seed", "faults": [each spec with its id, "seen", "fired", "remaining"]}
#   POST   /_faithful/chaos         arm one spec (201: the fault) or a list of them (201: {"faults": [...]})
#   DELETE /_faithful/chaos         disarm all: {"cleared": n}
# Not AWS: a local test's way to make AWS's rarer behaviours happen on cue. The launcher serves it by
# wrapping MiniStack's ASGI app, which MiniStack's main() serves by its module-level name.

CONTROL_PREFIX = "/_faithful"


def _json_body(body: bytes, *, default=None):
    try:
        return json.loads(body) if body else default
    except ValueError as err:
        raise ValueError(f"the body is not JSON: {err}") from None


def control(method: str, path: str, body: bytes) -> tuple[int, dict]:
    route = path.rstrip("/")[len(CONTROL_PREFIX):] or "/"
    try:
        if (method, route) == ("GET", "/"):
            return 200, {"ttl": TTL_REAPER.state(), "chaos": NEMESIS.listed()}
        if (method, route) == ("GET", "/ttl"):
            return 200, TTL_REAPER.state()
        if (method, route) == ("POST", "/ttl/pause"):
            options = _json_body(body, default={})
            if not isinstance(options, dict):
                raise ValueError('the body, if any, must be {"seconds": n}')
            seconds = options.get("seconds")
            if seconds is None:
                TTL_REAPER.paused.set()
            elif isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < 86400:
                raise ValueError("seconds must be a number above 0 and below a day")
            else:
                TTL_REAPER.lag(seconds)
            log.info("TTL reaper paused%s", f" for {seconds}s" if seconds else "")
            return 200, TTL_REAPER.state()
        if (method, route) == ("POST", "/ttl/resume"):
            TTL_REAPER.resume()
            log.info("TTL reaper resumed")
            return 200, TTL_REAPER.state()
        if (method, route) == ("POST", "/ttl/reap"):
            return 200, {"reaped": reap_expired_items()}
        if (method, route) == ("GET", "/chaos"):
            return 200, NEMESIS.listed()
        if (method, route) == ("DELETE", "/chaos"):
            return 200, {"cleared": NEMESIS.clear()}
        if (method, route) == ("POST", "/chaos"):
            specs = _json_body(body)
            if isinstance(specs, list):
                return 201, {"faults": NEMESIS.arm_all(specs)}
            return 201, NEMESIS.arm(specs)
    except ValueError as err:
        return 400, {"message": str(err)}
    return 404, {"message": f"no control route {method} {path}"}


# --- Fix 13: FilterLogEvents pages with nextToken -------------------------------------------------
# AWS answers FilterLogEvents a page at a time (at most `limit`, default and most 10,000 events)
# with a nextToken while more match. MiniStack returned the oldest 10,000 matches and no token, so
# a reader of a busy function's log never saw its newest lines (the tests' log and metric checks
# read every line). Pages here follow the same time order; the token is the number of matches
# already returned (events are only ever appended at the end of that order, so pages stay stable).

def _install_filter_log_events_pages():
    logs = _logs_service()

    def filter_log_events_in_pages(data):
        group = logs._resolve_log_group_name(data)
        if group not in logs._log_groups:
            return logs.error_response_json(
                "ResourceNotFoundException", f"The specified log group does not exist: {group}", 400)
        limit = max(1, min(int(data.get("limit") or 10000), 10000))
        try:
            skip = int(base64.urlsafe_b64decode(data["nextToken"]).decode()) if data.get("nextToken") else 0
        except (ValueError, UnicodeDecodeError):
            return logs.error_response_json("InvalidParameterException", "The nextToken is not valid", 400)
        matches = logs._compile_filter_pattern(data.get("filterPattern", ""))
        start_time, end_time = data.get("startTime"), data.get("endTime")
        streams = logs._log_groups[group]["streams"]
        ranges = []
        with logs._log_events_lock:
            for name in data.get("logStreamNames") or list(streams):
                stream = streams.get(name)
                if stream is None:
                    continue
                history = stream["events"]
                start = bisect.bisect_left(history, start_time, key=logs._event_timestamp) if start_time is not None else 0
                end = bisect.bisect_right(history, end_time, key=logs._event_timestamp) if end_time is not None else len(history)
                ranges.append(logs._stream_event_range(history, name, start, end))
        page, seen, more = [], 0, False
        ordered = heapq.merge(*ranges, key=lambda entry: (entry[0]["timestamp"], entry[0].get("ingestionTime", 0)))
        for event, stream_name in ordered:
            if not matches(event.get("message", "")):
                continue
            seen += 1
            if seen <= skip:
                continue
            if len(page) == limit:
                more = True
                break
            page.append({**event, "logStreamName": stream_name})
        answer = {"events": page, "searchedLogStreams": []}
        if more:
            answer["nextToken"] = base64.urlsafe_b64encode(str(skip + len(page)).encode()).decode()
        return logs.json_response(answer)

    logs._filter_log_events = filter_log_events_in_pages


def _install_control_endpoint():
    app = _modules()[0]
    serve = app.app

    async def app_with_control(scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != CONTROL_PREFIX and not path.startswith(CONTROL_PREFIX + "/"):
            if scope["type"] == "http" and scope.get("client") and scope.get("server"):
                _caller.set((tuple(scope["client"]), scope["server"][1]))  # for the nemesis's kill
            return await serve(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, answer = control(scope["method"], path, body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    app.app = app_with_control


# --- Fix 14: a WebSocket API deploys from a template as on AWS -----------------------------------
# A REQUEST authorizer's IdentitySource is optional on AWS ("For a REQUEST authorizer, this is
# optional"): without one, every $connect reaches the authorizer. MiniStack defaulted it to the
# Authorization header, so a shopper's socket (no token, and browsers cannot set headers on a
# WebSocket) was refused with 401 before the authorizer ran. And AWS::ApiGatewayV2::RouteResponse,
# which makes a route two-way on AWS, had no provisioner: the stack failed. (MiniStack sends a
# route's answer back whether or not it has one, so locally a missing one would go unnoticed.)

def _install_websocket_templates():
    provisioners = _modules()[4]
    apigateway = _apigateway()
    create = provisioners._apigw_v2_authorizer_create

    def create_with_optional_identity_source(logical_id, props, stack_name):
        physical_id, attributes = create(logical_id, props, stack_name)
        if "IdentitySource" not in props and props.get("AuthorizerType") == "REQUEST":
            apigateway._authorizers.get(props.get("ApiId", ""), {})[physical_id]["identitySource"] = []
        return physical_id, attributes

    def route_response_create(logical_id, props, stack_name):
        api_id = props.get("ApiId", "")
        route_id = str(props.get("RouteId", "")).rsplit("/", 1)[-1]  # a route's Ref here is api/route
        status, _, body = apigateway._create_route_response(
            api_id, route_id, {"routeResponseKey": props.get("RouteResponseKey", "$default")})
        if status != 201:
            raise ValueError(f"AWS::ApiGatewayV2::RouteResponse {logical_id}: {body.decode(errors='replace')}")
        response_id = json.loads(body)["routeResponseId"]
        return f"{api_id}/{route_id}/{response_id}", {"RouteResponseId": response_id}

    def route_response_delete(physical_id, props):
        api_id, route_id, response_id = (physical_id.split("/") + ["", "", ""])[:3]
        apigateway._delete_route_response(api_id, route_id, response_id)

    provisioners._apigw_v2_authorizer_create = create_with_optional_identity_source
    provisioners._RESOURCE_HANDLERS["AWS::ApiGatewayV2::Authorizer"]["create"] = create_with_optional_identity_source
    provisioners._RESOURCE_HANDLERS["AWS::ApiGatewayV2::RouteResponse"] = {
        "create": route_response_create, "delete": route_response_delete}


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _import_ministack_without_its_ttl_reaper()
    if "--fingerprints" in sys.argv[1:]:  # for re-pinning after a reviewed upgrade
        for name, obj in _relied_on().items():
            print(name, _fingerprint(obj))
        return
    check_fingerprints()
    if "--check" in sys.argv[1:]:
        print(f"ministack {PINNED_VERSION}: every fidelity fix applies")
        return
    interval = float(os.environ.get("TTL_REAPER_INTERVAL_SECONDS", "1"))
    try:
        armed = NEMESIS.arm_all(parse_chaos(os.environ.get("FAITHFUL_CHAOS", "")))
    except ValueError as err:
        raise SystemExit(f"ministack_faithful: FAITHFUL_CHAOS: {err}") from None
    _install_ttl_stream_identity()
    _install_streams_api_identity_shape()
    _install_template_ttl()
    _install_runtime_api_nodelay()
    _install_complete_prompt_logs()
    _install_logging_config_env()
    _install_stream_failure_semantics()
    _install_http_api_cors_and_throttling()
    _install_metric_math_alarms()
    _install_websocket_templates()
    _install_nemesis()
    _install_filter_log_events_pages()
    _install_control_endpoint()
    _start_ttl_reaper(interval)
    log.info("fidelity fixes applied (TTL reaper every %.1fs; control endpoint %s)", interval, CONTROL_PREFIX)
    if armed:
        log.info("nemesis armed (seed %s): %s", NEMESIS.seed, json.dumps(armed))
    from ministack.app import main as ministack_main
    sys.argv = sys.argv[:1]
    ministack_main()


if __name__ == "__main__":
    main()
