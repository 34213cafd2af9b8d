"""Dataflow Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE).

The template launcher runs `python launch.py --input=... --output=... --runner=DataflowRunner
--project=... --region=... --temp_location=... [--setup_file=...]`: the same flags as
`python -m pipelines.tracking_logs`, parsed by the same code. Nothing here but the hand-over, so
the template cannot drift from the CLI.
"""

import sys

from pipelines.tracking_logs import run

if __name__ == "__main__":
    sys.exit(run())
