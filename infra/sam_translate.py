"""Print template.yaml as the CloudFormation JSON that the SAM transform makes of it, offline.

cfn-lint run on the SAM template itself skips much of what is inside SAM resources;
linting this output checks what CloudFormation will really be given.
Usage: python infra/sam_translate.py [template.yaml] > build/template.cfn.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local.template_resources import load_template  # noqa: E402


class _NoManagedPolicies:
    """The template names no AWS managed policy, so nothing needs looking up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def translate(path: Path) -> dict[str, Any]:
    # Pseudo parameters come from a boto3 session; a region is all it needs, no credentials.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform  # type: ignore[import-not-found,unused-ignore]

    template = load_template(path)
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        code_uri = properties.get("CodeUri")
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(code_uri, str):
            # What `sam package` does after uploading the folder; the bucket is never reached.
            properties["CodeUri"] = f"s3://offline-placeholder/{code_uri.strip('/')}.zip"
    transformed: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return transformed


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "template.yaml"
    json.dump(translate(path), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
