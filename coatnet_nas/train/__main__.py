"""``python -m coatnet_nas.train SPEC ...``: the ``coatnet train`` command, for torchrun.

``torchrun --nnodes 2 --nproc-per-node 8 ... -m coatnet_nas.train SPEC --save ck.pt`` starts one
such process per GPU; each joins the process group from the environment torchrun sets.
"""

import sys

from coatnet_nas.cli import run

if __name__ == "__main__":
    sys.exit(run(["train", *sys.argv[1:]]))
