"""``python -m nas.space``: see :mod:`nas.commands.space`."""

from nas.commands.space import entry

entry()
