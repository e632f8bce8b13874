"""``python -m nas.train``: see :mod:`nas.commands.train`."""

from nas.commands.train import main

main()
