"""``python -m coatnet_nas.cli ...``: the ``coatnet`` command, for launchers that start modules.

torchrun, given its node and process counts, starts one such process per GPU (``torchrun ... -m
coatnet_nas.cli train SPEC ...``, with the options of ``coatnet train``); each joins the process
group from the environment torchrun sets. The README shows the full command.
"""

import sys

from coatnet_nas.cli import run

if __name__ == "__main__":
    sys.exit(run())
