"""The consumer's settings for a local run: the environment, then ``.env``, over template.yaml's.

Each setting maps to the template parameter that sets it in AWS, so a local stack is deployed
from the same parameters (the table's key schema follows ``DYNAMO_KEY_ATTRIBUTE`` as it does in
``sam deploy``). Where the resources are (``DYNAMO_TABLE``, ``DLQ_URL``, ``REGION``,
``PAYLOAD_BUCKET``, ``POINTER_BUCKETS``) is not read here: a run creates its own stack, or is
pointed at one with ``--queue-url``/``--table``/``--region``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from consumer.config import Config
from local.template_resources import TEMPLATE_PATH

DOTENV_PATH = TEMPLATE_PATH.parent / ".env"
SETTING_PARAMETERS = {
    "DYNAMO_KEY_ATTRIBUTE": "KeyAttributeName",
    "IDEMPOTENCY_KEY_JMESPATH": "IdempotencyKeyJmesPath",
    "MAX_CONCURRENCY": "GroupConcurrency",
    "RECORD_TTL_DAYS": "RecordTtlDays",
    "LOG_MESSAGE_BODY": "LogMessageBody",
    "MAX_PAYLOAD_BYTES": "MaxPayloadBytes",
}
# Where the resources are: a run creates its own (the payload bucket, and a producer bucket for pointers).
LOCATION_SETTINGS = ("DYNAMO_TABLE", "DLQ_URL", "REGION", "PAYLOAD_BUCKET", "POINTER_BUCKETS")


@dataclass(frozen=True)
class RunSettings:
    """What the user chose (name -> value), where each came from, and what was set but not read."""

    chosen: Mapping[str, str]
    sources: Mapping[str, str]
    not_read: tuple[str, ...]

    def template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the template whose parameters default to the user's choices."""
        changed = copy.deepcopy(dict(template))
        for name, value in self.chosen.items():
            changed["Parameters"][SETTING_PARAMETERS[name]]["Default"] = value
        return changed

    def effective(self, environment: Mapping[str, str]) -> dict[str, str]:
        """The function's settings as deployed, each with its source."""
        return {
            name: f"{environment.get(name, '')} ({self.sources.get(name, 'template.yaml')})"
            for name in SETTING_PARAMETERS
        }


def read_settings(environ: Mapping[str, str], region: str, dotenv_path: Path = DOTENV_PATH) -> RunSettings:
    """Raises ``ConfigurationError`` (the handler's own) for a value the consumer would refuse."""
    from_file: dict[str, str] = {}
    if dotenv_path.is_file():
        from_file = {name: value or "" for name, value in dotenv_values(dotenv_path).items()}
    chosen: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in SETTING_PARAMETERS:
        for source, values in (("environment", environ), (str(dotenv_path.name), from_file)):
            value = values.get(name, "").strip()
            if value:
                chosen[name], sources[name] = value, source
                break
    Config.from_env({"AWS_REGION": region, **chosen})
    given = {name for name in LOCATION_SETTINGS if environ.get(name, "").strip() or from_file.get(name, "").strip()}
    not_read = tuple(sorted(given))
    return RunSettings(chosen=chosen, sources=sources, not_read=not_read)
