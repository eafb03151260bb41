"""`python -m podium`, the same as the `podium` command (for environments without the console
script on PATH)."""

from podium.cli.main import main

raise SystemExit(main())
