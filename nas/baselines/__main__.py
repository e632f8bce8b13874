"""``python -m nas.baselines``: see :mod:`nas.commands.baselines`
(:func:`nas.commands.run_command` checks the command line before the training stack is
imported)."""

from nas.commands import run_command

run_command("baselines")
