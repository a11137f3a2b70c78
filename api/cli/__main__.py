"""`python -m api.cli`: the `fleet` command."""

import sys

from api.cli import main

sys.exit(main())
