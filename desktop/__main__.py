"""`python -m desktop` is the `nightschool` command."""

import sys

from desktop.cli import main

sys.exit(main())
