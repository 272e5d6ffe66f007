"""``python -m chainrule``: the same command line as the ``chainrule`` script."""

from chainrule.cli import main

raise SystemExit(main())
