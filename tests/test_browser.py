"""The product page and the admin panel in headless Chromium (frontend/tests/*.test.mjs, driven by
playwright-core), against this session's stack: the pages as published to its bucket, calling its
API cross-origin under the template's CORS rule and signing in through its Cognito."""

from __future__ import annotations

import json
import os
import subprocess

import requests

from tests.support import ROOT

FRONTEND = ROOT / "frontend"


def test_pages_in_a_real_browser(stack, tmp_path):
    stack_json = tmp_path / "stack.json"
    stack_json.write_text(json.dumps(stack.description))
    screenshots = (stack.state_dir or tmp_path) / "screenshots"
    result = subprocess.run(
        ["node", "--test", "--test-concurrency=1", "--test-reporter=spec", "tests/"], cwd=FRONTEND,
        env={**os.environ, "STACK_JSON": str(stack_json), "SCREENSHOT_DIR": str(screenshots)},
        capture_output=True, text=True, timeout=600)
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert sorted(p.name for p in screenshots.glob("*.png")) == [
        "admin-desktop.png", "admin-phone.png", "shop-desktop.png", "shop-phone.png"]


def test_api_answers_cross_origin_requests_from_the_frontend_origin_only(stack):
    origin = stack.description["frontend_origin"]
    url = f"{stack.api_url}/inventory/{stack.description['demo_products'][0]}/reserve"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,idempotency-key"}
    allowed = requests.options(url, headers={"Origin": origin, **preflight}, timeout=10)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == origin
    assert {"POST", "PUT", "DELETE"} <= set(allowed.headers["Access-Control-Allow-Methods"].split(","))
    assert {"idempotency-key", "authorization"} <= set(allowed.headers["Access-Control-Allow-Headers"].split(","))
    refused = requests.options(url, headers={"Origin": "http://elsewhere.example", **preflight}, timeout=10)
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    page = requests.get(url.rsplit("/", 1)[0], headers={"Origin": origin}, timeout=10)
    assert page.headers["Access-Control-Allow-Origin"] == origin
    assert "x-request-id" in page.headers["Access-Control-Expose-Headers"]
    stranger = requests.get(url.rsplit("/", 1)[0], headers={"Origin": "http://elsewhere.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_published_config_points_the_pages_at_this_stack(stack):
    s3 = stack.client("s3")
    bucket = stack.description["frontend_origin"].split("//", 1)[1].split(".s3-website", 1)[0]
    config = json.loads(s3.get_object(Bucket=bucket, Key="config.json")["Body"].read())
    assert config["apiUrl"] == stack.api_url
    assert config["userPoolClientId"] == stack.description["user_pool_client_id"]
    assert config["holdSeconds"] == stack.description["hold_seconds"]
    assert config["websocketUrl"] == stack.description.get("websocket_url", "")  # the pages' live updates
    assert [p["product_id"] for p in config["products"]] == stack.description["demo_products"]
    index = s3.get_object(Bucket=bucket, Key="index.html")
    assert index["ContentType"].startswith("text/html")
