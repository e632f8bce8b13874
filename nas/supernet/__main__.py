"""``python -m nas.supernet``: see :mod:`nas.commands.supernet`."""

from nas.commands.supernet import main

main()
