"""`make demo`: a server on the embedded SQLite default, the ERP workflow applied
and run with live progress, then the result and the spend. The web console is served
meanwhile (its URL is printed); on a terminal the server stays up until Enter, so that the
run can be read there. With PODIUM_DEMO_NO_WAIT=1, or when standard input is not a terminal
(CI), the server stops at once.

Everything goes through the real `podium` CLI, as a user would type it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from podium.testing import start_server_process

ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))


def step(title: str, *args: str, env: dict[str, str]) -> None:
    print(f"\n$ podium {' '.join(args)}", flush=True)
    result = subprocess.run([PODIUM, *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: {title} failed (exit {result.returncode})")


# With a key in the environment the ERP workflow runs on that provider for
# real; without one it stays on the offline simulated provider.
REAL_PROVIDERS = (
    ("OPENAI_API_KEY", "openai", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic", "claude-haiku-4-5"),
)


def erp_definition(workdir: Path) -> str:
    """examples/erp.yaml, moved to a real provider when a key is set."""
    source = ROOT / "examples" / "erp.yaml"
    chosen = next(((p, m) for key, p, m in REAL_PROVIDERS if os.environ.get(key)), None)
    if chosen is None:
        return "examples/erp.yaml"
    provider, model = chosen
    definition = yaml.safe_load(source.read_text())
    for step in definition["spec"]["steps"]:
        if step.get("agent") == "llm":
            config = step.setdefault("config", {})
            config.update(provider=provider, model=model)
            config.pop("options", None)  # the simulated provider's latency settings
    target = workdir / "erp.yaml"
    target.write_text(yaml.safe_dump(definition, sort_keys=False))
    print(f"(API key found: the ERP workflow runs on {provider}/{model})", flush=True)
    return str(target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_enter() -> bool:
    """Whether to keep the server up for the console until Enter: only for a person at a
    terminal, unless PODIUM_DEMO_NO_WAIT says otherwise."""
    return sys.stdin.isatty() and os.environ.get("PODIUM_DEMO_NO_WAIT", "") in ("", "0")


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="podium-demo-")
    # On a free port (the default 127.0.0.1:50051 may be a server the user runs), on the
    # default database; its log goes to the work directory.
    http = f"127.0.0.1:{free_port()}"
    server = start_server_process(
        None, args=["--http-address", http], cwd=ROOT, log_dir=workdir, grace=None
    )
    print(
        f"$ podium serve --address {server.address} --http-address {http}"
        "   (database: ./.podium/podium.db)"
    )
    console = f"http://{http}/"
    print(f"web console: {console}", flush=True)
    env = server.env
    try:
        step("plugins", "plugins", env=env)
        definition = erp_definition(Path(workdir))
        step("apply", "workflows", "apply", "-f", definition, env=env)
        step("validate", "workflows", "validate", "-f", definition, env=env)
        step(
            "run",
            "runs", "start", "erp", "--input", "@examples/erp-input.json", "--watch",
            env=env,
        )  # fmt: skip
        # What the stored runs of erp (this one and earlier demos') say.
        step("insights", "insights", "erp", env=env)
        print(f"\nweb console: {console} (the run: {console}#/runs)", flush=True)
        if wait_for_enter():
            input("press Enter to stop the server ")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nserver stopped; the run is kept in ./.podium/podium.db", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
