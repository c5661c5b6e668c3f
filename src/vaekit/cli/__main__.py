"""`python -m vaekit.cli ...`, as torchrun and the --nproc launcher (vaekit.distributed) start it."""
import sys

from . import main

sys.exit(main())
