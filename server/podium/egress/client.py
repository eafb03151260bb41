"""The outbound HTTP client: every request goes to a destination the policy
checked, at the address that was checked (the original host is sent as the
Host header and as the TLS server name), without following redirects (a
redirect could point anywhere) and without proxies from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from podium.egress.destinations import DestinationPolicy
from podium.egress.secrets import Secrets

DEFAULT_TIMEOUT = 30.0
# A response body larger than this fails the request instead of filling memory.
MAX_RESPONSE_BYTES = 1024 * 1024

if TYPE_CHECKING:
    # httpx2 and its transport (several MB) load with the first request: most
    # servers never send one.
    import httpx2


class ResponseTooLarge(Exception):
    pass


class EgressClient:
    """Shared by the `http` agent and the notifier: one connection pool."""

    def __init__(
        self,
        policy: DestinationPolicy,
        secrets: Secrets,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.secrets = secrets
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self._closed = False

    def _http(self) -> httpx2.AsyncClient:
        if self._closed:
            raise RuntimeError("the outbound HTTP client is closed")
        if self._client is None:
            import httpx2

            self._client = httpx2.AsyncClient(
                follow_redirects=False, trust_env=False, transport=self._transport
            )
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request; DestinationRefused,
        httpx2.HTTPError (timeouts, connection failures) or ResponseTooLarge."""
        client = self._http()
        destination = await self.policy.resolve(url)
        sent = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
        sent["Host"] = destination.host_header
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        request = client.build_request(
            method,
            destination.pinned_url,
            headers=sent,
            content=content,
            timeout=timeout,
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(
                        f"the response is larger than {MAX_RESPONSE_BYTES} bytes"
                    )
        finally:
            await response.aclose()
        return response.status_code, response.headers.get("content-type", ""), bytes(body)

    async def close(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
