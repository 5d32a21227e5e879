"""``iso-portal`` (the wheel's console script) and ``python -m portal``: what manage.py is
in a checkout (``iso-portal migrate``, ``iso-portal demo``, ``iso-portal generate_iso``)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (reads the environment: a bad value stops here)
    except ImproperlyConfigured as error:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {error}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
