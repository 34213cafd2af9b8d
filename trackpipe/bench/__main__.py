"""`python -m trackpipe.bench` (what `make bench` runs): see trackpipe.bench.run."""

import sys

from trackpipe.bench.run import main

sys.exit(main())
