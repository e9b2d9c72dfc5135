"""A short `make chaos` (docs/CHAOS.md): the chaos workload through every fault of the nemesis in
turn, a few seconds each, on the tests' stack; the history must be linearizable and the state at
rest sound. The same history with one figure of the final read altered must be rejected, so the check
is shown able to fail on this very data."""

from __future__ import annotations

from tests.chaos import workload
from tests.chaos.checker import check_history
from tests.chaos.history import History
from tests.support import outside_the_contract

PHASE_SECONDS = 2.0


def test_every_fault_briefly(stack, tokens, inbox, tmp_path):
    phases = [workload.Phase(label, specs, PHASE_SECONDS) for label, specs in workload.FAULTS.items()]
    with outside_the_contract():  # the kill fault crashes functions: API Gateway answers those, not the API
        run = workload.run(stack, tokens, inbox, phases, products=2, shoppers=2, label="every fault")
    saved = tmp_path / f"chaos-{run.seed}.jsonl"
    run.history.save(saved)
    print(f"seed {run.seed}: {dict(run.stats)}")
    assert run.stats["operations"] >= 200, run.stats
    assert {f["phase"] for f in run.faults} == set(workload.FAULTS) - {"none"}, run.faults
    assert run.violations == 0, f"history in {saved}\n{run.report()}"

    # The same history with one answer made impossible (a read showing 1,000 more on the shelf than
    # was ever there) must be rejected. Early in the history, so the search proves it quickly.
    tampered = History.load(saved)
    first_read = next(op for op in tampered.ops if op.kind == "get" and op.status == 200)
    first_read.body["warehouses"][0]["stock_count"] += 1000
    verdicts = {v.product: v for v in check_history(tampered)}
    assert not verdicts[first_read.product].ok
    assert "NOT LINEARIZABLE" in verdicts[first_read.product].report, verdicts[first_read.product].report
