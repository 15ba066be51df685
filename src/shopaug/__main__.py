import sys

from shopaug.cli import main

sys.exit(main())
