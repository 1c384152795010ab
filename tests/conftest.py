"""One moto mock for the whole run, reset between tests (about 7x faster than a mock per test)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.support import (
    BATCH_STATE_MACHINE_ARN,
    BUCKET,
    FEATURES_TABLE,
    PREDICTIONS_TABLE,
    REGION,
    ROLLOUT_STATE_MACHINE_ARN,
    STATE_MACHINE_ARN,
    TABLE,
    FakeLambdaContext,
    create_resources,
)

# No per-example deadline: a property test checks what is true, not how fast (that is what
# benchmarks/ are for); on a loaded 2-core machine the default 200 ms failed correct examples.
settings.register_profile("mlops", deadline=None)
settings.load_profile("mlops")

# Set before any handler is imported: handlers read their settings at import (cold start).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "ARTIFACTS_BUCKET": BUCKET,
        "METADATA_TABLE": TABLE,
        "PREDICTIONS_TABLE": PREDICTIONS_TABLE,
        "FEATURES_TABLE": FEATURES_TABLE,
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        # Set here, not by the modules that test these handlers: a handler imported first by
        # another test (the OpenAPI generator sets placeholders) would keep another machine.
        "ROLLOUT_STATE_MACHINE_ARN": ROLLOUT_STATE_MACHINE_ARN,
        "BATCH_STATE_MACHINE_ARN": BATCH_STATE_MACHINE_ARN,
        "POWERTOOLS_SERVICE_NAME": "tests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMLOps",
        "POWERTOOLS_DEV": "false",
        # Set by the template on functions the local runtime imports, and left set after
        # (see infra.local.lambda_runtime._environment): given here so that no test sees
        # another function's value.
        "EVENT_BUS_NAME": "default",
        "OUTPUT_STREAM": "mlops-stream-output-test",
        "LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        # botocore's account-based DynamoDB endpoints reach mock_aws as URLs it does not
        # route to DynamoDB Streams ("Not yet implemented"): the tests read the stream.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


# Where the signed readers go during the run (a test may point them elsewhere and back).
MOTO_ENDPOINT: list[str] = []


@pytest.fixture(scope="session")
def moto_session() -> Iterator[object]:
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    from infra.local import lambda_runtime
    from mlops_core.storage import clients

    lambda_runtime.install()  # in-process Lambda, executing Step Functions, atomic DynamoDB requests
    mock = mock_aws()
    mock.start()
    # The signed readers (mlops_core.storage.signed_reads) speak plain HTTP, which mock_aws does not
    # intercept: they go to a moto server thread serving the same in-memory state.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    MOTO_ENDPOINT[:] = [f"http://{host}:{port}"]
    clients.send_reads_to(MOTO_ENDPOINT[0])
    yield mock
    clients.send_reads_to(None)
    server.stop()
    mock.stop()


@pytest.fixture
def moto_endpoint(moto_session: object) -> str:
    """The moto server the signed readers use (for tests that point them elsewhere and back)."""
    return MOTO_ENDPOINT[0]


@pytest.fixture
def aws(moto_session: object) -> Iterator[None]:
    """Empty AWS with the project's bucket and table, as a fresh deployment has."""
    moto_session.reset()  # type: ignore[attr-defined]
    create_resources()
    yield


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


#: The xdist group of every test module whose tests use the synthesized CDK app
#: (tests/infra/conftest.py's session fixture `synthesized`).
SYNTHESIZED_APP_GROUP = "synthesized-cdk-app"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `make test` (`--dist loadgroup`) each test module is one unit of work, as with
    `--dist loadfile`, except the modules that use the synthesized CDK app: together they are
    one unit, so one worker synthesizes the app (~20 s of CPU on the 2-core CI machine, of
    constructs that cannot be passed between processes) instead of every worker once.
    Without xdist these marks change nothing."""
    uses_app = {item.path for item in items if "synthesized" in getattr(item, "fixturenames", ())}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = SYNTHESIZED_APP_GROUP if item.path in uses_app else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
