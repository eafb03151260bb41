"""`python -m podium.cli`, for environments without the console script on PATH."""

from podium.cli.main import main

raise SystemExit(main())
