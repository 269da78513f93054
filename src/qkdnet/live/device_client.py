"""A KM's end of a QKD device reached over ETSI GS QKD 014 (mutual TLS): a
:class:`~qkdnet.live.qkd_device.DeviceEnd` for a device served by another process
(:mod:`qkdnet.live.device_app`) or by a vendor's device KME, given its base URL."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from urllib.parse import quote

from qkdnet.apps.sae_client import KmeError, parse_keys, parse_reply, parse_status
from qkdnet.live.http_client import LeanClient, NoReply
from qkdnet.live.qkd_device import DeviceError


class HttpDeviceEnd:
    """The device end at ``base_url`` (``https://host:port[/prefix]``, ``/api/v1/keys`` is
    added), called as an SAE with ``context``'s client certificate; ``other_end`` is the
    device's other SAE (the other KM's node), ``key_bytes`` its key size."""

    def __init__(self, base_url: str, context: ssl.SSLContext, other_end: str,
                 key_bytes: int, timeout_s: float = 5.0) -> None:
        self._client = LeanClient(base_url.rstrip("/") + "/api/v1/keys", context,
                                  timeout_s=timeout_s)
        self._other = quote(other_end, safe="")
        self.key_bytes = key_bytes

    async def available(self) -> int:
        try:
            reply = await self._client.get(f"/{self._other}/status")
            return parse_status(parse_reply(reply.status_code, reply.content)).stored_key_count
        except (NoReply, KmeError) as exc:
            raise DeviceError(f"device status: {exc}") from None

    async def enc_keys(self, number: int) -> list[tuple[str, bytes]]:
        return await self._keys("enc_keys", {"number": number, "size": self.key_bytes * 8},
                                number)

    async def dec_keys(self, key_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        keys = await self._keys("dec_keys", {"key_IDs": [{"key_ID": k} for k in key_ids]},
                                len(key_ids))
        if [k for k, _ in keys] != list(key_ids):
            raise DeviceError("the device gave other key_IDs than were asked for")
        return keys

    async def _keys(self, operation: str, body: object, number: int
                    ) -> list[tuple[str, bytes]]:
        try:
            reply = await self._client.post(f"/{self._other}/{operation}", body)
            keys = parse_keys(parse_reply(reply.status_code, reply.content), number,
                              self.key_bytes * 8)
        except (NoReply, KmeError) as exc:
            raise DeviceError(f"device {operation}: {exc}") from None
        return [(k.key_id, k.material) for k in keys]

    async def aclose(self) -> None:
        """Close the connection to the device."""
        await self._client.aclose()
