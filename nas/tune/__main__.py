"""``python -m nas.tune``: see :mod:`nas.commands.tune` (:func:`nas.commands.run_command`
checks the command line before the search stack is imported)."""

from nas.commands import run_command

run_command("tune")
