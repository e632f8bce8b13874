"""``python -m nas.tune``: the command is :mod:`nas.commands.tune`."""
