"""``python -m nas.latency``: see :mod:`nas.commands.latency`."""

from nas.commands.latency import entry

entry()
