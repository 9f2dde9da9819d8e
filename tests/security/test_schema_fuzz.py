"""Schemathesis against /api/v1/schema/, in process (WSGI), with a key holding every scope.

Bounded for ``make test`` (FUZZ_EXAMPLES, default 10 per operation); ``make fuzz``
runs 1,000 per operation. Checks: no 5xx, and every response conforms to the schema.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings

from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from warning_system.wsgi import application

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))


@pytest.fixture
def fuzz_key(transactional_db, make_key, make_sensor, settings):
    """A key with every scope, a sensor to name, and eager ingestion (so a 202 really stored)."""
    settings.PIPELINE_EAGER = True
    make_sensor("FUZZ-1", flood_stage_m=4.0)
    return make_key(name="fuzz")


# The schema is generated in process (no database needed); pytest 9 breaks schemathesis.pytest.from_fixture.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_every_generated_request_without_5xx_and_as_documented(case, fuzz_key):
    # REMOTE_ADDR as a WSGI server sets it (without it the per-IP limits raise KeyError: see the report).
    # The contract is "no 5xx, and every response as documented". Two checks are left out on
    # purpose: positive_data_acceptance flags business-rule 400s (an unknown sensor_id is
    # schema-valid but not registered), and negative_data_rejection flags lenient query
    # parsing (an empty ?until= means "no bound"); neither is a wrong answer.
    case.call_and_validate(
        headers={"Authorization": f"Api-Key {fuzz_key}"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )
