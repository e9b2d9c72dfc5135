"""The tester scenarios (localstack/scenarios), each run as a tester runs it, against the test stack."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parent.parent / "localstack" / "scenarios"
sys.path.insert(0, str(SCENARIOS))

from run_all import SCENARIOS as NAMES  # noqa: E402


def test_every_scenario_is_listed():
    scripts = {p.stem for p in SCENARIOS.glob("*.py")} - {"scenario", "run_all"}
    assert scripts == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_passes(stack, name):
    result = subprocess.run([sys.executable, str(SCENARIOS / f"{name}.py")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "STACK_JSON": str(stack.state_dir / "stack.json")})
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.rstrip().splitlines()[-1].startswith(f"PASS {name.replace('_', '-')}")
