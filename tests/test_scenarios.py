"""The tester scenarios (localstack/scenarios), each run as a tester runs it, against the test stack."""

import os
import subprocess
import sys

import pytest

from localstack.scenarios.run_all import SCENARIOS as NAMES
from tests.support import ROOT

SCENARIOS = ROOT / "localstack" / "scenarios"


def test_every_scenario_is_listed():
    scripts = {p.stem for p in SCENARIOS.glob("*.py")} - {"__init__", "scenario", "run_all"}
    assert scripts == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_passes(stack, name):
    result = subprocess.run([sys.executable, "-m", f"localstack.scenarios.{name}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "STACK_JSON": str(stack.state_dir / "stack.json")})
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.rstrip().splitlines()[-1].startswith(f"PASS {name.replace('_', '-')}")
