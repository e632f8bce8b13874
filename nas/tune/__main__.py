"""``python -m nas.tune``: see :mod:`nas.commands.tune`."""

from nas.commands.tune import main

main()
