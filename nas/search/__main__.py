"""``python -m nas.search``: see :mod:`nas.commands.search`."""

from nas.commands.search import main

main()
