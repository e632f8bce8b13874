"""``python -m nas.space``: the command is :mod:`nas.commands.space`."""
