"""Training past one function: what a SageMaker training job needs to train a candidate.

The job runs the scikit-learn framework container (its image looked up per region from
``SKLEARN_IMAGE_ACCOUNTS``, a CloudFormation mapping: the account that publishes the image
differs by region), with the project's training code uploaded as an S3 asset
(``sourcedir.tar.gz``: infra/sagemaker/launcher.py, the layers' pins as ``pins.txt``, ``mlops_core``), and
an execution role that reads datasets and writes the run's files, nothing else.
``task`` makes the ``createTrainingJob.sync`` state the workflow's Map runs for a candidate
whose ``compute`` is ``sagemaker``; docs/training.md says when that is and what it costs.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    Aws,
    CfnMapping,
    Duration,
    Fn,
    Size,
    Validations,
    aws_ec2,
    aws_iam,
    aws_s3_assets,
)
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.storage import keys

#: The account publishing ``sagemaker-scikit-learn`` in each region, as the SageMaker Python
#: SDK lists it (src/sagemaker/image_uri_config/sklearn.json, "training"). A region missing
#: here fails the deployment at Fn::FindInMap, naming the region.
SKLEARN_IMAGE_ACCOUNTS = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ca-central-1": "341280168497",
    "eu-central-1": "492215442770",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}
SKLEARN_IMAGE_REPOSITORY = "sagemaker-scikit-learn"
#: The framework version: only its SageMaker plumbing is used (the launcher installs the pins).
SKLEARN_IMAGE_TAG = "1.2-1-cpu-py3"
#: What one job runs on (docs/training.md compares its price with the Lambda trainer's).
INSTANCE_TYPE = "m5.large"
VOLUME_GIB = 30
MAX_RUNTIME = Duration.hours(1)
#: The Python the launcher installs the pins into: the Lambda runtime's.
JOB_PYTHON = "3.12"
UV_VERSION = "0.13.8"
LAUNCHER = "launcher.py"


def _requirements(repo_root: Path) -> str:
    """The layers' pins (core, then science) and the SDK the Lambda runtime provides."""
    lines = ["# Built by infra/cdk/constructs/sagemaker_training.py from layers/*/requirements.txt."]
    for layer in ("core", "science"):
        lines += (repo_root / "layers" / layer / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pyproject = (repo_root / "pyproject.toml").read_text(encoding="utf-8")
    boto3 = next(p.strip().strip('",') for p in pyproject.splitlines() if p.strip().startswith('"boto3=='))
    return "\n".join([*lines, boto3, ""])


def build_source_tarball(repo_root: Path, out_dir: Path) -> Path:
    """``sourcedir.tar.gz`` as the framework container downloads it: byte-identical for the
    same sources (sorted entries, no timestamps or owners), so the asset only changes with them."""
    files: dict[str, bytes] = {
        LAUNCHER: (repo_root / "infra" / "sagemaker" / LAUNCHER).read_bytes(),
        "launcher.json": json.dumps({"python": JOB_PYTHON, "uv": UV_VERSION}).encode(),
        # Not requirements.txt: the container would pip-install it into its own Python.
        "pins.txt": _requirements(repo_root).encode(),
    }
    package = repo_root / "layers" / "core" / "mlops_core"
    for path in sorted(package.rglob("*.py")):
        files[str(Path("mlops_core") / path.relative_to(package))] = path.read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            archive.addfile(info, io.BytesIO(files[name]))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "sourcedir.tar.gz"
    target.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return target


class _Prefix(tasks.S3Location):
    """The job's output location, without the grant ``S3Location.from_bucket`` adds (write,
    delete and abort on the bucket): the role's ``runs/`` write already covers it."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri

    # jsii calls an override with the options as one positional struct, not as keywords.
    def bind(self, _task: Any, _options: Any = None) -> tasks.S3LocationConfig:  # type: ignore[override]
        return tasks.S3LocationConfig(uri=self.uri)


class SageMakerTraining(Construct):
    """The job's image, code and role; ``task`` adds a ``createTrainingJob.sync`` state."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        repo_root: Path,
        code_version: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.storage = storage
        self.code_version = code_version
        mapping = CfnMapping(
            self,
            "SklearnImageAccounts",
            mapping={region: {"account": account} for region, account in SKLEARN_IMAGE_ACCOUNTS.items()},
        )
        image_account = mapping.find_in_map(Aws.REGION, "account")
        self.image_uri = Fn.join(
            "",
            [
                image_account,
                f".dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{SKLEARN_IMAGE_REPOSITORY}:{SKLEARN_IMAGE_TAG}",
            ],
        )
        tarball = build_source_tarball(repo_root, repo_root / ".cache" / "sagemaker")
        self.code = aws_s3_assets.Asset(self, "TrainingCode", path=str(tarball))

        self.role = aws_iam.Role(
            self,
            "JobRole",
            assumed_by=aws_iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training jobs of the training workflow: read datasets and the "
            "staged candidate, write the candidate's model, signature and result.",
        )
        storage.grant_prefix_read(self.role, "datasets/")
        storage.grant_prefix_read(self.role, keys.RUNS_PREFIX)
        storage.grant_prefix_write(self.role, keys.RUNS_PREFIX)
        # The code asset only (Asset.grant_read would open the whole CDK assets bucket).
        self.role.add_to_policy(
            aws_iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{self.code.s3_bucket_name}/{self.code.s3_object_key}"],
            )
        )
        jobs_log_group = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/TrainingJobs"
        )
        self.role.add_to_policy(
            aws_iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"], resources=[jobs_log_group]
            )
        )
        self.role.add_to_policy(
            aws_iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{jobs_log_group}:log-stream:*"],
            )
        )
        self.role.add_to_policy(
            aws_iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[
                    Fn.join(
                        "",
                        [
                            f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:",
                            image_account,
                            f":repository/{SKLEARN_IMAGE_REPOSITORY}",
                        ],
                    )
                ],
            )
        )
        # GetAuthorizationToken has no resource-level permissions.
        self.role.add_to_policy(
            aws_iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken (pulling the framework image) supports no resource-level "
                "permissions; the image pull itself is limited to the sagemaker-scikit-learn repository.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                "log-group:/aws/sagemaker/TrainingJobs:log-stream:*]",
                reason="Each training job writes its own log stream (named after the job, known at run "
                "time) in SageMaker's training-job log group, and nowhere else.",
            ),
        )

    def task(self, scope: Construct, name: str) -> tasks.SageMakerCreateTrainingJob:
        """A ``createTrainingJob.sync`` state for the Map item at ``$`` (a Candidate): the job
        trains it; the state's answer (name, billable seconds, instance) lands in ``$.training_job``."""
        bucket = self.storage.artifacts_bucket
        return tasks.SageMakerCreateTrainingJob(
            scope,
            name,
            comment="Train the candidate in a SageMaker training job (the same fitting code).",
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.format("mlops-{}", sfn.JsonPath.uuid()),
            role=self.role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(self.image_uri),
                training_input_mode=tasks.InputMode.FILE,
            ),
            hyperparameters={
                "sagemaker_program": LAUNCHER,
                "sagemaker_submit_directory": self.code.s3_object_url,
                "run_id": sfn.JsonPath.string_at("$.run_id"),
                "candidate_id": sfn.JsonPath.string_at("$.candidate_id"),
            },
            environment={
                "ARTIFACTS_BUCKET": bucket.bucket_name,
                "AWS_DEFAULT_REGION": Aws.REGION,
                "CODE_VERSION": self.code_version,
            },
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=_Prefix(f"s3://{bucket.bucket_name}/{keys.TRAINING_JOB_OUTPUT_PREFIX}")
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=1,
                instance_type=aws_ec2.InstanceType(INSTANCE_TYPE),
                volume_size=Size.gibibytes(VOLUME_GIB),
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=MAX_RUNTIME),
            result_selector={
                "TrainingJobName.$": "$.TrainingJobName",
                "BillableTimeInSeconds.$": "$.BillableTimeInSeconds",
                "ResourceConfig.$": "$.ResourceConfig",
            },
            result_path="$.training_job",
        )
