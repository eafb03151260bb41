"""The `podium` command line: `podium.cli.main:main`."""
