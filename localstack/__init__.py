"""The local AWS and the tools around it, as one package run from the repository root:

    python -m localstack.stack up|down|token|publish-frontend
    python -m localstack.scenarios.run_all
    python -m localstack.redrive_stream_failures

ministack_faithful.py (the launcher) and aws_build.py import nothing of ours and are also run by path:
stack.py starts the launcher from the state directory, and `sam build` runs aws_build.py as its cargo.
"""
