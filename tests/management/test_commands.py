"""python manage.py create_api_key: prints the plain key once, stores only its hash."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from management.authentication import authenticate_key
from management.models import APIKey

pytestmark = pytest.mark.django_db


def _create(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_create_api_key_prints_a_working_key_with_its_scopes():
    plain, notice = _create("--name", "gateway-north", "--scopes", "ingest,read")
    assert "shown only once" in notice
    api_key = APIKey.objects.get(name="gateway-north")
    assert sorted(api_key.scopes) == ["ingest", "read"]
    assert plain not in api_key.hashed_key  # only the hash is stored
    principal = authenticate_key(plain)
    assert principal is not None
    assert principal.scopes == frozenset({"ingest", "read"})
    assert principal.sensors is None
    assert api_key.expiry_date is None


def test_create_api_key_restricts_to_sensors(make_sensor):
    make_sensor("RG-1")
    make_sensor("RG-2")
    plain, _ = _create("--name", "station-7", "--scopes", "ingest", "--sensors", "RG-1, RG-2")
    principal = authenticate_key(plain)
    assert principal.sensors == frozenset({"RG-1", "RG-2"})
    assert principal.may_use_sensor("RG-1") and not principal.may_use_sensor("RG-3")


def test_create_api_key_sets_expiry_in_days():
    _create("--name", "temp", "--scopes", "read", "--expires", "30")
    expiry = APIKey.objects.get(name="temp").expiry_date
    assert abs(expiry - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize("args,complaint", [
    (("--scopes", "ingest,admin"), "admin"),
    (("--scopes", ","), "non-empty"),
    (("--scopes", "ingest", "--sensors", "NOPE-1"), "NOPE-1"),
], ids=["unknown_scope", "no_scope", "unknown_sensor"])
def test_create_api_key_refuses_bad_arguments_and_creates_nothing(args, complaint):
    with pytest.raises(CommandError, match=complaint):
        _create("--name", "bad", *args)
    assert not APIKey.objects.exists()
