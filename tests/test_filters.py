"""warning_system.api.filters.LeanFilterSet: django-filter's behaviour without its per-request deep copies."""
import pytest

from alerts.filtersets import AlertFilterSet
from alerts.models import Alert
from sensors.filtersets import SensorFilterSet

pytestmark = pytest.mark.django_db


def test_each_instance_has_its_own_filters_and_method_filters_call_their_own_instance():
    first, second = AlertFilterSet({"active": "true"}), AlertFilterSet({"active": "false"})

    for name, declared in AlertFilterSet.base_filters.items():
        assert first.filters[name] is not declared and first.filters[name] is not second.filters[name]
        assert first.filters[name].parent is first and second.filters[name].parent is second
    assert first.filters["active"].filter.f is first.filters["active"]  # FilterMethod bound to the copy
    assert AlertFilterSet.base_filters["active"].filter.f is AlertFilterSet.base_filters["active"]  # class's untouched
    assert first.form_prefix is None and first.is_bound


def test_lean_filtersets_filter_and_validate_as_django_filter_does(make_sensor):
    sensor = make_sensor("LF-1")
    other = make_sensor("LF-2", status="maintenance")

    def deep(filterset_class, data, queryset):
        """django-filter's own __init__ (deep copies) on the same class: the reference result."""
        reference = filterset_class.__new__(filterset_class)
        super(filterset_class.__mro__[1], reference).__init__(data, queryset)
        return reference

    for data in ({"status": "maintenance"}, {"q": "LF-1"}, {"site": str(sensor.site_id)}, {"status": "bogus"}):
        lean = SensorFilterSet(data, type(sensor).objects.all())
        reference = deep(SensorFilterSet, data, type(sensor).objects.all())
        assert lean.is_valid() == reference.is_valid()
        if lean.is_valid():
            assert list(lean.qs) == list(reference.qs)
        else:
            assert lean.errors == reference.errors
    assert list(SensorFilterSet({"q": "LF-2"}, type(sensor).objects.all()).qs) == [other]
    for data in ({"active": "true"}, {"site": sensor.site.name}, {"until": "2026-01-01T00:00:00+20:46"}):
        lean, reference = AlertFilterSet(data, Alert.objects.all()), deep(AlertFilterSet, data, Alert.objects.all())
        assert lean.is_valid() == reference.is_valid()
        if lean.is_valid():
            assert str(lean.qs.query) == str(reference.qs.query)
        else:
            assert lean.errors == reference.errors


def test_forms_share_stateless_fields_but_validate_independently():
    """Two requests' forms share the alert filters' fields, yet each keeps its own data, errors and cleaned values."""
    valid, invalid = AlertFilterSet({"hazard": "flood", "until": "2026-01-01T00:00:00Z"}), AlertFilterSet({"hazard": "tsunami", "until": "soon"})
    assert valid.form.fields["hazard"] is invalid.form.fields["hazard"]
    assert valid.is_valid() and not invalid.is_valid()
    assert valid.form.cleaned_data["hazard"] == "flood"
    assert set(invalid.errors) == {"hazard", "until"} and not valid.errors
    # Rendering a shared field shows each form's own value.
    assert '<option value="flood" selected>' in str(valid.form["hazard"])
    assert "selected" not in str(invalid.form["hazard"])


def test_model_choice_fields_get_their_own_copy_per_form(make_sensor):
    make_sensor("LF-3")
    first, second = SensorFilterSet({}), SensorFilterSet({})
    assert first.form.fields["site"] is not second.form.fields["site"]
    assert first.form.fields["site"].queryset is not second.form.fields["site"].queryset
    assert first.form.fields["status"] is second.form.fields["status"]
