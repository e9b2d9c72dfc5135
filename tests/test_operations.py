"""Operations: the audit trail (GET /inventory/{productId}/history), the functions' metrics (EMF
lines in their logs), and the alarms, dashboard and runbook."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT, TEMPLATE, assert_error, unique_id, wait_for

RUNBOOK = (ROOT / "docs" / "RUNBOOK.md").read_text()


def history(stack, product, token, **params):
    response = stack.call("GET", f"/inventory/{product}/history", token, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def all_entries(stack, product, token) -> list[dict]:
    entries, cursor = [], None
    while True:
        page = history(stack, product, token, limit=2, **({"cursor": cursor} if cursor else {}))
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


@pytest.fixture(scope="module")
def story(stack, tokens):
    """One product through every kind of change: created, restocked, threshold, a hold released, a
    hold sold, a hold left to lapse (TTL path)."""
    product = unique_id("AUDIT")
    admin = tokens["admin"]
    created = stack.admin_put(product, {"warehouse_id": "main", "stock_count": 10, "threshold_level": 2,
                                        "reason": "first delivery"}, admin)
    assert created.status_code == 201
    assert stack.admin_put(product, {"warehouse_id": "main", "adjust_by": 5, "reason": "restock"}, admin).status_code == 200
    assert stack.admin_put(product, {"warehouse_id": "main", "threshold_level": 4, "reason": "busier now"},
                           admin).status_code == 200
    released = stack.reserve(product, 2).json()
    assert stack.release(product, released["reservation_id"]).status_code == 200
    sold = stack.reserve(product, 3).json()
    assert stack.commit(product, sold["reservation_id"], tokens["shopper"]).status_code == 200
    lapsed = stack.reserve(product, 1).json()
    wait_for(lambda: stack.levels(product)["main"] == (12, 0, 12), timeout=stack.description["hold_seconds"] + 15)
    entries = wait_for(lambda: (e := all_entries(stack, product, admin)) and len(e) == 9 and e, timeout=10)
    return {"product": product, "entries": entries, "released": released["reservation_id"],
            "sold": sold["reservation_id"], "lapsed": lapsed["reservation_id"]}


def test_every_kind_of_change_is_in_the_history_with_actor_and_figures(story):
    entries = list(reversed(story["entries"]))  # oldest first
    figures = lambda f: (f["stock_count"], f["reserved_count"], f["available"], f["threshold_level"])  # noqa: E731
    expected = [
        ("set", "first delivery", None, None, (10, 0, 10, 2)),
        ("adjust", "restock", None, (10, 0, 10, 2), (15, 0, 15, 2)),
        ("threshold", "busier now", None, (15, 0, 15, 2), (15, 0, 15, 4)),
        ("hold", None, story["released"], (15, 0, 15, 4), (15, 2, 13, 4)),
        ("released", None, story["released"], (15, 2, 13, 4), (15, 0, 15, 4)),
        ("hold", None, story["sold"], (15, 0, 15, 4), (15, 3, 12, 4)),
        ("committed", None, story["sold"], (15, 3, 12, 4), (12, 0, 12, 4)),
        ("hold", None, story["lapsed"], (12, 0, 12, 4), (12, 1, 11, 4)),
        ("expired", None, story["lapsed"], (12, 1, 11, 4), (12, 0, 12, 4)),
    ]
    seen = [(e["kind"], e.get("reason"), e.get("reservation_id"), e["before"] and figures(e["before"]), figures(e["after"]))
            for e in entries]
    assert seen == expected
    actors = [e["actor"] for e in entries]
    admin_actor = actors[0]
    assert admin_actor.startswith("user:") and actors[1:3] == [admin_actor] * 2
    assert actors[3:6] == ["shopper"] * 3  # holds and releases are anonymous
    assert actors[6].startswith("user:") and actors[6] != admin_actor  # the signed-in shopper checked out
    assert actors[7:] == ["shopper", "system:ttl"]
    assert all(e["product_id"] == story["product"] and e["warehouse_id"] == "main" for e in entries)
    assert [e["entry_id"] for e in story["entries"]] == sorted((e["entry_id"] for e in entries), reverse=True)


def test_a_replayed_stream_batch_adds_no_entries(stack, tokens, story):
    batch = stack.stream_records("stock", story["product"])
    assert len(batch) >= 9
    for _ in range(2):
        assert stack.invoke("broadcast_stock", {"Records": batch}) == {"batchItemFailures": []}
    assert all_entries(stack, story["product"], tokens["admin"]) == story["entries"]


def test_history_is_for_admins_only(stack, tokens, story):
    path = f"/inventory/{story['product']}/history"
    assert_error(stack.call("GET", path, tokens["shopper"]), 403, "FORBIDDEN")
    assert stack.call("GET", path).status_code == 401
    assert_error(stack.call("GET", path, tokens["admin"], params={"cursor": "bm90LWFuLWVudHJ5"}), 400, "INVALID_INPUT")
    assert_error(stack.call("GET", path, tokens["admin"], params={"limit": "0"}), 400, "INVALID_INPUT")
    assert_error(stack.call("GET", "/inventory/bad id/history", tokens["admin"]), 400, "INVALID_INPUT")
    assert history(stack, unique_id("NEVER"), tokens["admin"]) == {"items": [], "next_cursor": None}


def test_history_entries_expire_after_the_retention(stack, story):
    table = stack.client("dynamodb")
    ttl = table.describe_time_to_live(TableName=stack.description["history_table"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    days = int(TEMPLATE["Parameters"]["HistoryRetentionDays"]["Default"])
    for entry in story["entries"]:
        assert abs(entry["expires_at"] - days * 86400 - _epoch(entry["time"])) <= 5


def _epoch(rfc3339: str) -> int:
    from datetime import datetime
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def metric_lines(stack) -> list[dict]:
    """Every embedded-metric-format line in the functions' logs."""
    return [json.loads(message) for _, message in stack.function_log_messages()
            if message.strip().startswith("{") and '"_aws"' in message]


def test_each_event_emits_its_metric(stack, story):
    def emitted(metric, **properties):
        def lines():
            return [line for line in metric_lines(stack) if metric in line
                    and all(line.get(k) == v for k, v in properties.items())]
        return wait_for(lines, timeout=10, what=f"a {metric} line with {properties}")

    for metric, hold in (("HoldsGranted", "released"), ("Releases", "released"), ("Commits", "sold")):
        [line] = emitted(metric, reservation_id=story[hold])
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Inventory" and directive["Dimensions"] == [["Stack"]]
        assert line["Stack"] == stack.description["stack_name"] and line[metric] == 1
    [expiry] = emitted("Expiries", reservation_id=story["lapsed"])
    assert expiry["Path"] == "ttl" and 0 <= expiry["ReleaseLagSeconds"] <= 10
    assert expiry["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stack", "Path"]]
    assert len(emitted("HistoryEntries", product_id=story["product"])) >= 9
    assert all(line["StreamLagSeconds"] >= 0 for line in emitted("StreamLagSeconds"))


def test_a_refused_hold_and_an_alert_are_counted(stack, new_product, inbox):
    product = new_product(main=(3, 2))
    assert stack.reserve(product, 5).status_code == 409
    assert stack.reserve(product, 2).status_code == 201  # 1 left of threshold 2: LOW_STOCK
    inbox.wait_for(product, 1)
    def both():
        lines = [l for l in metric_lines(stack) if l.get("product_id") == product]
        kinds = {k for l in lines for k in ("HoldsRefused", "AlertsPublished") if k in l}
        return kinds == {"HoldsRefused", "AlertsPublished"}
    wait_for(both, timeout=15, what="HoldsRefused and AlertsPublished lines")


def test_the_backstop_reports_its_repairs_as_a_metric(stack):
    stack.invoke("check_thresholds", {})
    lines = [l for l in metric_lines(stack) if "BackstopRepairs" in l]
    assert lines and all(l["BackstopRepairs"] >= 0 for l in lines)


ALARMS = sorted(name for name, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm")


def test_the_template_has_the_alarms_the_operators_need():
    assert ALARMS == sorted([
        "StreamFailuresAlarm", "StreamIteratorAgeAlarm", "Api5xxRateAlarm", "ApiFunctionErrorsAlarm",
        "PipelineFunctionErrorsAlarm", "ApiFunctionThrottlesAlarm", "PipelineFunctionThrottlesAlarm",
        "BackstopRepairsAlarm", "CounterRepairsAlarm", "ReleaseLagAlarm", "DigestFailedAlarm"])
    functions = {name for name, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    watched = {json.dumps(TEMPLATE["Resources"][a]["Properties"]) for a in ALARMS}
    for metric in ("Errors", "Throttles"):
        covered = {f for f in functions for text in watched if f'"{metric}"' in text and f'"Ref": "{f}"' in text}
        assert covered == functions, f"{metric}: {functions - covered} not watched"
    for alarm in ALARMS:
        assert TEMPLATE["Resources"][alarm]["Properties"]["AlarmActions"] == [{"Ref": "OperationsTopic"}]


@pytest.mark.parametrize("alarm", ALARMS)
def test_each_alarm_has_a_runbook_section(alarm):
    section = re.search(rf"^## {alarm}\n(.*?)(?=^## |\Z)", RUNBOOK, re.S | re.M)
    assert section, f"docs/RUNBOOK.md has no '## {alarm}' section"
    text = section.group(1)
    for part in ("**Means**", "**Confirm**", "**Act**"):
        assert part in text, f"{alarm}: no {part}"
    assert "```" in text, f"{alarm}: no commands"
    anchor = f"RUNBOOK.md#{alarm.lower()}"
    assert anchor in TEMPLATE["Resources"][alarm]["Properties"]["AlarmDescription"]


def test_the_deployed_stack_has_the_alarms_and_the_dashboard(stack):
    cloudwatch = stack.client("cloudwatch")
    names = [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]]
    for alarm in ALARMS:
        assert any(f"-{alarm}-" in name for name in names), alarm
    body = json.loads(cloudwatch.get_dashboard(DashboardName=stack.description["dashboard_name"])["DashboardBody"])
    charted = set()
    for widget in body["widgets"]:
        namespace = None
        for row in widget["properties"]["metrics"]:  # "." repeats the row above, as CloudWatch reads it
            namespace = namespace if row[0] in (".", "...") else row[0]
            if namespace == "Inventory" and row[0] != "...":
                charted.add(row[1])
    assert {"HoldsGranted", "Expiries", "ReleaseLagSeconds", "AlertsPublished", "BackstopRepairs",
            "StreamLagSeconds"} <= charted
