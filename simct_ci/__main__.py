"""`python -m simct_ci`: the same code the Action runs."""

import sys

from simct_ci.cli import main

sys.exit(main())
