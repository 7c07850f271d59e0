"""``python -m gradflow.cli``: the ``gradflow`` command."""

import sys

from gradflow.cli import main

sys.exit(main())
