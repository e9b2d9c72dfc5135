"""A handler panic answers the documented 500 with the request id, and the function goes on serving.

The probe (tests/panic_probe) is a function of the test's own, created next to the stack: it runs
through shared::entrypoint::serve_http as the API functions do and is built by the same
`cargo build --release --workspace --all-targets` (make build-all), so with the release profile `sam build` ships too (Cargo.toml;
`make aws-build` checks that the two agree). Its handler panics on the path /panic. With
`panic = "abort"` the process would die instead (the invocation a function error, the next one a
cold start); with unwinding, serve_http turns the panic into an INTERNAL_ERROR answer.
"""

import json
import uuid

import pytest

from localstack import stack as stack_tool
from tests.support import unique_id, wait_for

PROBE_BINARY = stack_tool.RELEASE_DIR / "panic_probe"


@pytest.fixture(scope="module")
def probe(stack):
    """The probe as a Lambda function (provided.al2023, zip with `bootstrap`, as the stack's are); removed at the end."""
    if not PROBE_BINARY.exists():
        pytest.fail(f"{PROBE_BINARY} is missing: `cargo build --release --workspace` builds it (make does)")
    functions, logs = stack.client("lambda"), stack.client("logs")
    name = unique_id("panic-probe")
    functions.create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Architectures=["x86_64"],
        Role="arn:aws:iam::000000000000:role/panic-probe", Timeout=10, MemorySize=128,
        Code={"ZipFile": stack_tool.bootstrap_zip(PROBE_BINARY)}, LoggingConfig={"LogFormat": "JSON"})
    functions.get_waiter("function_active_v2").wait(FunctionName=name)
    yield name
    functions.delete_function(FunctionName=name)
    try:
        logs.delete_log_group(logGroupName=f"/aws/lambda/{name}")
    except logs.exceptions.ResourceNotFoundException:
        pass


def http_request(path: str, request_id: str) -> dict:
    """What API Gateway (HTTP API, payload 2.0) sends a function for GET <path>."""
    return {
        "version": "2.0", "routeKey": f"GET {path}", "rawPath": path, "rawQueryString": "",
        "headers": {"accept": "application/json", "user-agent": "test_panic"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "probe", "domainName": "probe.execute-api.localhost",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "test_panic"},
            "requestId": request_id, "routeKey": f"GET {path}", "stage": "v1",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


def call(stack, function: str, path: str) -> tuple[str, dict]:
    """(API request id, the function's answer) for GET <path>; a function error fails the test."""
    request_id = str(uuid.uuid4())
    result = stack.client("lambda").invoke(FunctionName=function,
                                           Payload=json.dumps(http_request(path, request_id)).encode())
    answer = json.loads(result["Payload"].read() or b"null")
    assert "FunctionError" not in result, f"{path}: the function failed instead of answering: {answer}"
    return request_id, answer


def test_a_handler_panic_answers_500_with_the_request_id_and_the_function_keeps_serving(stack, probe):
    _, before = call(stack, probe, "/before")
    assert before["statusCode"] == 200, before
    served = json.loads(before["body"])

    request_id, panicked = call(stack, probe, "/panic")
    assert panicked["statusCode"] == 500, panicked
    assert panicked["headers"]["x-request-id"] == request_id
    assert panicked["headers"]["content-type"] == "application/json"
    # The documented error shape; the panic's message stays in the logs.
    assert json.loads(panicked["body"]) == {
        "error": {"code": "INTERNAL_ERROR", "message": "internal error", "request_id": request_id}}

    _, after = call(stack, probe, "/after")
    assert after["statusCode"] == 200, after
    # The same process, which counted the panicking request too: no crash, no cold start.
    assert json.loads(after["body"]) == {"pid": served["pid"], "requests": served["requests"] + 2}

    # An operator finds the panic and the 500 under the request's id in the function's log.
    def logged():
        messages = [message for _, message in stack.function_log_messages(probe)]
        panic_line = [m for m in messages if "handler panicked: panic_probe: request" in m and "on purpose" in m]
        answer_line = [m for m in messages if request_id in m and "500" in m]
        return panic_line and answer_line
    wait_for(logged, timeout=10, what="the panic and its 500 in the probe's log")
