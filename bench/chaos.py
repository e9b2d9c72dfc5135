"""`make chaos`: the chaos workload under each fault of the local AWS's nemesis and under all of them
together, each run checked for linearizability and the invariants at rest; rewrites the results
table of docs/CHAOS.md (between its chaos-results markers; the rest of the file is left as it is).

    python -m bench.chaos                       # every fault, 25 s each, a stack of its own
    python -m bench.chaos --faults kill --seed 1a2b3c4d --seconds 25    # replay one run
    python -m bench.chaos --check .local/chaos/kill-1a2b3c4d.jsonl      # check a saved history again

Each run's history is saved to .local/chaos/<fault>-<seed>.jsonl. Exit code 1 if any run has a
violation (its failing window is printed).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from localstack import stack as stack_tool
from localstack.inventory_client import AlertInbox, Stack
from tests.chaos import workload
from tests.chaos.checker import check_history
from tests.chaos.history import History

ROOT = Path(__file__).resolve().parent.parent

DOC = ROOT / "docs" / "CHAOS.md"
BEGIN, END = "<!-- chaos-results:begin -->", "<!-- chaos-results:end -->"
HOLD_SECONDS = 10
# Damped alerts are checked too: a quiet period short against a run, so holds churn across it.
ALERT_QUIET_SECONDS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recovered_by(run: workload.Run) -> str:
    """What put things right after the faults, from the run's own figures."""
    s, parts, backstop = run.stats, [], []
    if s["recovered by retry"]:
        parts.append(f"retry ({s['recovered by retry']} ops)")
    if s["backstop holds_released"]:
        backstop.append(f"{s['backstop holds_released']} holds")
    if s["backstop statuses_repaired"] or s["backstop alerts_sent"]:
        backstop.append(f"{s['backstop statuses_repaired']} alert states, {s['backstop alerts_sent']} alerts")
    if backstop:
        parts.append(f"backstop ({'; '.join(backstop)})")
    if s["reconciled"]:
        parts.append(f"reconciler ({s['reconciled']} repairs)")
    return ", ".join(parts) or "nothing needed"


def table(runs: list[workload.Run], started: datetime, seconds: float) -> str:
    total = sum(r.stats["operations"] for r in runs)
    lines = [f"Measured {started:%Y-%m-%d %H:%M} UTC by `make chaos`: {len(runs)} runs of {seconds:g} s, "
             f"3 products × (3 shoppers + 1 admin), holds of {HOLD_SECONDS} s, the backstop every 5 s; "
             f"**{total:,} operations, {sum(r.violations for r in runs)} violations** (products whose history or "
             f"final state failed a check; see [Findings](#findings)).",
             "",
             "| fault | seed | operations | definite | unknown | 429 | fired / seen | expiries TTL / backstop | alerts | violations (products) | recovered by |",
             "|---|---|---:|---:|---:|---:|---|---|---:|---:|---|"]
    for r in runs:
        fired = ", ".join(f"{f['kind']} {f['fired']}/{f['seen']}" for f in r.faults) or "—"
        s = r.stats
        lines.append(f"| {r.label} | `{r.seed}` | {s['operations']:,} | {s['definite']:,} | {s['unknown']} | "
                     f"{s['throttled (429)']} | {fired} | {s['expired by ttl']} / {s['expired by backstop']} | "
                     f"{s['alerts']} | {r.violations} | {recovered_by(r)} |")
    lines += ["", "Replay a run: `make chaos FAULTS=<fault> SEED=<seed>` (the workload's choices "
              "and the nemesis's dice come from the seed; thread timing still varies)."]
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc:
        raise SystemExit(f"{DOC} has no {BEGIN} … {END} section to write the results into")
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(workload.FAULTS), help="comma-separated, from: "
                        + ", ".join(workload.FAULTS))
    parser.add_argument("--seconds", type=float, default=25.0, help="workload time per run")
    parser.add_argument("--seed", help="the workload's and nemesis's seed (default: random per run)")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/CHAOS.md")
    parser.add_argument("--stack-json", type=Path, help="run against this running stack (its 10-second holds) "
                        "instead of one of its own")
    parser.add_argument("--check", type=Path, help="only check a saved history again (.local/chaos/*.jsonl)")
    args = parser.parse_args()
    if args.check:
        saved = History.load(args.check)
        verdicts = check_history(saved, saved.meta.get("finals"))
        for verdict in verdicts:
            print(verdict.report or f"{verdict.product}: linearizable ({verdict.ops} operations)")
        return 0 if all(v.ok for v in verdicts) else 1
    labels = [label.strip() for label in args.faults.split(",") if label.strip()]
    unknown = [label for label in labels if label not in workload.FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {unknown}; choose from {list(workload.FAULTS)}")
    started = datetime.now(timezone.utc)
    own = args.stack_json is None
    state_dir = Path(tempfile.mkdtemp(prefix="inventory-chaos-", dir=ROOT / ".local")) if own else args.stack_json.parent
    runs = []
    try:
        description = stack_tool.up(state_dir, free_port(), ttl_reaper_interval=1.0, hold_seconds=HOLD_SECONDS,
                                    backstop_schedule="rate(1 day)", alert_quiet_seconds=ALERT_QUIET_SECONDS,
                                    ) if own else json.loads(args.stack_json.read_text())
        stack = Stack(description, state_dir)
        tokens = {role: stack.token(role) for role in ("admin", "shopper")}
        inbox = AlertInbox(stack)
        for label in labels:
            begun = time.monotonic()
            run = workload.run(stack, tokens, inbox, [workload.Phase(label, workload.FAULTS[label], args.seconds)],
                               seed=args.seed, label=label)
            saved = ROOT / ".local" / "chaos" / f"{label}-{run.seed}.jsonl"
            run.history.save(saved)
            print(f"==> {label}: {run.stats['operations']:,} operations ({run.stats['unknown']} unknown), "
                  f"{run.violations} violations, {time.monotonic() - begun:.0f} s; history in {saved}", flush=True)
            if run.violations:
                print(run.report(), flush=True)
            runs.append(run)
    finally:
        if own:
            stack_tool.stop_ministack(state_dir)
    print(table(runs, started, args.seconds))
    if not args.no_doc:
        write_doc(table(runs, started, args.seconds))
        print(f"==> wrote {DOC.relative_to(ROOT)}")
    return 1 if any(r.violations for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
