import sys

from viscnn.cli import main

sys.exit(main())
