"""What the tests share, but fixtures (those are in tests/conftest.py), one part a module:

- ``api``: the docs/api.md example request, JSON posts, reading a streamed ISO, the test password;
- ``sources``: realistic ISO source trees on disk, and their fingerprints;
- ``isoread``: reading ISO images back, with pycdlib, from the raw bytes and with Debian's tools;
- ``layouts``: comparing two layouts of one tree made at different times;
- ``tools``: the external tools a test needs: skip without one, or fail under ISOPORTAL_REQUIRE_TOOLS;
- ``processes``: what the processes a test starts are doing (/proc), and waiting for it;
- ``serving``: the portal under gunicorn on loopback, and an HTTP session logged in to it;
- ``bootkit``: a tiny bootable source tree made from Debian's packages;
- ``qemu``: booting an ISO on an emulated PC and reading what the boot kit printed;
- ``workloads``: large source trees of realistic shapes (the load test's and the benchmark's);
- ``downloads``, ``verify``: an HTTP client that downloads ISOs and checks every byte as it streams.

The benchmark (tests/bench/, ``manage.py isobench``) builds on these too; tests never import it.
"""
