"""``python -m nas.export``: see :mod:`nas.commands.export`."""

from nas.commands.export import entry

entry()
