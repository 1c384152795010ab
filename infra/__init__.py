"""The CDK app of the serverless MLOps project: `app.py` is the entry point, `stack.py`
composes one construct per domain from `constructs/`, and `bundling.py` builds the
Lambda layers without Docker."""

import os

# jsii prints a large banner about Node 20's end of life on every start; aws-cdk-lib
# 2.275 still runs on it. Silenced for that major version only.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
