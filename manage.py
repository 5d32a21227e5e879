#!/usr/bin/env python
"""Django's command-line utility for the ISO portal, in a checkout (the wheel's is ``iso-portal``)."""

from portal.__main__ import main

if __name__ == "__main__":
    main()
