"""The checker's own tests (no stack): it accepts valid concurrent histories, with unknown answers
either way, and rejects each kind of known-bad one, naming the failing window. A checker that cannot
fail is worth nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.checker import check_final, check_history, expected_alerts
from tests.chaos.history import History

P = "P-1"


class Builder:
    """A history of one product, written as the client saw it."""

    def __init__(self, **warehouses):
        self.history = History(initial={P: {w: (stock, 0, 1) for w, stock in (warehouses or {"main": 10}).items()}})

    def op(self, kind, call, ret, status=None, body=None, client="c1", **args):
        return self.history.add(client=client, product=P, kind=kind, args=args, call=call, ret=ret, status=status,
                                body=body, attempts=[status if status is not None else "timeout"])

    def reserve(self, call, ret, q, status=201, warehouse="main", asked=None, state="ACTIVE", **body):
        if status in (200, 201):
            body = {"reservation_id": f"r{call}", "warehouse_id": warehouse, "quantity": q, "status": state}
        elif status is not None:
            body = {"error": {"code": "INSUFFICIENT_STOCK", **body}}
        return self.op("reserve", call, ret, status, body, quantity=q, warehouse=asked, key=None, cart=f"cart{call}")

    def end(self, kind, hold, call, ret, status=200, state=None, code=None, **extra):
        body = {"error": {"code": code, **extra}} if code else ({"status": state} if status else None)
        return self.op(kind, call, ret, status, body, hold=hold.id)

    def get(self, call, ret, **levels):
        """levels: warehouse=(stock, reserved, version)."""
        warehouses = [{"warehouse_id": w, "stock_count": s, "reserved_count": r, "available": s - r, "version": v}
                      for w, (s, r, v) in levels.items()]
        totals = {k: sum(w[k] for w in warehouses) for k in ("stock_count", "reserved_count", "available")}
        return self.op("get", call, ret, 200, {**totals, "warehouses": warehouses})

    def adjust(self, call, ret, by, status=200, version=2, expected=None, warehouse="main", **error):
        body = {"error": error} if error else ({"version": version} if status else None)
        return self.op("adjust", call, ret, status, body, warehouse=warehouse, adjust_by=by,
                       expected_version=expected, key=None)

    def verdict(self):
        (verdict,) = check_history(self.history)
        return verdict


def test_a_valid_concurrent_history_is_accepted():
    h = Builder(main=10, east=3)
    a = h.reserve(0.0, 1.0, 2)
    b = h.reserve(0.5, 1.5, 3, client="c2", warehouse="east")
    h.get(0.6, 0.7, main=(10, 2, 1), east=(3, 0, 1))  # between the two holds
    h.reserve(0.8, 1.2, 1, status=409, client="c3", asked="east", available=0)  # after b took east
    h.end("commit", a, 2.0, 3.0, state="COMMITTED")
    h.end("release", b, 2.5, 3.5, state="RELEASED", client="c2")
    h.end("commit", a, 4.0, 5.0, state="COMMITTED")  # a repeat changes nothing
    h.end("release", b, 4.0, 5.0, status=200, state="RELEASED", client="c2")
    h.adjust(5.0, 6.0, 5, status=None)  # applied, answer lost
    h.get(6.5, 7.0, main=(13, 0, 3), east=(3, 0, 1))
    verdict = h.verdict()
    assert verdict.ok, verdict.report


def test_an_unknown_answer_may_or_may_not_have_taken_effect():
    for applied in (True, False):
        h = Builder(main=10)
        a = h.reserve(0, 1, 2)
        h.end("release", a, 2, 3, status=None)
        h.get(4, 5, main=(10, 0 if applied else 2, 1))
        verdict = h.verdict()
        assert verdict.ok, verdict.report


def test_a_lapsed_hold_refuses_checkout_and_comes_back_by_its_lapse():
    h = Builder(main=10)
    a = h.reserve(0, 1, 4)
    h.op("tick", 10.9, 11.1, 200, None, client="clock", hold=a.id)
    h.op("lapse", 11.2, 30.0, 200, None, client="clock", hold=a.id)
    h.end("commit", a, 12, 13, status=410, code="RESERVATION_EXPIRED")
    h.get(12, 13, main=(10, 4, 1))  # TTL has not run yet
    h.get(20, 21, main=(10, 0, 1))  # now it has
    h.end("release", a, 22, 23, state="EXPIRED")
    verdict = h.verdict()
    assert verdict.ok, verdict.report


def test_double_commit_is_rejected():
    h = Builder(main=10)
    a = h.reserve(0, 1, 2)
    h.end("commit", a, 2, 3, state="COMMITTED")
    h.end("commit", a, 4, 5, state="COMMITTED")
    h.get(6, 7, main=(6, 0, 3))  # sold twice: the shelf lost 4 units for one hold of 2
    verdict = h.verdict()
    assert not verdict.ok
    assert "NOT LINEARIZABLE" in verdict.report and "#3" in verdict.report, verdict.report
    print(verdict.report)


def test_lost_release_is_rejected():
    h = Builder(main=10)
    a = h.reserve(0, 1, 2)
    h.end("release", a, 2, 3, state="RELEASED")
    h.get(4, 5, main=(10, 2, 1))  # the units never came back
    verdict = h.verdict()
    assert not verdict.ok and "#2" in verdict.report, verdict.report
    print(verdict.report)


def test_stale_read_is_rejected():
    h = Builder(main=10)
    h.adjust(0, 1, 5)
    h.get(2, 3, main=(10, 0, 1))  # read after the adjust completed, without it
    verdict = h.verdict()
    assert not verdict.ok and "#1" in verdict.report, verdict.report
    print(verdict.report)


def test_oversell_is_rejected():
    h = Builder(main=3)
    h.reserve(0, 1, 2)
    h.reserve(0, 1, 2, client="c2")  # both granted: 4 of 3 units held
    verdict = h.verdict()
    assert not verdict.ok, verdict.report
    print(verdict.report)


def test_refusal_while_the_units_were_there_is_rejected():
    h = Builder(main=10)
    h.reserve(0, 1, 2, status=409, asked="main", available=10)
    assert not h.verdict().ok


def test_stale_compare_and_set_is_rejected():
    h = Builder(main=10)
    a = h.reserve(0, 1, 2)
    h.end("commit", a, 2, 3, state="COMMITTED")  # a sale is a new version (2)
    h.adjust(4, 5, 3, expected=1, version=3)  # a compare-and-set from the view before the sale succeeded
    verdict = h.verdict()
    assert not verdict.ok, verdict.report
    h = Builder(main=10)
    a = h.reserve(0, 1, 2)
    h.end("commit", a, 2, 3, state="COMMITTED")
    h.adjust(4, 5, 3, status=409, expected=1, code="VERSION_CONFLICT", current_version=2)
    assert h.verdict().ok


def test_the_failing_window_is_the_shortest_prefix():
    h = Builder(main=10)
    for i in range(20):  # a long valid start
        h.get(i, i + 0.5, main=(10, 0, 1))
    h.adjust(30, 31, -3, version=2)
    bad = h.get(32, 33, main=(10, 0, 1))
    for i in range(20):
        h.get(40 + i, 40.5 + i, main=(7, 0, 2))
    report = h.verdict().report
    assert "shortest failing prefix is 23 of 42" in report and f"#{bad.id}" in report, report


# --- Final invariants -------------------------------------------------------------------------------

def entry(i, kind, before, after, rid=None, threshold=3):
    figures = lambda f: None if f is None else {"stock_count": f[0], "reserved_count": f[1],  # noqa: E731
                                                  "available": f[0] - f[1], "threshold_level": threshold}
    return {"entry_id": f"t{i:03d}#1", "warehouse_id": "main", "kind": kind, "reservation_id": rid,
            "before": figures(before), "after": figures(after)}


def observation(stock, reserved, holds, status="IN_STOCK"):
    return {"at": 100, "items": [{"warehouse_id": "main", "stock_count": stock, "reserved_count": reserved,
                                  "available_count": stock - reserved, "threshold_level": 3, "status": status}],
            "all_holds": [{"reservation_id": rid, "warehouse_id": "main", "quantity": q, "state": s,
                           "expires_at": 200} for rid, q, s in holds]}


TRAIL = [entry(0, "set", None, (5, 0)), entry(1, "hold", (5, 0), (5, 3), "r1"),
         entry(2, "committed", (5, 3), (2, 0), "r1"), entry(3, "adjust", (2, 0), (9, 0))]
def alert(alert_id, kind, at, stock, reserved):
    return {"alert_id": alert_id, "type": kind, "warehouse_id": "main", "at": f"t{at}", "stock_count": stock,
            "reserved_count": reserved, "threshold_level": 3}


ALERTS = [alert("a1", "LOW_STOCK", 1, 5, 3), alert("a2", "BACK_IN_STOCK", 3, 9, 0)]


def test_final_state_at_rest_is_accepted():
    assert expected_alerts(TRAIL) == ["LOW_STOCK", "BACK_IN_STOCK"]
    duplicate_delivery = ALERTS + [dict(ALERTS[0])]  # the same alert_id twice is one alert
    assert check_final(P, observation(9, 0, [("r1", 3, "COMMITTED")]), TRAIL, duplicate_delivery) == []


def test_an_alert_caused_by_holds_inside_the_quiet_period_is_found():
    """Damping: after an alert, one caused by holds waits a quiet period; OUT_OF_STOCK and shelf
    changes do not."""
    trail = [entry(0, "set", None, (5, 0)), entry(1, "hold", (5, 0), (5, 3), "r1"),
             entry(2, "released", (5, 3), (5, 0), "r1"), entry(3, "hold", (5, 0), (5, 5), "r2")]
    def timed(alert_id, kind, second, reserved, cause):
        return {**alert(alert_id, kind, 0, 5, reserved), "at": f"2026-11-28T10:00:{second:02d}Z", "cause": cause}
    held = [timed("a1", "LOW_STOCK", 0, 3, "hold"), timed("a2", "BACK_IN_STOCK", 10, 0, "released"),
            timed("a3", "OUT_OF_STOCK", 12, 5, "hold")]
    at_rest = {**observation(5, 5, [("r1", 3, "RELEASED"), ("r2", 5, "ACTIVE")], status="OUT_OF_STOCK"),
               "alert_quiet_seconds": 10}
    at_rest["all_holds"][-1]["expires_at"] = 10**10
    assert check_final(P, at_rest, trail, held) == []
    early = [held[0], {**held[1], "at": "2026-11-28T10:00:09Z"}, held[2]]
    [problem] = check_final(P, at_rest, trail, early)
    assert "inside the quiet period of 10 s" in problem and "a2" in problem


@pytest.mark.parametrize("case, observed, trail, alerts, says", [
    ("counters drifted", observation(9, 1, [("r1", 3, "COMMITTED")]), TRAIL, ALERTS, "reserved 1 but"),
    ("a hold left ACTIVE twice", observation(9, 0, [("r1", 3, "COMMITTED")]),
     TRAIL[:3] + [entry(3, "released", (2, 0), (2, -3), "r1"), entry(4, "adjust", (2, -3), (9, 0))], ALERTS,
     "more than once"),
    ("a checkout sold more than its hold", observation(9, 0, [("r1", 3, "COMMITTED")]),
     [TRAIL[0], TRAIL[1], entry(2, "committed", (5, 3), (1, 0), "r1"), entry(3, "adjust", (1, 0), (9, 0))], ALERTS,
     "moved stock by -4"),
    ("a change missing from the trail", observation(9, 0, [("r1", 3, "COMMITTED")]), TRAIL[:2] + TRAIL[3:], ALERTS,
     "audit trail broken"),
    ("an alert sent twice", observation(9, 0, [("r1", 3, "COMMITTED")]), TRAIL,
     ALERTS[:1] + [alert("a3", "LOW_STOCK", 2, 5, 3)] + ALERTS[1:], "state machine"),
    ("an alert lost", observation(9, 0, [("r1", 3, "COMMITTED")]), TRAIL, ALERTS[:1], "alert state at rest"),
    ("an alert never sent at rest", observation(2, 0, [("r1", 3, "COMMITTED")]),
     TRAIL[:3], [], "not what its counters call for"),
    ("an alert on figures the item never had", observation(9, 0, [("r1", 3, "COMMITTED")]), TRAIL,
     [alert("a1", "LOW_STOCK", 1, 4, 3), ALERTS[1]], "never had"),
    ("a lapsed hold never came back", observation(9, 3, [("r1", 3, "COMMITTED"), ("r2", 3, "ACTIVE")]),
     TRAIL + [entry(4, "hold", (9, 0), (9, 3), "r2")], ALERTS, "past expiry"),
])
def test_final_state_violations_are_found(case, observed, trail, alerts, says):
    if case == "a lapsed hold never came back":
        observed["all_holds"][1]["expires_at"] = 50
    problems = check_final(P, observed, trail, alerts)
    assert any(says in p for p in problems), (case, problems)


# --- Histories the chaos runs caught, kept (docs/CHAOS.md, "Findings") --------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_finding_f2_a_reserve_in_any_warehouse_refused_while_one_had_the_units():
    """Recorded by `make chaos` (all faults): #587 reserve(quantity=1, any warehouse) was answered
    409 INSUFFICIENT_STOCK {available: 0} while reads during its window show 1-3 units for sale in
    each warehouse: the service chooses from a read, and after the chosen warehouse's transaction
    fails it does not look again (service.rs place_hold). The checker must keep rejecting it."""
    history = History.load(FIXTURES / "reserve-any-warehouse-refused.jsonl")
    (verdict,) = check_history(history)
    assert not verdict.ok
    window = verdict.report.split("failing window):")[1]
    assert "#587 shopper1 reserve(quantity=1" in window and "409 INSUFFICIENT_STOCK" in window, verdict.report


def test_finding_f3_stale_stream_images_reannounce_crossings():
    """Recorded by `make chaos` (applied-answer-lost): the alert consumer, running behind, claimed
    crossings from stream images seconds old because the item's alert state had come back to what the
    image recorded (OUT_OF_STOCK at 10:36:42 and again at 10:36:48): at 10:36:49 it announced BACK_IN_STOCK
    with 12, 11 and 9 available while the item had 0, each followed by OUT_OF_STOCK again, one of them
    twice. The checker must keep rejecting it."""
    import json
    case = json.loads((FIXTURES / "stale-image-alerts.json").read_text())
    problems = check_final(case["product"], case["observation"], case["trail"], case["alerts"])
    assert any("state machine's order" in p for p in problems), problems
