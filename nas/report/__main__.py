"""``python -m nas.report``: see :mod:`nas.commands.report`."""

from nas.commands.report import entry

entry()
