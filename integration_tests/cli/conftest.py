"""Fixtures for the ``dagster-logship`` command tests: a moto server that enforces IAM (for the
missing-permission report) and a CloudWatch Logs client (the shared moto server, the fake Cloud
Logging server and the offline environment: integration_tests/conftest.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

from logship_cli_support import logs_client  # noqa: E402

from dagster_logship.testing import moto_server  # noqa: E402

#: Allowed actions of the IAM users made on the enforcing moto server.
IAM_USERS = {
    "no-create-group": ["logs:PutLogEvents", "logs:CreateLogStream"],
    "no-retention": ["logs:PutLogEvents", "logs:CreateLogStream", "logs:CreateLogGroup"],
}


@pytest.fixture(scope="module")
def iam_moto() -> Iterator[SimpleNamespace]:
    """A moto server that enforces IAM after the requests that create our users (moto's
    INITIAL_NO_AUTH_ACTION_COUNT, read from the server process's environment)."""
    saved = os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT")
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(3 * len(IAM_USERS))
    try:
        server = moto_server()
        url = server.__enter__()
    finally:
        if saved is None:
            os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        else:
            os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = saved
    try:
        import boto3

        iam = boto3.session.Session().client(
            "iam", region_name="us-east-1", endpoint_url=url,
            aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = {}
        for user, actions in IAM_USERS.items():
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            policy = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": "*"}]}
            iam.put_user_policy(UserName=user, PolicyName="logs", PolicyDocument=json.dumps(policy))
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        yield SimpleNamespace(url=url, keys=keys)
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def logs(moto_endpoint: str) -> object:
    return logs_client(moto_endpoint, "us-east-1")
