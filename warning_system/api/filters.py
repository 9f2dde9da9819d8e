"""Filters shared by the API and the pages."""
from __future__ import annotations

import copy
from datetime import timezone

import django_filters
from django.core.exceptions import ValidationError
from django.forms import ModelChoiceField
from django.http import QueryDict
from django_filters.fields import IsoDateTimeField


class UTCIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 normalised to UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59, so a
    legal-looking ``since=...+20:46`` would otherwise reach the database and
    fail there (a 500). Converting here makes it an ordinary instant, and a
    value that cannot be expressed in UTC is a validation error naming the field.
    """

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError as exc:
            raise ValidationError("Enter a date/time that can be expressed in UTC.", code="invalid") from exc


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class _SharedFields(dict):
    """A form class's ``base_fields`` whose per-instance deep copy shares the fields that hold no per-form state.

    Django's ``BaseForm.__init__`` deep-copies ``base_fields`` for every form
    instance so an instance may change its fields. A filter form never does
    (nothing in this project sets a field's or widget's attributes per form),
    and validating or rendering a field does not change it. The deep copy of
    the alert filters' nine fields (their widgets and choices) was ~10 % of the
    CPU of an uncached alert list (bench/bench_api_cpu.py alerts-sensor
    --profile). A ``ModelChoiceField`` is still deep-copied: that gives each
    form a fresh queryset, as Django intends.
    """

    def __deepcopy__(self, memo):
        return {name: copy.deepcopy(field, memo) if isinstance(field, ModelChoiceField) else field for name, field in self.items()}


class LeanFilterSet(django_filters.FilterSet):
    """A FilterSet whose instances copy the declared filters shallowly, and build their form class once.

    Why: django-filter deep-copies every declared filter for each FilterSet
    instance (their choices, labels and extra arguments included), once per
    request of every filtered list; for the alert list that was ~150 of the
    ~400 ``copy.deepcopy`` calls per uncached request (bench/bench_api_cpu.py
    alerts-sensor --profile). The deep copy exists so an instance may change
    its filters; these filtersets never do. A shallow copy still gives each
    instance (each request thread) its own filter objects, whose ``model``
    and ``parent`` it sets, and a method filter a ``FilterMethod`` bound to
    its own copy, so the method runs on this instance.

    The validation form class is built once per FilterSet class: django-filter
    builds it on every request, creating a form field per filter (~0.3 ms of
    CPU of each uncached alert list). The fields depend only on the class's
    filters (a model choice filter's queryset is evaluated per form, when
    Django copies the fields into each form instance), and its instances share
    the fields that hold no per-form state (``_SharedFields``). Not for filters
    whose choices depend on the request (a callable ``queryset``).
    """

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        # The same as django_filters.FilterSet.__init__, with copy.copy for copy.deepcopy.
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {}
        for name, declared in self.base_filters.items():
            filter_ = copy.copy(declared)
            if filter_.method is not None:
                filter_.method = filter_.method  # the setter binds a new FilterMethod to this copy
            filter_.model = queryset.model
            filter_.parent = self
            self.filters[name] = filter_

    def get_form_class(self):
        cls = type(self)
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            form_class.base_fields = _SharedFields(form_class.base_fields)
            cls._form_class = form_class
        return form_class
