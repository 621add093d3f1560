"""``python -m collector`` runs the ``clew`` command line."""
import sys

from collector.cli import main

sys.exit(main())
