"""``python -m vmigrate_lib.dataplane.agent --root DIR``: serve DIR on stdin/stdout."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
