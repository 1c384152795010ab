"""The CDK app of the serverless MLOps project: `app.py` is the entry point, `stack.py`
composes one construct per domain from `constructs/`, and `bundling.py` builds the
Lambda layers without Docker."""
