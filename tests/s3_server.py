"""A real S3 server for tests: the helpers agentworld ships in `agentworld.testing.s3`."""

from __future__ import annotations

from agentworld.testing.s3 import (
    AWS_TEST_ENV,
    AWS_UNSET,
    free_port,
    new_bucket,
    s3_client,
    start_s3_server,
    use_test_credentials,
)

__all__ = ["AWS_TEST_ENV", "AWS_UNSET", "free_port", "new_bucket", "s3_client",
           "start_s3_server", "use_test_credentials"]
