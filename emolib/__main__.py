"""`python -m emolib` is the `emolib` command."""
from .cli import main

raise SystemExit(main())
