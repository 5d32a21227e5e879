"""gunicorn's settings for one ISO portal app server behind nginx (docs/operations.md,
"The front door"): ``gunicorn -c /etc/iso-portal/gunicorn.conf.py portal.wsgi``.

The settings are the portal's own (portal/gunicorn_conf.py: gevent workers, the proxy's
forwarded headers believed only from ``FORWARDED_ALLOW_IPS``, the open-file limit); the
address comes from ``ISO_PORTAL_BIND`` (deploy/systemd/iso-portal@.service sets it per
instance). Override any of them below, or on the command line.
"""

from portal.gunicorn_conf import *  # noqa: F403
