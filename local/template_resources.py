"""Queues, table and function settings read from template.yaml, and created on an emulator.

Tests and ``make run`` build their moto resources here, from the same file
that ``sam deploy`` uses, so local runs and the deployed stack cannot drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"
QUEUE_ID = "MessagesQueue"
DLQ_ID = "DeadLetterQueue"
TABLE_ID = "MessagesTable"
FUNCTION_ID = "ConsumerFunction"
BUCKET_ID = "PayloadBucket"

# CloudFormation attributes that CreateQueue takes as they are.
_QUEUE_ATTRIBUTES = {
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)  # type: ignore[no-untyped-call]


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)
    return template


@dataclass(frozen=True)
class Deployed:
    """What a local stack has: the names and URLs the function's environment points at."""

    stack_name: str
    region: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    table_name: str
    environment: Mapping[str, str]
    batch_size: int
    visibility_timeout: int
    max_receive_count: int
    function_timeout: int
    # None when no S3 client was given: the function then runs without PAYLOAD_BUCKET.
    payload_bucket: str | None = None


class _Resolver:
    """Evaluates the intrinsic functions the template uses, for a local stack."""

    def __init__(self, template: Mapping[str, Any], stack_name: str, region: str, account: str) -> None:
        self._template = template
        self.refs: dict[str, Any] = {"AWS::StackName": stack_name, "AWS::Region": region, "AWS::AccountId": account}
        self.refs.update({"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None})
        for name, parameter in template.get("Parameters", {}).items():
            self.refs[name] = parameter.get("Default")
        self.attributes: dict[tuple[str, str], Any] = {}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self._template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            handler = getattr(self, "_" + function.replace("::", "_").lower(), None)
            if handler is not None:
                return handler(argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> Any:
        if name not in self.refs:
            raise KeyError(f"!Ref {name}: not known to the local stack")
        return self.refs[name]

    def _fn_getatt(self, argument: list[str]) -> Any:
        return self.attributes[(argument[0], argument[1])]

    def _fn_sub(self, argument: Any) -> str:
        text, extra = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return str(self.attributes[(resource, attribute)])
            return str(self._ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, text)

    def _fn_join(self, argument: list[Any]) -> str:
        return str(argument[0]).join(str(item) for item in self.resolve(argument[1]))

    def _fn_if(self, argument: list[Any]) -> Any:
        return self.resolve(argument[1] if self.condition(argument[0]) else argument[2])

    def _fn_equals(self, argument: list[Any]) -> bool:
        left, right = self.resolve(argument)
        return bool(str(left) == str(right))

    def _fn_not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _fn_and(self, argument: list[Any]) -> bool:
        return all(self.resolve(argument))

    def _fn_or(self, argument: list[Any]) -> bool:
        return any(self.resolve(argument))

    def _condition(self, name: str) -> bool:
        return self.condition(name)


def deploy_local(
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    *,
    stack_name: str = "local",
    region: str = "us-east-1",
    account: str = "123456789012",
    template: Mapping[str, Any] | None = None,
    s3: S3Client | None = None,
) -> Deployed:
    """Create the template's DLQ, queue and table on the emulator behind these clients, and its payload
    bucket if ``s3`` is given (without it, PAYLOAD_BUCKET is left out of the function's environment)."""
    template = load_template() if template is None else template
    resources = template["Resources"]
    resolver = _Resolver(template, stack_name, region, account)

    dlq_url, dlq_arn = _create_queue(sqs, resolver, DLQ_ID, resources[DLQ_ID]["Properties"])
    queue_url, queue_arn = _create_queue(sqs, resolver, QUEUE_ID, resources[QUEUE_ID]["Properties"])
    table_name = _create_table(dynamodb, resolver, resources[TABLE_ID]["Properties"])
    bucket = None
    if BUCKET_ID in resources:
        resolver.refs[BUCKET_ID] = None
        if s3 is not None:
            bucket = _create_bucket(s3, resolver, f"{stack_name.lower()}-payloads", resources[BUCKET_ID]["Properties"])

    # Only what a local run needs is resolved: roles, alarms and the like have no local twin.
    function = resources[FUNCTION_ID]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    environment = {
        **resolver.resolve(globals_.get("Environment", {}).get("Variables", {})),
        **resolver.resolve(function.get("Environment", {}).get("Variables", {})),
    }
    sqs_event = resolver.resolve(next(event for event in function["Events"].values() if event["Type"] == "SQS"))
    queue = resolver.resolve(resources[QUEUE_ID]["Properties"])
    timeout = resolver.resolve(function.get("Timeout", globals_.get("Timeout", 3)))
    return Deployed(
        stack_name=stack_name,
        region=region,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        table_name=table_name,
        environment={name: str(value) for name, value in environment.items() if value is not None},
        batch_size=int(sqs_event["Properties"].get("BatchSize", 10)),
        visibility_timeout=int(queue.get("VisibilityTimeout", 30)),
        max_receive_count=int(queue["RedrivePolicy"]["maxReceiveCount"]),
        function_timeout=int(timeout),
        payload_bucket=bucket,
    )


@dataclass(frozen=True)
class FunctionSettings:
    """The function and its SQS event source as template.yaml declares them, for an emulator's Lambda."""

    name: str
    handler: str
    runtime: str
    architectures: tuple[str, ...]
    memory_size: int
    timeout: int
    environment: Mapping[str, str]
    log_group: str | None
    log_format: str | None
    reserved_concurrency: int | None
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None


def function_settings(deployed: Deployed, template: Mapping[str, Any] | None = None) -> FunctionSettings:
    """The template's function settings, resolved against the resources ``deploy_local`` created.

    ``Globals`` apply where the function does not say otherwise, as in SAM. The function's
    name is the one SAM would not choose (SAM adds a random suffix): ``<stack>-consumer``.
    """
    template = load_template() if template is None else template
    resources = template["Resources"]
    account = deployed.queue_arn.split(":")[4]
    resolver = _Resolver(template, deployed.stack_name, deployed.region, account)
    resolver.refs.update({QUEUE_ID: deployed.queue_url, DLQ_ID: deployed.dlq_url, TABLE_ID: deployed.table_name})
    resolver.attributes[(QUEUE_ID, "Arn")] = deployed.queue_arn
    resolver.attributes[(DLQ_ID, "Arn")] = deployed.dlq_arn
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Logs::LogGroup":
            resolver.refs[logical_id] = resolver.resolve(resource["Properties"]["LogGroupName"])
    globals_ = template.get("Globals", {}).get("Function", {})
    function = {**globals_, **resources[FUNCTION_ID]["Properties"]}
    # Only what an emulator's Lambda takes: the role, for one, has no local twin.
    wanted = ("FunctionName", "Handler", "Runtime", "Architectures", "MemorySize", "Timeout", "LoggingConfig")
    properties = {name: resolver.resolve(function[name]) for name in wanted if name in function}
    properties["ReservedConcurrentExecutions"] = resolver.resolve(function.get("ReservedConcurrentExecutions"))
    sqs_event = resolver.resolve(next(event for event in function["Events"].values() if event["Type"] == "SQS"))
    source = sqs_event["Properties"]
    logging_config = properties.get("LoggingConfig") or {}
    reserved = properties.get("ReservedConcurrentExecutions")
    maximum = (source.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return FunctionSettings(
        name=str(properties.get("FunctionName") or f"{deployed.stack_name}-consumer"),
        handler=str(properties["Handler"]),
        runtime=str(properties["Runtime"]),
        architectures=tuple(properties.get("Architectures") or ("x86_64",)),
        memory_size=int(properties.get("MemorySize", 128)),
        timeout=int(properties.get("Timeout", 3)),
        environment=deployed.environment,
        log_group=logging_config.get("LogGroup"),
        log_format=logging_config.get("LogFormat"),
        reserved_concurrency=None if reserved is None else int(reserved),
        batch_size=int(source.get("BatchSize", 10)),
        function_response_types=tuple(source.get("FunctionResponseTypes", ())),
        maximum_concurrency=None if maximum is None else int(maximum),
    )


def _create_queue(sqs: SQSClient, resolver: _Resolver, logical_id: str, raw: Mapping[str, Any]) -> tuple[str, str]:
    properties = resolver.resolve(dict(raw))
    attributes = {name: _attribute_text(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
    if "RedrivePolicy" in properties:
        attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
    url = sqs.create_queue(QueueName=properties["QueueName"], Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resolver.refs[logical_id] = url
    resolver.attributes[(logical_id, "Arn")] = arn
    resolver.attributes[(logical_id, "QueueName")] = properties["QueueName"]
    resolver.attributes[(logical_id, "QueueUrl")] = url
    return url, arn


def _create_table(dynamodb: DynamoDBClient, resolver: _Resolver, raw: Mapping[str, Any]) -> str:
    properties = resolver.resolve(dict(raw))
    name = str(properties["TableName"])
    dynamodb.create_table(
        TableName=name,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
    )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    resolver.refs[TABLE_ID] = name
    resolver.attributes[(TABLE_ID, "Arn")] = (
        f"arn:aws:dynamodb:{resolver.refs['AWS::Region']}:{resolver.refs['AWS::AccountId']}:table/{name}"
    )
    return name


def _create_bucket(s3: S3Client, resolver: _Resolver, name: str, raw: Mapping[str, Any]) -> str:
    """The bucket with the settings that change what S3 answers (versioning); CloudFormation names it in AWS."""
    properties = resolver.resolve(dict(raw))
    region = resolver.refs["AWS::Region"]
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"])
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    resolver.refs[BUCKET_ID] = name
    resolver.attributes[(BUCKET_ID, "Arn")] = f"arn:aws:s3:::{name}"
    return name


def _attribute_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value}"
