"""Everything that is not deployed code, in three parts: `cdk/` (the CDK app), `local/`
(the embedded local stack on moto) and `cli/` (the `mlops` command and its API client)."""

import os

# jsii prints a large banner about Node 20's end of life on every start; aws-cdk-lib
# 2.275 still runs on it. Silenced for that major version only.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
