"""The chaos checker: history recorder, sequential model, linearizability checker, workload (docs/CHAOS.md)."""
