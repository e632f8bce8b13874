"""``python -m nas.baselines``: see :mod:`nas.commands.baselines`."""

from nas.commands.baselines import main

main()
