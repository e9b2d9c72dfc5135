"""The public surface under abuse: stage throttling, and no secrets in the functions' logs."""

from __future__ import annotations

import concurrent.futures
import math
import time
import uuid

import pytest
import requests

from tests.support import TEMPLATE, new_cart_token


@pytest.fixture
def tight_throttling(stack):
    """The stage's throttling turned down to a burst of 5 and 1 request/s, then put back."""
    api = stack.client("apigatewayv2")
    api_id, stage = stack.description["api_id"], stack.api_url.rsplit("/", 1)[1]
    template_settings = api.get_stage(ApiId=api_id, StageName=stage)["DefaultRouteSettings"]
    api.update_stage(ApiId=api_id, StageName=stage,
                     DefaultRouteSettings={"ThrottlingBurstLimit": 5, "ThrottlingRateLimit": 1.0})
    try:
        yield template_settings
    finally:
        api.update_stage(ApiId=api_id, StageName=stage, DefaultRouteSettings=template_settings)


def test_the_stage_answers_429_beyond_its_burst_and_recovers(stack, tight_throttling):
    assert (tight_throttling["ThrottlingBurstLimit"], tight_throttling["ThrottlingRateLimit"]) == (1000, 500.0)
    product = stack.description["demo_products"][0]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{stack.api_url}/inventory/{product}", timeout=10), range(20)))
    elapsed = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    # 5 from the burst, plus at most one per second refilled while the 20 were in flight; the rest refused.
    assert 5 <= statuses.count(200) <= 5 + math.ceil(elapsed), (statuses, elapsed)
    assert statuses.count(200) < 20
    assert statuses.count(429) == 20 - statuses.count(200), statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json() == {"message": "Too Many Requests"}


def test_the_template_throttling_admits_a_flash_sale_burst(stack):
    product = stack.description["demo_products"][0]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: requests.get(f"{stack.api_url}/inventory/{product}", timeout=10).status_code,
                                 range(100)))
    assert statuses == [200] * 100


@pytest.mark.last
def test_no_token_or_password_reaches_the_logs(stack, tokens):
    messages = stack.function_log_messages()
    groups = {group for group, _ in messages}
    assert len(groups) >= 8, groups
    secrets = [*tokens.values(), *(user["password"] for user in stack.description["demo_users"].values())]
    for group, message in messages:
        assert "Bearer " not in message and "authorization" not in message.lower(), (group, message[:300])
        assert not any(secret in message for secret in secrets), group
    assert len(messages) > 100  # the run's request logs were read, not an empty set


API_HOLD_FUNCTIONS = ("ReserveInventoryFunction", "ReleaseReservationFunction", "UpdateInventoryFunction")


def test_at_the_most_verbose_allowed_level_no_secret_reaches_the_logs(stack, tokens, new_product):
    """DEBUG is the most verbose LogLevel the template allows (TRACE would log raw events). With the
    hold functions at DEBUG, a hold is placed, released, placed and checked out: their logs carry
    DEBUG lines but no cart token, access token or password."""
    assert TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"] == ["DEBUG", "INFO", "WARN", "ERROR"]
    lambda_client = stack.client("lambda")
    names = [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]
             if any(kind in f["FunctionName"] for kind in API_HOLD_FUNCTIONS)]
    assert len(names) == 3, names
    saved = {name: lambda_client.get_function_configuration(FunctionName=name) for name in names}
    for name, config in saved.items():
        lambda_client.update_function_configuration(
            FunctionName=name, LoggingConfig={**config["LoggingConfig"], "ApplicationLogLevel": "DEBUG"},
            Environment={"Variables": {**config["Environment"]["Variables"], "LOG_LEVEL_PROBE": "debug"}})
    try:
        product = new_product(main=10)
        cart = new_cart_token()
        first = stack.reserve(product, 1, "main", cart=cart)
        assert first.status_code == 201 and stack.release(product, first.json()["reservation_id"]).status_code == 200
        second = stack.reserve(product, 1, "main", cart=cart, key=str(uuid.uuid4()))
        assert stack.commit(product, second.json()["reservation_id"], tokens["shopper"]).status_code == 200
    finally:
        for name, config in saved.items():
            lambda_client.update_function_configuration(FunctionName=name, LoggingConfig=config["LoggingConfig"],
                                                        Environment=config["Environment"])
    secrets = [cart, *tokens.values(), *(user["password"] for user in stack.description["demo_users"].values())]
    messages = [(g, m) for g, m in stack.function_log_messages() if any(k in g for k in API_HOLD_FUNCTIONS)]
    assert sum('"DEBUG"' in m for _, m in messages) > 10, "the functions did not log at DEBUG"
    for group, message in messages:
        assert "Bearer " not in message and "authorization" not in message.lower(), (group, message[:300])
        assert not any(secret in message for secret in secrets), (group, message[:300])
