"""The CDK app: `app.py` is the entry point (what cdk.json runs), `stack.py` composes one
construct per domain from `constructs/`, `bundling.py` builds the Lambda layers without
Docker, `runtime.py` holds what every function's environment gets, and `openapi.py`
writes the API document from the handlers and the template's routes."""
