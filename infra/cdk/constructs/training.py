"""The training workflow: one Lambda per step and the Step Functions state machine.

    ValidateData → Search? no  → TrainCandidates (Map, bounded concurrency) → SelectBest → Evaluate
                           yes → SearchRound → Searched? no  → TrainTrials (Map) → SearchRound …
                                                        yes → Evaluate (the study's best trial)
    Evaluate → Gate: passed → RegisterModel → Succeeded
                     failed → ModelRejected (a named failure; the run record says why)
    any step failing → MarkFailed (records the error, emits TrainingRunFailed) → TrainingFailed

A run naming feature views starts at the TrainingData choice: BuildTrainingSet joins its
labels with the views' sources point-in-time into its dataset, then ValidateData as any run.

Steps pass small JSON (S3 keys, ids), never data. Every task retries transient Lambda
errors and the project's own ``Unavailable`` (throttling); every task's failure is
caught and recorded. Paths in the definition are flat fields (no ``$.xs[0].field``)
so that the same definition runs on moto's interpreter locally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    Stack,
    Validations,
    aws_events,
    aws_logs,
)
from aws_cdk import (
    aws_stepfunctions as sfn,
)
from aws_cdk import (
    aws_stepfunctions_tasks as tasks,
)
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, acknowledge_step_invocations
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.sagemaker_training import SageMakerTraining
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.storage import keys
from mlops_core.training.search import MAX_PARALLELISM

#: Parallel TrainCandidate invocations per execution.
MAX_CONCURRENCY = 4
#: Errors worth another attempt: our adapters raise Unavailable on throttling/timeouts.
TRANSIENT_ERRORS = ["Unavailable"]
#: Datasets larger than this train in SageMaker training jobs (unless the request says
#: otherwise): TrainCandidate's 3,008 MB hold a CSV about a sixth of their size once parsed,
#: split and fitted (docs/training.md).
SAGEMAKER_THRESHOLD_BYTES = 500_000_000


class TrainingConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        event_bus: aws_events.IEventBus,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
        code_version: str,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "METADATA_TABLE": storage.metadata_table.table_name,
            "EVENT_BUS_NAME": event_bus.event_bus_name,
            "CODE_VERSION": code_version,
        }

        def step(
            construct_id: str,
            module: str,
            description: str,
            *,
            science: bool = False,
            serving: bool = False,
            memory: int = 512,
            minutes: int = 1,
        ) -> ServiceFunction:
            extra = [layers.science] if science else [layers.serving] if serving else []
            return ServiceFunction(
                self,
                construct_id,
                service_name=f"training-{module.replace('_', '-')}",
                description=description,
                code_dir=functions_dir / "training",
                handler=f"{module}.lambda_handler",
                layers=[layers.core, *extra],
                memory_size=memory,
                timeout=Duration.minutes(minutes),
                environment=environment,
                log_retention=log_retention,
            )

        self.build_training_set = step(
            "BuildTrainingSet",
            "build_training_set",
            "Joins a run's labels with its feature views point-in-time into its dataset.",
            memory=2048,
            minutes=15,
        )
        self.validate_data = step(
            "ValidateData",
            "validate_data",
            "Checks a training request and its dataset; writes the reference profile.",
            memory=1024,
            minutes=5,
        )
        self.train_candidate = step(
            "TrainCandidate",
            "train_candidate",
            "Trains one candidate and exports it to ONNX.",
            science=True,
            memory=3008,
            minutes=15,
        )
        self.select_best = step(
            "SelectBest", "select_best", "Picks the candidate with the best validation score."
        )
        self.evaluate = step(
            "Evaluate",
            "evaluate",
            "Scores the winner and the champion on the holdout; applies the gate.",
            serving=True,
            memory=2048,
            minutes=5,
        )
        self.register_model = step(
            "RegisterModel",
            "register_model",
            "Registers the winner with lineage to its run.",
            serving=True,
            memory=1024,
            minutes=2,
        )
        self.mark_failed = step("MarkFailed", "mark_failed", "Records why a training run failed.")
        # Optuna's ask-and-tell between rounds (optuna is in the science layer).
        self.search_round = step(
            "SearchRound",
            "search_round",
            "Tells a search round's results to the Optuna study, asks the next round's trials.",
            science=True,
            memory=1024,
            minutes=2,
        )

        # After a SageMaker training job: its result, checked and recorded like TrainCandidate's.
        self.collect_training_job = step(
            "CollectTrainingJob",
            "collect_training_job",
            "Reads a SageMaker training job's candidate result, checks it, records it on the run.",
        )
        self.sagemaker = SageMakerTraining(
            self,
            "SageMakerTraining",
            storage=storage,
            repo_root=functions_dir.parent,
            code_version=code_version,
        )

        # What each step may touch: its own inputs and outputs, nothing else.
        datasets, runs, models = "datasets/", "runs/", "models/"
        storage.grant_prefix_read(self.validate_data.role, datasets)
        storage.grant_prefix_list(self.validate_data.role, datasets)
        storage.grant_prefix_write(self.validate_data.role, runs)
        storage.grant_prefix_read(self.train_candidate.role, datasets)
        storage.grant_prefix_write(self.train_candidate.role, runs)
        # A search trial under a pruner reads its study (runs/{run}/search/study.json), never lists.
        storage.grant_prefix_get(self.train_candidate.role, keys.SEARCH_STUDIES_PATTERN)
        for prefix in (datasets, runs, models):
            storage.grant_prefix_read(self.evaluate.role, prefix)
        # Evaluate adds the output distribution and the metric baseline to the run's profile.
        storage.grant_prefix_write(self.evaluate.role, runs)
        # Labels (under datasets/) and the views' offline sources in; the training set out, under
        # datasets/training-sets/ only (never over a caller's dataset): keys.TRAINING_SETS_PREFIX.
        for prefix in (datasets, "feature-sources/"):
            storage.grant_prefix_read(self.build_training_set.role, prefix)
            storage.grant_prefix_list(self.build_training_set.role, prefix)
        storage.grant_prefix_write(self.build_training_set.role, "datasets/training-sets/")
        storage.grant_prefix_read(self.register_model.role, runs)
        storage.grant_prefix_read(self.collect_training_job.role, runs)
        # The study between rounds: runs/{run}/search/study.json.
        storage.grant_prefix_read(self.search_round.role, runs)
        storage.grant_prefix_list(self.search_round.role, runs)
        storage.grant_prefix_write(self.search_round.role, runs)
        storage.grant_prefix_write(self.register_model.role, models)
        # Content-addressed files are written once (If-None-Match); an existing one is read back
        # for its version id (HeadObject needs GetObject).
        storage.grant_prefix_read(self.register_model.role, models)
        for function in (
            self.build_training_set,
            self.validate_data,
            self.train_candidate,
            self.select_best,
            self.evaluate,
            self.register_model,
            self.mark_failed,
            self.search_round,
            self.collect_training_job,
        ):
            storage.grant_metadata_read_write(function.role)
        event_bus.grant_put_events_to(self.mark_failed.role)
        event_bus.grant_put_events_to(self.register_model.role)

        self.validate_data.function.add_environment(
            "SAGEMAKER_THRESHOLD_BYTES", str(SAGEMAKER_THRESHOLD_BYTES)
        )
        self.state_machine = self._state_machine(log_retention)

        # The API that starts runs and reads them (routes are added by the API construct).
        self.api = ServiceFunction(
            self,
            "Api",
            service_name="training-api",
            description="Starts training runs (POST /training) and reads them (GET /runs/{id}).",
            code_dir=functions_dir / "training",
            handler="api.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(15),
            environment={**environment, "STATE_MACHINE_ARN": self.state_machine.state_machine_arn},
            log_retention=log_retention,
        )
        self.state_machine.grant_start_execution(self.api.role)
        self.state_machine.grant_read(self.api.role)
        machine_id = Stack.of(self).get_logical_id(cast(CfnResource, self.state_machine.node.default_child))
        # How cdk-nag renders the machine's name, taken apart from its ARN by CDK.
        machine_name = json.dumps(
            {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": machine_id}]}]}, separators=(",", ":")
        )
        Validations.of(self.api.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                f"execution:{machine_name}:*]",
                reason="Reading a run means describing its execution and history; execution ARNs "
                "are only known at run time, so the grant covers this state machine's executions only.",
            )
        )
        # It starts executions and reads runs: the run records are written by the steps.
        storage.grant_metadata_read(self.api.role, index=True)
        # POST /training checks the request against the dataset's schema (read, never
        # written); listing makes a missing schema a 404 to it (a 422 to the caller), not a 403.
        storage.grant_prefix_read(self.api.role, datasets)
        storage.grant_prefix_list(self.api.role, datasets)

    def _invoke(self, name: str, function: ServiceFunction, comment: str) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self.workflow,
            name,
            lambda_function=function.function,
            output_path="$.Payload",
            comment=comment,
            retry_on_service_exceptions=True,
        )
        task.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2)
        return task

    def _trainer(
        self, what: str, on_lambda: tasks.LambdaInvoke, *, failed: sfn.IChainable | None = None
    ) -> sfn.Choice:
        """A Map item's trainer: ``on_lambda``, or a SageMaker training job and
        CollectTrainingJob when the item's ``compute`` is ``sagemaker`` (ValidateData decides)."""
        job = self.sagemaker.task(self.workflow, f"Train{what}OnSageMaker")
        job.add_retry(
            errors=["SageMaker.AmazonSageMakerException"],
            interval=Duration.seconds(10),
            max_attempts=3,
            backoff_rate=2,
        )
        collect = self._invoke(
            f"Collect{what}Job", self.collect_training_job, "Check and record the job's result."
        )
        if failed is not None:
            for state in (on_lambda, job, collect):
                state.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        return (
            sfn.Choice(
                self.workflow,
                f"{what}Compute",
                comment="Lambda or a SageMaker training job (ValidateData chose).",
            )
            .when(sfn.Condition.string_equals("$.compute", "sagemaker"), job.next(collect))
            .otherwise(on_lambda)
        )

    def _state_machine(self, log_retention: aws_logs.RetentionDays) -> sfn.StateMachine:
        # States live in their own scope: their ids are the state names, which repeat the
        # step functions' names.
        self.workflow = Construct(self, "Workflow")
        scope = self.workflow
        failed = sfn.Fail(
            scope,
            "TrainingFailed",
            comment="A step failed; the run record holds the error.",
            error_path="$.error",
            cause_path="$.cause",
        )
        mark_failed = self._invoke("MarkFailed", self.mark_failed, "Record the failure on the run.").next(
            failed
        )

        def caught(state: sfn.TaskStateBase | sfn.Map) -> sfn.TaskStateBase | sfn.Map:
            state.add_catch(mark_failed, errors=["States.ALL"], result_path="$.error")
            return state

        validate = caught(
            self._invoke("ValidateData", self.validate_data, "Schema, expectations, candidates.")
        )
        train = self._trainer(
            "Candidate",
            self._invoke("TrainCandidate", self.train_candidate, "Fit, export to ONNX, validate."),
        )
        candidates = caught(
            sfn.Map(
                scope,
                "TrainCandidates",
                comment="One TrainCandidate per candidate, in parallel.",
                items_path="$.candidates",
                max_concurrency=MAX_CONCURRENCY,
                result_path="$.results",
            ).item_processor(train)
        )
        select = caught(self._invoke("SelectBest", self.select_best, "Best validation score."))
        evaluate = caught(self._invoke("Evaluate", self.evaluate, "Holdout vs champion; the gate."))
        register = caught(self._invoke("RegisterModel", self.register_model, "Register with lineage."))
        rejected = sfn.Fail(
            scope,
            "ModelRejected",
            error="ModelRejected",
            cause="The candidate did not pass the gate; the run record's evaluation says why.",
        )
        gate = (
            sfn.Choice(scope, "Gate", comment="Threshold and champion comparison, decided by Evaluate.")
            .when(
                sfn.Condition.boolean_equals("$.evaluation.passed", True),
                register.next(sfn.Succeed(scope, "Registered")),
            )
            .otherwise(rejected)
        )
        candidates.next(select).next(evaluate).next(gate)

        # Optuna's search: SearchRound asks a round's trials, TrainTrials trains them with
        # the same TrainCandidate function, SearchRound tells the results and asks again
        # until the budget is spent; then the best trial goes to Evaluate.
        search_round = caught(
            self._invoke("SearchRound", self.search_round, "Tell the last round, ask the next (Optuna).")
        )
        # A trial that fails is told as failed; the search goes on without it.
        trial_failed = sfn.Pass(
            scope, "TrialFailed", comment="Keep the trial with its error for SearchRound."
        )
        train_trial = self._trainer(
            "Trial",
            self._invoke("TrainTrial", self.train_candidate, "Fit one trial, export, validate."),
            failed=trial_failed,
        )
        trials = caught(
            sfn.Map(
                scope,
                "TrainTrials",
                comment="One TrainCandidate per trial of the round, in parallel.",
                items_path="$.candidates",
                max_concurrency=MAX_PARALLELISM,
                result_path="$.results",
            ).item_processor(train_trial)
        )
        searched = (
            sfn.Choice(
                scope, "Searched", comment="SearchRound returns the best trial once the budget is spent."
            )
            .when(sfn.Condition.is_present("$.best"), evaluate)
            .otherwise(trials)
        )
        search_round.next(searched)
        trials.next(search_round)
        definition = validate.next(
            sfn.Choice(scope, "Search", comment="Optuna's search, or the request's candidates.")
            .when(sfn.Condition.is_present("$.search"), search_round)
            .otherwise(candidates)
        )

        log_group = aws_logs.LogGroup(self, "StateMachineLogs", retention=log_retention)

        # Runs naming feature views get their dataset first (point-in-time), then go on as any run.
        build = caught(
            self._invoke("BuildTrainingSet", self.build_training_set, "Labels joined with feature views.")
        )
        start = (
            sfn.Choice(
                scope, "TrainingData", comment="Feature views named: build the dataset from them first."
            )
            .when(sfn.Condition.is_present("$.feature_views"), build.next(validate))
            .otherwise(validate)
        )
        del definition  # reached from the choice
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(2),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Validate data, train candidates in parallel, evaluate against the champion, "
            "register above the gate.",
        )
        Validations.of(machine.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*), log "
                "delivery (logs:CreateLogDelivery and related) and sagemaker:ListTags (the .sync "
                "training-job integration) support no resource-level permissions.",
            )
        )
        Validations.of(machine.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
                "<AWS::AccountId>:training-job/*]",
                reason="Training jobs are named at run time (mlops-<uuid>, one per SageMaker candidate); "
                "the grant covers creating, describing, tagging and stopping training jobs only.",
            )
        )
        acknowledge_step_invocations(machine.role, self.functions)
        return machine

    @property
    def functions(self) -> list[ServiceFunction]:
        return [
            self.build_training_set,
            self.validate_data,
            self.train_candidate,
            self.select_best,
            self.evaluate,
            self.register_model,
            self.mark_failed,
            self.search_round,
            self.collect_training_job,
        ]
