"""template.yaml and samconfig.toml: the settings the consumer's guarantees rest on in AWS.

A FIFO batch over 10, a visibility timeout shorter than the function may run, a missing
ReportBatchItemFailures or a standard-queue DLQ break ordering or lose messages without any
error at deploy time, so each is asserted here on the parsed template.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer import telemetry
from consumer.config import Config
from consumer.time_budget import MIN_FUNCTION_TIMEOUT_SECONDS
from local.template_resources import (
    BUCKET_ID,
    DLQ_ID,
    FUNCTION_ID,
    QUEUE_ID,
    TABLE_ID,
    Deployed,
    deploy_local,
    load_template,
)

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
PRODUCER_BUCKET_PARAMETER = "ProducerPayloadBucket"
# What consumer.config and Powertools read; REGION is left out on purpose (see its own test).
CONSUMER_VARIABLES = {
    "DYNAMO_TABLE",
    "DLQ_URL",
    "IDEMPOTENCY_KEY_JMESPATH",
    "MAX_CONCURRENCY",
    "RECORD_TTL_DAYS",
    "LOG_MESSAGE_BODY",
    "PAYLOAD_BUCKET",
    "POINTER_BUCKETS",
    "MAX_PAYLOAD_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
ALARMED_METRICS = {
    "DynamoDBSaveError",
    "DynamoDBCheckError",
    "SQSDeleteError",
    "InvalidMessages",
    "ConflictingDuplicates",
    "FunctionTimeoutTooShort",
    "S3PayloadError",
}
# The calls the consumer and the event source mapping make, by the resource they act on.
EXPECTED_GRANTS = {
    "logs:CreateLogStream": {"ConsumerLogGroup"},
    "logs:PutLogEvents": {"ConsumerLogGroup"},
    "dynamodb:PutItem": {TABLE_ID},
    "dynamodb:DescribeTable": {TABLE_ID},
    "sqs:ReceiveMessage": {QUEUE_ID},
    "sqs:DeleteMessage": {QUEUE_ID},
    "sqs:GetQueueUrl": {QUEUE_ID, DLQ_ID},
    "sqs:GetQueueAttributes": {QUEUE_ID},
    "sqs:ChangeMessageVisibility": {QUEUE_ID},
    "sqs:SendMessage": {DLQ_ID},
    # Bodies over DynamoDB's item limit: written once, never read back or deleted by the function.
    "s3:PutObject": {BUCKET_ID},
    # Only with ProducerPayloadBucket set: Extended Client payloads, and telling a missing one from a refusal.
    "s3:GetObject": {PRODUCER_BUCKET_PARAMETER},
    "s3:ListBucket": {PRODUCER_BUCKET_PARAMETER},
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def _properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def _environment(template: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = _properties(template, FUNCTION_ID)["Environment"]["Variables"]
    return variables


def _sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    events = _properties(template, FUNCTION_ID)["Events"].values()
    [event] = [event for event in events if event["Type"] == "SQS"]
    properties: dict[str, Any] = event["Properties"]
    return properties


def _with_defaults(template: dict[str, Any], **defaults: object) -> dict[str, Any]:
    changed = copy.deepcopy(template)
    for name, value in defaults.items():
        changed["Parameters"][name]["Default"] = value
    return changed


def _deploy(template: dict[str, Any], *, with_bucket: bool = False) -> Deployed:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION) if with_bucket else None
        return deploy_local(sqs, dynamodb, stack_name="template-test", region=REGION, template=template, s3=s3)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements, with each branch of a conditional one (``!If``) counted as a statement of its own."""
    statements = document["Statement"]
    listed: list[dict[str, Any]] = []
    for statement in statements if isinstance(statements, list) else [statements]:
        if "Fn::If" in statement:
            listed.extend(branch for branch in statement["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"})
        else:
            listed.append(statement)
    return listed


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every permission statement: IAM roles and policies, SAM function policies, queue policies."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                for statement in _statements(policy["PolicyDocument"]):
                    yield name, statement
        elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy"}:
            for statement in _statements(properties["PolicyDocument"]):
                yield name, statement
        elif kind == "AWS::Serverless::Function":
            for policy in _as_list(properties.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    for statement in _statements(policy):
                        yield name, statement


def _resource_logical_id(reference: Any) -> str:
    """The logical id behind !GetAtt X.Arn, !Ref X or a !Sub naming one resource or parameter (an ARN built
    from it, e.g. the objects of a bucket): the only ways the template names a resource."""
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return str(reference["Fn::GetAtt"][0])
    if isinstance(reference, dict) and "Ref" in reference:
        return str(reference["Ref"])
    if isinstance(reference, dict) and isinstance(reference.get("Fn::Sub"), str):
        named = {name.split(".")[0] for name in re.findall(r"\$\{([^}]+)\}", reference["Fn::Sub"])}
        [logical_id] = named - {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
        return str(logical_id)
    raise AssertionError(f"resource {reference!r} is not a reference to a resource of this template")


# --- The function and its configuration --------------------------------------------------------


def test_the_function_sets_every_variable_the_consumer_reads(template: dict[str, Any]) -> None:
    # Given the function's environment in the template
    variables = _environment(template)

    # Then each variable the consumer reads is set there, none left to a default by accident
    assert set(variables) >= CONSUMER_VARIABLES, sorted(CONSUMER_VARIABLES - set(variables))
    # And the table and DLQ point at this stack's resources, not at names typed in by hand
    assert variables["DYNAMO_TABLE"] == {"Ref": TABLE_ID}
    assert variables["DLQ_URL"] == {"Ref": DLQ_ID}


def test_region_is_not_set_because_lambda_sets_aws_region(template: dict[str, Any]) -> None:
    # Given the function's environment, without REGION
    variables = _environment(template)
    assert "REGION" not in variables

    # When the consumer reads its configuration in Lambda, which always sets AWS_REGION
    config = Config.from_env({"AWS_REGION": "eu-central-1"})

    # Then the region is the function's own
    assert config.region == "eu-central-1"


def test_the_deployed_environment_is_a_valid_consumer_configuration(template: dict[str, Any]) -> None:
    # Given the template's defaults, resolved as a stack would resolve them
    deployed = _deploy(template)

    # When the consumer reads that environment
    config = Config.from_env({**deployed.environment, "AWS_REGION": REGION})

    # Then it names the stack's table and DLQ, with the documented defaults
    assert config.table_name == deployed.table_name
    assert config.dlq_url == deployed.dlq_url
    assert config.idempotency_key_path == "message_id"
    assert config.max_concurrency == 10
    assert config.log_message_body is False
    # And an empty RecordTtlDays leaves RECORD_TTL_DAYS unset, so items never expire
    assert "RECORD_TTL_DAYS" not in deployed.environment
    assert config.record_ttl_days is None


def test_a_record_ttl_parameter_reaches_the_consumer_as_whole_days(template: dict[str, Any]) -> None:
    # Given RecordTtlDays set to 30
    deployed = _deploy(_with_defaults(template, RecordTtlDays="30"))

    # When the consumer reads the environment
    config = Config.from_env({**deployed.environment, "AWS_REGION": REGION})

    # Then items get a 30-day expiry
    assert deployed.environment["RECORD_TTL_DAYS"] == "30"
    assert config.record_ttl_days == 30
    # And the parameter refuses what the consumer would refuse
    pattern = template["Parameters"]["RecordTtlDays"]["AllowedPattern"]
    assert [
        value
        for value in ("", "1", "999", "9999", "29999", "35999", "36000", "36499", "36500")
        if not re.fullmatch(pattern, value)
    ] == []
    assert [value for value in ("0", "-1", "7.5", "x", "36501", "40000", "99999") if re.fullmatch(pattern, value)] == []


def test_the_handler_path_names_a_function_in_the_code_uri(template: dict[str, Any]) -> None:
    # Given the function's CodeUri and Handler
    properties = _properties(template, FUNCTION_ID)
    module, function = properties["Handler"].rsplit(".", 1)
    source = ROOT / properties["CodeUri"] / f"{module.replace('.', '/')}.py"

    # Then that file exists and defines the handler at top level
    assert source.is_file(), source
    tree = ast.parse(source.read_text(encoding="utf-8"))
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_function_runs_python_3_13_on_arm64_with_json_logs_kept_for_a_limited_time(
    template: dict[str, Any],
) -> None:
    # Given the function and its log group
    properties = _properties(template, FUNCTION_ID)
    log_group = _properties(template, _resource_logical_id(properties["LoggingConfig"]["LogGroup"]))

    # Then the runtime, architecture and log format are the ones the zip is built for
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    assert properties["LoggingConfig"]["LogFormat"] == "JSON"
    # And logs do not pile up forever
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_function_timeout_leaves_room_for_the_consumers_time_budget(template: dict[str, Any]) -> None:
    # Given the timeout parameter
    timeout = template["Parameters"]["FunctionTimeout"]

    # Then it defaults to 60 s, and its shortest value still fits one AWS call attempt and the reserve
    assert _properties(template, FUNCTION_ID)["Timeout"] == {"Ref": "FunctionTimeout"}
    assert timeout["Default"] == 60
    assert min(timeout["AllowedValues"]) == MIN_FUNCTION_TIMEOUT_SECONDS == 3
    assert timeout["Default"] in timeout["AllowedValues"]


# --- Queues -----------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", [QUEUE_ID, DLQ_ID])
def test_queue_and_dead_letter_queue_are_both_fifo_and_encrypted(template: dict[str, Any], logical_id: str) -> None:
    # Given a queue of the template
    properties = _properties(template, logical_id)

    # Then it is FIFO (SQS requires a FIFO queue's DLQ to be FIFO too), named so, and encrypted
    assert properties["FifoQueue"] is True
    assert properties["QueueName"]["Fn::Sub"].startswith("${AWS::StackName}-")
    assert properties["QueueName"]["Fn::Sub"].endswith(".fifo")
    assert properties["SqsManagedSseEnabled"] is True


def test_the_queue_deduplicates_by_content_with_high_throughput_per_group(template: dict[str, Any]) -> None:
    # Given the source queue
    properties = _properties(template, QUEUE_ID)

    # Then deduplication and throughput limits apply per message group
    assert properties["ContentBasedDeduplication"] is True
    assert properties["DeduplicationScope"] == "messageGroup"
    assert properties["FifoThroughputLimit"] == "perMessageGroupId"


def test_the_queue_redrives_to_the_dlq_after_at_least_five_receives(template: dict[str, Any]) -> None:
    # Given the source queue's redrive policy and the receive-count parameter
    redrive = _properties(template, QUEUE_ID)["RedrivePolicy"]
    parameter = template["Parameters"]["MaxReceiveCount"]

    # Then failures go to this stack's DLQ, and only after five attempts or more
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [DLQ_ID, "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert parameter["MinValue"] >= 5
    assert parameter["Default"] >= 5
    assert _deploy(template).max_receive_count >= 5


def test_the_dlq_keeps_messages_14_days_and_allows_redrive_only_from_the_queue(template: dict[str, Any]) -> None:
    # Given the DLQ, and the queue as a stack resolves it
    properties = _properties(template, DLQ_ID)
    deployed = _deploy(template)

    # When the ARN in its RedriveAllowPolicy is resolved for the same stack
    [source] = properties["RedriveAllowPolicy"]["sourceQueueArns"]
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": deployed.queue_arn.split(":")[4]}
    pseudo["AWS::StackName"] = deployed.stack_name
    arn = re.sub(r"\$\{([^}]+)\}", lambda match: pseudo[match.group(1)], source["Fn::Sub"])

    # Then only the source queue may redrive into it, and messages stay the maximum 14 days
    assert properties["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    assert arn == deployed.queue_arn
    assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize("logical_id", [QUEUE_ID, DLQ_ID])
def test_each_queue_denies_access_without_tls(template: dict[str, Any], logical_id: str) -> None:
    # Given the queue policies of the template
    policies = [
        body["Properties"]
        for body in _resources(template, "AWS::SQS::QueuePolicy").values()
        if {"Ref": logical_id} in body["Properties"]["Queues"]
    ]

    # Then one of them denies every action on this queue over plain HTTP
    denials = [
        statement
        for policy in policies
        for statement in _statements(policy["PolicyDocument"])
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        and statement["Resource"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert denials, f"{logical_id} has no TLS-only policy"


def test_visibility_timeout_is_at_least_six_times_the_function_timeout_for_every_allowed_timeout(
    template: dict[str, Any],
) -> None:
    # Given each function timeout the parameter allows
    for timeout in template["Parameters"]["FunctionTimeout"]["AllowedValues"]:
        # When a stack is deployed with it
        deployed = _deploy(_with_defaults(template, FunctionTimeout=timeout))

        # Then a message cannot reappear while an invocation holding it may still run
        assert deployed.function_timeout == timeout
        assert deployed.visibility_timeout >= 6 * deployed.function_timeout, timeout
        # And it does not wait much longer than that before a retry (SQS allows 12 hours at most)
        assert deployed.visibility_timeout <= max(6 * timeout, 5400)


# --- Event source mapping --------------------------------------------------------------------


def test_the_event_source_reads_fifo_batches_and_reports_item_failures(template: dict[str, Any]) -> None:
    # Given the function's SQS event
    event = _sqs_event(template)

    # Then it reads this stack's queue, at most 10 records (the FIFO maximum), with no batching window
    assert event["Queue"] == {"Fn::GetAtt": [QUEUE_ID, "Arn"]}
    assert 1 <= event["BatchSize"] <= 10
    assert "MaximumBatchingWindowInSeconds" not in event
    # And a failed record is retried alone, not with the whole batch
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # And how many invocations run at once is a parameter
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "EventSourceMaxConcurrency"}


# --- Payload bucket ---------------------------------------------------------------------------


def test_the_payload_bucket_is_encrypted_private_owner_only_and_reachable_over_tls_only(
    template: dict[str, Any],
) -> None:
    # Given the bucket for bodies over DynamoDB's item limit, and its policy
    properties = _properties(template, BUCKET_ID)
    [policy] = [
        body["Properties"]["PolicyDocument"]
        for body in _resources(template, "AWS::S3::BucketPolicy").values()
        if body["Properties"]["Bucket"] == {"Ref": BUCKET_ID}
    ]

    # Then objects are encrypted at rest, no ACL or policy can make them public, and ACLs are off
    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # And every request without TLS is denied, on the bucket and on its objects
    [denial] = [statement for statement in _statements(policy) if statement["Effect"] == "Deny"]
    assert denial["Action"] == "s3:*"
    assert denial["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {_resource_logical_id(resource) for resource in denial["Resource"]} == {BUCKET_ID}
    assert len(denial["Resource"]) == 2


def test_a_stored_body_deleted_or_overwritten_by_mistake_stays_recoverable_for_30_days(
    template: dict[str, Any],
) -> None:
    # Given the bucket's versioning and lifecycle
    properties = _properties(template, BUCKET_ID)
    rules = properties["LifecycleConfiguration"]["Rules"]

    # Then every version is kept, and a replaced or deleted one goes 30 days later
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    [recoverable] = [rule for rule in rules if "NoncurrentVersionExpiration" in rule]
    assert recoverable["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert recoverable["Status"] == "Enabled"
    # And current bodies expire only if PayloadExpirationDays says so
    [optional] = [rule for rule in rules if "Fn::If" in rule]
    condition, expiring, absent = optional["Fn::If"]
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PayloadExpirationDays"}, ""]}]}
    assert expiring["ExpirationInDays"] == {"Ref": "PayloadExpirationDays"}
    assert absent == {"Ref": "AWS::NoValue"}


def test_the_function_offloads_to_the_stacks_bucket_and_reads_pointers_only_from_a_named_one(
    template: dict[str, Any],
) -> None:
    # Given the stack deployed with its defaults, then with a producer's bucket named
    default = _deploy(template, with_bucket=True)
    with_producer = _deploy(_with_defaults(template, ProducerPayloadBucket="producer-payloads"), with_bucket=True)

    # When the consumer reads each environment
    config = Config.from_env({**default.environment, "AWS_REGION": REGION})
    producer_config = Config.from_env({**with_producer.environment, "AWS_REGION": REGION})

    # Then large bodies go to the stack's own bucket, and pointers are read only from the named bucket
    assert _environment(template)["PAYLOAD_BUCKET"] == {"Ref": BUCKET_ID}
    assert config.payload_bucket == default.payload_bucket is not None
    assert config.pointer_buckets == frozenset()
    assert producer_config.pointer_buckets == {"producer-payloads"}
    assert config.max_payload_bytes == template["Parameters"]["MaxPayloadBytes"]["Default"] == 1024 * 1024


def test_the_producer_bucket_parameter_takes_what_the_consumer_takes(template: dict[str, Any]) -> None:
    # Given the parameter's pattern
    pattern = template["Parameters"][PRODUCER_BUCKET_PARAMETER]["AllowedPattern"]

    # Then it allows nothing (no pointers read) and bucket names, and refuses what POINTER_BUCKETS refuses
    accepted = ["", "producer-payloads", "my.bucket.eu", "abc", "a" * 63]
    refused = ["ab", "Producer", "under_score", "a" * 64, "-start", "end-", "s3://bucket"]
    assert [value for value in accepted if not re.fullmatch(pattern, value)] == []
    assert [value for value in refused if re.fullmatch(pattern, value)] == []
    for value in accepted[1:]:
        assert Config.from_env({"AWS_REGION": REGION, "POINTER_BUCKETS": value}).pointer_buckets == {value}


# --- Table ------------------------------------------------------------------------------------


def test_the_table_is_keyed_by_message_id_on_demand_recoverable_and_expiring(template: dict[str, Any]) -> None:
    # Given the table
    properties = _properties(template, TABLE_ID)

    # Then its key is the string attribute the consumer writes, named by one parameter for both
    key = {"Ref": "KeyAttributeName"}
    assert properties["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": key, "AttributeType": "S"}]
    assert _environment(template)["DYNAMO_KEY_ATTRIBUTE"] == key
    assert template["Parameters"]["KeyAttributeName"]["Default"] == "message_id"
    # And it is on demand, encrypted, recoverable, and expires items on expires_at
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # And deletion protection is a parameter
    assert properties["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}


# --- IAM --------------------------------------------------------------------------------------


def test_no_permission_statement_allows_every_resource(template: dict[str, Any]) -> None:
    # Given every IAM and queue policy statement
    statements = list(_iam_statements(template))
    assert statements

    # Then each names its resources, and none of them is "*"
    for owner, statement in statements:
        assert "Resource" in statement, (owner, statement)
        assert "NotResource" not in statement, (owner, statement)
        for resource in _as_list(statement["Resource"]):
            assert resource != "*", (owner, statement)


def test_the_function_role_grants_exactly_the_calls_the_consumer_makes(template: dict[str, Any]) -> None:
    # Given the function, which must use the template's own role: SAM's generated one
    # attaches AWS managed policies whose statements cover every resource
    properties = _properties(template, FUNCTION_ID)
    assert "Policies" not in properties
    role = _resource_logical_id(properties["Role"])

    # When its allow statements are listed as action -> resources
    grants: dict[str, set[str]] = {}
    for owner, statement in _iam_statements(template):
        if owner != role:
            continue
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                grants.setdefault(action, set()).add(_resource_logical_id(resource))

    # Then they are the consumer's and the event source's calls, each on its own resource, and no more
    assert grants == EXPECTED_GRANTS
    assert not _properties(template, role).get("ManagedPolicyArns")


def test_the_transformed_template_has_no_wildcard_resource_in_any_iam_policy(template: dict[str, Any]) -> None:
    # Given the CloudFormation that the SAM transform makes of the template
    transformed = _transformed()

    # Then no IAM policy in it, generated or written, allows every resource
    statements = list(_iam_statements(transformed))
    assert statements
    for owner, statement in statements:
        for resource in _as_list(statement.get("Resource", "*")):
            assert resource != "*", (owner, statement)
    # And no role gets an AWS managed policy (they use "*" resources)
    for name, role in _resources(transformed, "AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), name
    # And the event source mapping kept its FIFO-safe settings through the transform
    [mapping] = _resources(transformed, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["BatchSize"] <= 10
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def _transformed() -> dict[str, Any]:
    """SAM-transformed template: in process if samtranslator is installed, else in the SAM venv."""
    sys.path.insert(0, str(ROOT / "infra"))
    try:
        if importlib.util.find_spec("samtranslator") is not None:
            import sam_translate  # type: ignore[import-not-found]

            result: dict[str, Any] = sam_translate.translate(ROOT / "template.yaml")
            return result
    finally:
        sys.path.remove(str(ROOT / "infra"))
    python = ROOT / ".venv-sam" / "bin" / "python"
    if not python.exists():
        pytest.skip("samtranslator is not installed here and .venv-sam is missing (make validate creates it)")
    answer = subprocess.run(
        [str(python), str(ROOT / "infra" / "sam_translate.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": REGION, "SAM_CLI_TELEMETRY": "0", "PATH": "/usr/bin:/bin"},
    )
    transformed: dict[str, Any] = json.loads(answer.stdout)
    return transformed


# --- Alarms and dashboard ---------------------------------------------------------------------


def test_every_consumer_error_metric_has_an_alarm_on_the_emitted_namespace_and_service(
    template: dict[str, Any],
) -> None:
    # Given the alarms, and the namespace and service the function emits its metrics under
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    variables = _environment(template)
    by_metric = {alarm["Properties"]["MetricName"]: alarm["Properties"] for alarm in alarms}

    # Then each alarmed metric is one the consumer emits
    assert set(telemetry.METRIC_NAMES) >= ALARMED_METRICS
    for metric in ALARMED_METRICS:
        assert metric in by_metric, f"no alarm on {metric}"
        alarm = by_metric[metric]
        # And it watches the same namespace and service dimension the function writes to
        assert alarm["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
        assert alarm["Dimensions"] == [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}]
        # And it fires on the first occurrence, quietly when the queue is idle, and notifies the topic
        assert alarm["Statistic"] == "Sum"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_queue_dlq_and_lambda_health_have_alarms(template: dict[str, Any]) -> None:
    # Given the alarms
    alarms = [alarm["Properties"] for alarm in _resources(template, "AWS::CloudWatch::Alarm").values()]
    watched = {
        (alarm["Namespace"], alarm["MetricName"], json.dumps(alarm["Dimensions"][0]["Value"], sort_keys=True))
        for alarm in alarms
        if alarm["Namespace"] in ("AWS/SQS", "AWS/Lambda")
    }

    # Then messages in the DLQ, an old message in the queue, and function errors and throttles alarm
    dlq_name = json.dumps({"Fn::GetAtt": [DLQ_ID, "QueueName"]}, sort_keys=True)
    queue_name = json.dumps({"Fn::GetAtt": [QUEUE_ID, "QueueName"]}, sort_keys=True)
    function = json.dumps({"Ref": FUNCTION_ID}, sort_keys=True)
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq_name) in watched
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue_name) in watched
    assert ("AWS/Lambda", "Errors", function) in watched
    assert ("AWS/Lambda", "Throttles", function) in watched
    # And every alarm notifies the one topic, which an e-mail parameter may subscribe to
    assert all(alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in alarms)
    [subscription] = _resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_the_dashboard_is_valid_json_showing_every_consumer_metric(template: dict[str, Any]) -> None:
    # Given the dashboard body with its substitutions filled in
    [dashboard] = _resources(template, "AWS::CloudWatch::Dashboard").values()
    text, _names = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))

    # When the metric names of its widgets are collected
    shown = {row[1] for widget in body["widgets"] for row in widget["properties"]["metrics"]}

    # Then the consumer's counters, queue depth and age, DLQ depth and Lambda health are all there
    assert shown >= set(telemetry.METRIC_NAMES)
    assert shown >= {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}
    assert shown >= {"Duration", "Errors", "Throttles", "ConcurrentExecutions"}
    assert "${DlqName}" in text


def test_the_stack_outputs_what_operators_need(template: dict[str, Any]) -> None:
    # Given the outputs
    outputs = template["Outputs"]

    # Then queue URL and ARN, DLQ URL, table, function ARN and dashboard URL are among them
    assert outputs["QueueUrl"]["Value"] == {"Ref": QUEUE_ID}
    assert outputs["QueueArn"]["Value"] == {"Fn::GetAtt": [QUEUE_ID, "Arn"]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": DLQ_ID}
    assert outputs["TableName"]["Value"] == {"Ref": TABLE_ID}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": [FUNCTION_ID, "Arn"]}
    assert "#dashboards:name=${ConsumerDashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


def test_every_checkov_skip_is_justified_next_to_its_resource(template: dict[str, Any]) -> None:
    # Given the checkov skips in resource metadata
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    # Then each names a check and says why it does not apply
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, (name, skip)


# --- samconfig.toml ---------------------------------------------------------------------------


def _overrides(environment: dict[str, Any]) -> dict[str, str]:
    text = environment["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in text.split())


@pytest.mark.parametrize("name", ["default", "prod"])
def test_each_samconfig_environment_deploys_with_allowed_parameters(template: dict[str, Any], name: str) -> None:
    # Given an environment of samconfig.toml
    environment = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))[name]
    deploy = environment["deploy"]["parameters"]

    # Then it names its stack and region, can create the role, and shows the change set first
    assert environment["global"]["parameters"]["stack_name"]
    assert environment["global"]["parameters"]["region"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert environment["build"]["parameters"] == {"cached": True, "parallel": True}
    # And each override is a template parameter, with a value the parameter accepts
    for parameter, value in _overrides(environment).items():
        declared = template["Parameters"][parameter]
        if "AllowedValues" in declared:
            assert value in {str(allowed) for allowed in declared["AllowedValues"]}, parameter
        if "MinValue" in declared:
            assert int(value) >= declared["MinValue"], parameter


def test_prod_protects_its_table_from_deletion(template: dict[str, Any]) -> None:
    # Given both samconfig environments
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))

    # Then prod turns deletion protection on, in a stack of its own
    assert _overrides(config["prod"])["TableDeletionProtection"] == "true"
    stacks = {name: config[name]["global"]["parameters"]["stack_name"] for name in ("default", "prod")}
    assert stacks["prod"] != stacks["default"]
    assert template["Parameters"]["TableDeletionProtection"]["AllowedValues"] == ["true", "false"]
