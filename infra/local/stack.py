"""The embedded local stack: moto server + the synthesized template + the local gateway.

``EmbeddedStack.start()``:
  1. checks that both ports are free (nothing is started otherwise);
  2. patches moto (in-process Lambda, executing Step Functions) and starts moto's
     server on 127.0.0.1 in this process;
  3. synthesizes the CDK app without building the layers (handlers run from this
     checkout, so layer contents are not needed, and the template's resources, routes
     and state machine are identical) and creates it with moto's CloudFormation;
  4. tags each function with its source folder, as the template declares, because
     moto's CloudFormation drops Lambda tags;
  5. serves the template's REST routes on the API port.
``describe()`` is written to ``.local-stack/endpoint.json`` for the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where `mlops up` leaves its endpoint file and the functions' log (MLOPS_STATE_DIR overrides).
STATE_DIR = Path(os.environ.get("MLOPS_STATE_DIR", REPO_ROOT / ".local-stack"))
ENDPOINT_FILE = STATE_DIR / "endpoint.json"
STACK_NAME = "ServerlessMlops"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
LOGGER = logging.getLogger("mlops.local")

#: Settings the functions read only here (never declared in the template), each a deliberate
#: local deviation listed in ``dropped_properties.LOCAL_BEHAVIOUR``: a rollout's bakes wait at
#: most this many seconds, so that `--bake 10m` takes seconds locally.
ROLLOUT_MAX_WAIT_ENV = "MLOPS_ROLLOUT_MAX_WAIT_SECONDS"
LOCAL_ROLLOUT_MAX_WAIT_SECONDS = 20
LOCAL_FUNCTION_ENVIRONMENT = {ROLLOUT_MAX_WAIT_ENV: str(LOCAL_ROLLOUT_MAX_WAIT_SECONDS)}
# No SageMaker locally: a run asking for a training job is a 422 (mlops_core.training.compute).
SAGEMAKER_UNAVAILABLE_ENV = "MLOPS_SAGEMAKER_UNAVAILABLE"
LOCAL_FUNCTION_ENVIRONMENT[SAGEMAKER_UNAVAILABLE_ENV] = "on the local stack (moto runs no training jobs)"
# The routing history's buckets are 10 s locally (5 minutes on AWS): a local session's traffic
# spans minutes, and the console's charts would show it as one or two points.
ROUTING_HISTORY_BUCKET_ENV = "MLOPS_ROUTING_HISTORY_BUCKET_SECONDS"
LOCAL_ROUTING_HISTORY_BUCKET_SECONDS = 10
LOCAL_FUNCTION_ENVIRONMENT[ROUTING_HISTORY_BUCKET_ENV] = str(LOCAL_ROUTING_HISTORY_BUCKET_SECONDS)
#: The console function's folder: /_local/console/ invokes the template's function from it.
CONSOLE_SOURCE = "functions/console"

# CDK metadata has no runtime effect; it is removed before deploying. (Stages, usage
# plans and API keys are skipped by moto itself; the local gateway serves the routes and
# issues the local API key. What else moto misreads or drops: dropped_properties.py.)
# Event source mappings are run by the local stack itself (stream_mappings.py): moto would
# invoke the function inside the table writer's own request.
_UNSUPPORTED_TYPES = {"AWS::CDK::Metadata", "AWS::Lambda::EventSourceMapping"}


class PortInUse(Exception):
    """A port the local stack needs is taken."""


@dataclass
class StackDescription:
    moto_url: str
    api_url: str
    api_key: str
    region: str
    artifacts_bucket: str
    metadata_table: str
    state_machine_arn: str | None
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    pid: int = field(default_factory=os.getpid)

    def write(self, path: Path = ENDPOINT_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path = ENDPOINT_FILE) -> StackDescription:
        return cls(**json.loads(path.read_text()))


def ensure_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {host} ({what}) is already in use; choose another with --{what}-port"
            ) from None


def local_aws_environment(moto_url: str) -> dict[str, str]:
    """What boto3 needs to talk to the embedded moto server (never to AWS)."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


# Everything the template is made from: a change to any of these synthesizes again.
_TEMPLATE_INPUTS = ("infra", "functions", "layers", "cdk.json", "pyproject.toml", "uv.lock")


def _head_commit() -> str:
    """The checkout's commit, read without importing the CDK app (whose jsii runtime starts a
    node process): the template records it, so a new commit synthesizes again."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as the CDK app finds it
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def template_inputs_digest() -> str:
    """A digest of the files the template depends on (and of the commit, which it records)."""
    digest = hashlib.sha256(_head_commit().encode())
    for name in _TEMPLATE_INPUTS:
        root = REPO_ROOT / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(REPO_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def synthesize_template(*, cache: bool = True) -> dict[str, Any]:
    """The stack's CloudFormation template, synthesized without building the layers.

    Synthesis takes ~20 s (the jsii runtime, CDK, cdk-nag); the result is kept in
    ``STATE_DIR`` under a digest of its inputs, so the next ``mlops up`` starts in seconds.
    It runs in a child process: the CDK's jsii runtime is a node process that would
    otherwise live as long as the local stack, die with it on the terminal's Ctrl-C, and
    make jsii's exit handler print a ``BrokenPipeError`` traceback after "stopped".
    """
    cached = STATE_DIR / f"template-{template_inputs_digest()}.json"
    if cache and cached.exists():
        return dict(json.loads(cached.read_text()))
    with tempfile.TemporaryDirectory(prefix="mlops-synth-") as outdir:
        written = Path(outdir) / "template.json"
        child = subprocess.run(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "infra.local.stack", "--synthesize", str(written)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"synthesizing the CDK app failed:\n{child.stderr[-4000:]}")
        template: dict[str, Any] = json.loads(written.read_text())
    if cache:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        for stale in STATE_DIR.glob("template-*.json"):
            stale.unlink()
        cached.write_text(json.dumps(template))
    return template


def _synthesize_here(written: Path) -> None:
    from infra.cdk.app import STACK_NAME as APP_STACK
    from infra.cdk.app import build_app

    with tempfile.TemporaryDirectory(prefix="mlops-synth-") as outdir:
        # An empty bundling-stacks list makes CDK skip every asset bundling step.
        app, _ = build_app(outdir=outdir, context={"aws:cdk:bundling-stacks": []})
        written.write_text(json.dumps(app.synth().get_stack_by_name(APP_STACK).template))


def for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """The template minus what moto cannot deploy (CDK bootstrap checks, metadata), with the
    properties moto reads differently spelled its way (``respell_for_moto``)."""
    from infra.local.dropped_properties import respell_for_moto

    prepared = json.loads(json.dumps(template))
    prepared.pop("Rules", None)
    prepared.get("Parameters", {}).pop("BootstrapVersion", None)
    prepared.get("Conditions", {}).pop("CDKMetadataAvailable", None)
    resources = prepared["Resources"]
    for logical_id in [k for k, v in resources.items() if v["Type"] in _UNSUPPORTED_TYPES]:
        del resources[logical_id]
    return respell_for_moto(prepared)


@dataclass
class DeployedResources:
    physical_ids: dict[str, str]  # logical id -> physical id
    artifacts_bucket: str
    metadata_table: str
    state_machine_arn: str | None
    functions: dict[str, str]  # logical id -> function name


def deploy_template(
    template: dict[str, Any], *, stack_name: str = STACK_NAME, timeout: float = 60
) -> DeployedResources:
    """Create the stack on moto (whatever endpoint boto3 points at) and describe what it made.

    Then apply what moto's CloudFormation dropped (bucket versioning, PITR, function tags...:
    ``dropped_properties``). Lambda code assets are not uploaded (``VALIDATE_LAMBDA_S3=false``):
    handlers run from this checkout, found by the ``mlops:source`` tag the template declares.
    """
    import boto3

    from infra.local import event_rules, moto_templates
    from infra.local.dropped_properties import apply_dropped_properties

    os.environ["VALIDATE_LAMBDA_S3"] = "false"
    event_rules.patch_moto()  # scheduled rules match no event (moto's would match them all)
    moto_templates.patch_moto()  # a JSON template parsed by json, not pure-Python YAML
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(for_moto(template)))
    deadline = time.monotonic() + timeout
    while (status := cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]) == (
        "CREATE_IN_PROGRESS"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {stack_name} did not finish creating within {timeout:.0f} s")
        time.sleep(0.1)
    if status != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name} ended in {status}")
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
        if r.get("LogicalResourceId")
    }
    apply_dropped_properties(template, physical, stack_name)
    functions = {
        logical_id: physical[logical_id]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }

    def output_ref(output: str) -> str:
        return physical[str(template["Outputs"][output]["Value"]["Ref"])]

    state_machine_arn = None
    if "TrainingStateMachineArn" in template.get("Outputs", {}):
        wanted = output_ref("TrainingStateMachineArn")
        machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
        state_machine_arn = next(
            (m["stateMachineArn"] for m in machines if wanted in (m["name"], m["stateMachineArn"])), None
        )
    return DeployedResources(
        physical_ids=physical,
        artifacts_bucket=output_ref("ArtifactsBucketName"),
        metadata_table=output_ref("MetadataTableName"),
        state_machine_arn=state_machine_arn,
        functions=functions,
    )


def create_local_api_key(value: str | None = None) -> str:
    """An API key for predict calls (moto's CloudFormation skips AWS::ApiGateway::ApiKey);
    ``value`` keeps a key a state directory recorded."""
    import boto3

    given = {"value": value} if value else {}
    return str(
        boto3.client("apigateway").create_api_key(name="local-predict", enabled=True, **given)["value"]
    )


class EmbeddedStack:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        api_port: int = 3000,
        moto_port: int = 5055,
        state_dir: Path | None = None,
        schedule_speedup: float = 1.0,
    ) -> None:
        from infra.local.persistence import LocalState

        # With a state directory the data outlives the process (infra/local/persistence.py).
        self.state = LocalState(state_dir) if state_dir is not None else None
        self._saving = False
        self.host = host
        self.api_port = api_port
        self.moto_port = moto_port
        self.moto_url = f"http://{host}:{moto_port}"
        self.api_url = f"http://{host}:{api_port}"
        self._moto: Any = None
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self.template: dict[str, Any] = {}
        self.description: StackDescription | None = None
        self._function_configurations: dict[str, Any] = {}
        self._subscriptions: Any = None  # LogSubscriptions, once the template is known
        self._event_rules: Any = None  # EventRules, once the template is known
        #: How much faster than declared the template's schedules fire (--schedule-speedup).
        self.schedule_speedup = schedule_speedup
        self._stream_mappings: Any = None  # StreamMappings, once the stack is deployed
        self._physical_ids: dict[str, str] = {}
        # One request at a time per function, as in one Lambda execution environment: a
        # handler module's Powertools resolver keeps per-request state (the current event,
        # route arguments) that concurrent threads would mix up.
        self._environments: dict[str, threading.Lock] = {}
        self._environments_lock = threading.Lock()

    def start(self) -> StackDescription:
        ensure_port_free(self.host, self.api_port, "api")
        ensure_port_free(self.host, self.moto_port, "moto")
        try:
            self._start_moto()
            self.template = synthesize_template()
            self.description = self._deploy()
            self._start_subscriptions()
            self._start_event_rules()
            self._start_stream_mappings()
            self._start_asynchronous_invocations()
            self._serve()
            if self.state is not None:
                self.state.start_saving()
                self._saving = True
        except BaseException:
            self.stop()
            raise
        self.description.write()
        return self.description

    def _start_moto(self) -> None:
        # The Step Functions interpreter invokes Lambda through this port (moto reads MOTO_PORT).
        os.environ["MOTO_PORT"] = str(self.moto_port)
        os.environ["VALIDATE_LAMBDA_S3"] = (
            "false"  # code assets are not uploaded; handlers run from the checkout
        )
        os.environ.update(local_aws_environment(self.moto_url))
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        for name, value in LOCAL_FUNCTION_ENVIRONMENT.items():  # the caller's own value wins
            os.environ.setdefault(name, value)
        from moto.server import ThreadedMotoServer

        from infra.local import lambda_runtime

        lambda_runtime.install()
        LOGGER.info("moto server on %s", self.moto_url)
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()

    def _deploy(self) -> StackDescription:
        from infra.local.persistence import with_names

        state = self.state
        # A state directory's resources keep the names (and so the ARNs) they had.
        template = with_names(self.template, state.names) if state else self.template
        deployed = deploy_template(template)
        self._physical_ids = deployed.physical_ids
        api_key = create_local_api_key(state.api_key if state else None)
        if state is not None:
            state.restore(template, deployed.physical_ids, api_key)
        return StackDescription(
            moto_url=self.moto_url,
            api_url=self.api_url,
            api_key=api_key,
            region=REGION,
            artifacts_bucket=deployed.artifacts_bucket,
            metadata_table=deployed.metadata_table,
            state_machine_arn=deployed.state_machine_arn,
            functions=deployed.functions,
        )

    def _start_subscriptions(self) -> None:
        """Deliver the template's log subscription filters (moto never does)."""
        from infra.local.log_subscriptions import LogSubscriptions

        self._subscriptions = LogSubscriptions(self.template, self.invoke)
        self._subscriptions.start()
        for subscription in self._subscriptions.subscriptions:
            LOGGER.info(
                "log subscription %s: %s -> %s",
                subscription.name,
                subscription.source_function,
                subscription.destination_function,
            )

    def _start_event_rules(self) -> None:
        """Fire the template's schedules, and deliver its rules' Lambda and Step Functions
        targets (moto does neither)."""
        import boto3

        from infra.local import event_rules

        assert self.description is not None
        stepfunctions = boto3.client("stepfunctions")
        self._event_rules = event_rules.EventRules(
            self.template,
            self.invoke,
            lambda arn, document: stepfunctions.start_execution(stateMachineArn=arn, input=document),
            function_names=self.description.functions,
            resolve=self._arn_of,
            speedup=self.schedule_speedup,
        )
        event_rules.install(self._event_rules)
        self._event_rules.start(region=REGION, account=ACCOUNT_ID)
        for rule in self._event_rules.schedules:
            LOGGER.info(
                "schedule %s: every %.0f s (declared %.0f s)",
                rule.logical_id,
                rule.period_seconds / self.schedule_speedup,
                rule.period_seconds,
            )

    def _arn_of(self, logical_id: str) -> str | None:
        physical = self._physical_ids.get(logical_id)
        kind = self.template.get("Resources", {}).get(logical_id, {}).get("Type")
        if physical is None:
            return None
        if kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{physical}"
        return physical  # state machines, queues: Ref is the ARN or URL moto made

    def _start_stream_mappings(self) -> None:
        """Poll the template's DynamoDB-stream event source mappings (moto's would run inline)."""
        from infra.local.stream_mappings import StreamMappings

        self._stream_mappings = StreamMappings(self.template, self._physical_ids, self.invoke)
        self._stream_mappings.start()
        for mapping in self._stream_mappings.mappings:
            LOGGER.info("stream mapping %s: %s -> %s", mapping.logical_id, mapping.table, mapping.function)

    def _start_asynchronous_invocations(self) -> None:
        """``InvocationType=Event`` invocations (one function invoking another) run on a thread
        of their own through ``invoke``, after the caller got its 202, as on AWS."""
        from infra.local import lambda_runtime

        assert self.description is not None
        logical_ids = {name: logical_id for logical_id, name in self.description.functions.items()}

        def invoke_later(function_name: str, payload: Any) -> None:
            logical_id = logical_ids.get(function_name)
            if logical_id is None:
                LOGGER.error("asynchronous invocation of %s: not a function of this stack", function_name)
                return

            def run() -> None:
                try:
                    self.invoke(logical_id, payload)
                except Exception:  # Lambda would retry twice, then drop it; here it is logged
                    LOGGER.exception("asynchronous invocation of %s failed", function_name)

            threading.Thread(target=run, name=f"async-{logical_id}", daemon=True).start()

        lambda_runtime.run_asynchronous_invocations_with(invoke_later)

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Run a function's handler in this process, as Lambda would (used by the gateway)."""
        import boto3

        from infra.local.lambda_runtime import SOURCE_TAG, LocalLambdaContext, load_handler

        assert self.description is not None
        configuration = self._function_configurations.get(logical_id)
        if configuration is None:  # read once per function, not on every request
            configuration = boto3.client("lambda").get_function(
                FunctionName=self.description.functions[logical_id]
            )
            self._function_configurations[logical_id] = configuration
        config = configuration["Configuration"]
        handler = load_handler(
            configuration["Tags"][SOURCE_TAG],
            config["Handler"],
            config.get("Environment", {}).get("Variables", {}),
        )
        context = LocalLambdaContext(
            function_name=config["FunctionName"],
            invoked_function_arn=config["FunctionArn"],
            memory_limit_in_mb=config.get("MemorySize", 128),
            timeout_seconds=config.get("Timeout", 3),
        )
        with self._environments_lock:
            environment = self._environments.setdefault(logical_id, threading.Lock())
        with environment:
            if self._subscriptions is None:
                return handler(event, context)
            with self._subscriptions.running(logical_id):
                return handler(event, context)

    def _serve(self) -> None:
        from werkzeug.serving import make_server

        from infra.local.gateway import LocalGateway
        from infra.local.http import gateway_app

        assert self.description is not None
        gateway = LocalGateway.from_template(self.template, self.invoke, {self.description.api_key})
        app = gateway_app(gateway, self.api_url, self._console_pages())
        self._http = make_server(self.host, self.api_port, app, threaded=True)
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="local-gateway", daemon=True
        )
        self._http_thread.start()
        LOGGER.info("API on %s (%d routes)", self.api_url, len(gateway.routes))

    def _console_pages(self) -> Any:
        """The template's console function (tagged with its source, ``functions/console``) as
        ``/_local/console/`` calls it, or None when the template has none."""
        from infra.local.lambda_runtime import SOURCE_TAG

        console = next(
            (
                logical_id
                for logical_id, resource in self.template.get("Resources", {}).items()
                if resource.get("Type") == "AWS::Lambda::Function"
                and {"Key": SOURCE_TAG, "Value": CONSOLE_SOURCE}
                in resource.get("Properties", {}).get("Tags", [])
            ),
            None,
        )
        if console is None:
            return None
        return lambda params: self.invoke(
            console, {"local_console": {"base": "/_local/console/", "params": params}}
        )

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http = None
        if self._event_rules is not None:
            self._event_rules.stop()
            self._event_rules = None
        if self._subscriptions is not None:  # deliver what the last requests logged
            self._subscriptions.stop()
            self._subscriptions = None
        if self._stream_mappings is not None:  # count what the last requests recorded
            self._stream_mappings.stop()
            self._stream_mappings = None
        from infra.local import lambda_runtime

        lambda_runtime.run_asynchronous_invocations_with(None)
        if self.state is not None and self._saving:  # after the last request, before moto goes
            self._saving = False
            try:
                self.state.stop_saving()
            except Exception:
                LOGGER.exception("could not save the local stack's state to %s", self.state.directory)
        if self._moto is not None:
            with contextlib.suppress(Exception):
                self._moto.stop()
            self._moto = None
        with contextlib.suppress(FileNotFoundError):
            if ENDPOINT_FILE.exists() and json.loads(ENDPOINT_FILE.read_text()).get("pid") == os.getpid():
                ENDPOINT_FILE.unlink()


if __name__ == "__main__":  # python -m infra.local.stack --synthesize OUT (synthesize_template's child)
    if sys.argv[1:2] != ["--synthesize"] or len(sys.argv) != 3:
        sys.exit("usage: python -m infra.local.stack --synthesize OUT")
    _synthesize_here(Path(sys.argv[2]))
