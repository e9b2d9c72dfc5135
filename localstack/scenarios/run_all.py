#!/usr/bin/env python3
"""Runs every scenario against the stack in $STACK_JSON or .local/stack.json, and prints a summary.

    python -m localstack.scenarios.run_all [name ...]
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIOS = ["flash_sale", "abandoned_cart", "checkout", "low_stock_alert", "security", "bad_input", "multi_warehouse"]


def main() -> int:
    chosen = [name.replace("-", "_") for name in sys.argv[1:]] or SCENARIOS
    results = []
    for name in chosen:
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"localstack.scenarios.{name}"], cwd=ROOT)
        results.append((name.replace("_", "-"), code, time.monotonic() - started))
        print()
    print("scenario          result   time")
    for name, code, took in results:
        print(f"{name:<17} {'PASS' if code == 0 else 'FAIL':<8} {took:5.1f} s")
    failed = sum(1 for _, code, _ in results if code)
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
