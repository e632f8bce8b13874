"""``python -m nas.cost``: see :mod:`nas.commands.cost`."""

from nas.commands.cost import entry

entry()
