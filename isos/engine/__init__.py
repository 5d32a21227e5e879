"""The ISO engine: a source tree or vendor ISO plus a host's files in, a stream of ISO bytes out.

No Django here (docs/design.md, "The engine"); the app around it passes settings in."""
