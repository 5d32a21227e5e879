"""``manage.py isobench``, from a checkout only: development tooling, not in the wheel."""

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "tests.bench"
    label = "bench"
