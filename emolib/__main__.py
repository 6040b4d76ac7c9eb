"""`python -m emolib` is the `emolib` command."""
from emolib.cli import main

raise SystemExit(main())
