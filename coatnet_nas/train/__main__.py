"""``python -m coatnet_nas.train`` moved to ``python -m coatnet_nas.cli train`` (the command line
lives in the CLI package, which the library never imports); this says so and exits 2."""

import sys

if __name__ == "__main__":
    sys.stderr.write(
        "error: the torchrun entry point is now 'python -m coatnet_nas.cli train SPEC ...' "
        "(e.g. torchrun ... -m coatnet_nas.cli train SPEC ...)\n"
    )
    sys.exit(2)
