"""The tester scenarios, each a module run with `python -m localstack.scenarios.<name>`."""
