"""Signals of the OS version catalog, for apps that look at the sources (osversions
imports no other app: they connect here)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ``manage.py sync_osversions`` after a sync; each receiver returns lines to
# print about the sources (e.g. isos: vendor ISOs whose boot modes cannot all be kept).
catalog_synced = Signal()
