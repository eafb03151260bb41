"""Signed webhook deliveries: what completion notifications (and any later
server-to-URL message, such as alerts) send.

A delivery is a POST of a JSON body with two headers: `Podium-Timestamp`
(Unix seconds) and `Podium-Signature` (`v1=` + the hex HMAC-SHA256 of
`timestamp + "." + body` under the named secret). A receiver recomputes the
HMAC, compares in constant time, and refuses old timestamps (replays). A
2xx answer is a delivery; anything else, or no answer, is a failed attempt,
retried after `backoff(attempt)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from podium.egress.client import EgressClient
from podium.egress.destinations import DestinationRefused

TIMESTAMP_HEADER = "Podium-Timestamp"
SIGNATURE_HEADER = "Podium-Signature"
DELIVERY_TIMEOUT = 10.0
# Attempts in all before a delivery is given up, and the delay between them.
MAX_ATTEMPTS = 8
FIRST_DELAY = 1.0
MAX_DELAY = 600.0


def signature(key: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def signed_headers(key: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, timestamp, body),
    }


def backoff(attempt: int) -> float:
    """Delay after failed attempt number `attempt` (1, 2, ...): 1s, 2s, 4s, ... capped."""
    return float(min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    # What happened, for the event: "HTTP 200", "connection refused", ...
    detail: str
    # Retrying cannot help (the destination is refused, the secret is missing).
    final: bool = False


async def deliver(
    client: EgressClient, url: str, secret: str, payload: Any, now: float
) -> Delivery:
    """One signed POST of `payload`; never raises for the destination's faults."""
    key = client.secrets.get(secret)
    if key is None:
        return Delivery(False, f"secret {secret!r} is not configured on the server")
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    import httpx2  # loads with the first outbound request (egress/client.py)

    try:
        status, _, _ = await client.request(
            "POST",
            url,
            headers=signed_headers(key, int(now), body),
            content=body,
            timeout=DELIVERY_TIMEOUT,
        )
    except DestinationRefused as error:
        return Delivery(False, str(error), final=True)
    except httpx2.TimeoutException:
        return Delivery(False, f"no answer within {DELIVERY_TIMEOUT:g}s")
    except Exception as error:  # connection refused, reset, TLS...: the receiver's side
        return Delivery(False, client.secrets.redact(f"{type(error).__name__}: {error}"))
    if 200 <= status < 300:
        return Delivery(True, f"HTTP {status}")
    return Delivery(False, f"HTTP {status}")
