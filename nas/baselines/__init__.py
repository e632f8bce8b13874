"""``python -m nas.baselines``: the command is :mod:`nas.commands.baselines`."""
