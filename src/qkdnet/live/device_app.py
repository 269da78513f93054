"""Emulated QKD devices served over ETSI GS QKD 014: the device pair of a border KM-link
runs in the process of the link's end ``a`` (:class:`~qkdnet.live.qkd_device.EmulatedDevice`),
and end ``b``'s KM, in another process, calls its end of the device here, as it would call
a vendor device's KME.

Each device is an ETSI 014 KME under ``/devices/<km_link>``: ``GET
.../api/v1/keys/<other end>/status``, ``POST .../enc_keys`` and ``POST .../dec_keys``,
keys of the device's block size. The calling KM is the node its client certificate names
(``kme:<node>``), and must be an end of the device (401 otherwise); the SAE in the path
is the device's other end. Errors are ETSI 014 Error objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from qkdnet.keys.etsi014 import ApiError, Limits, key_container, key_ids, key_order, status_document
from qkdnet.live.qkd_device import DeviceError, DevicePair
from qkdnet.live.request_limits import BodyLimit
from qkdnet.live.service_calls import answer, json_body
from qkdnet.live.tls_server import calling_kme

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/devices/"
#: Most keys one call may take or release (an exchange of the border supply takes 64).
MAX_KEYS_PER_CALL = 128


class DeviceApp:
    """The ETSI 014 interface of ``devices`` (by KM-link id), for the ends that call in."""

    def __init__(self, devices: Mapping[str, DevicePair]) -> None:
        self.devices = dict(devices)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            document = await self._handle(scope, receive)
            status = 200
        except ApiError as exc:
            status, document = exc.status, exc.body()
        await answer(send, status, document)

    async def _handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        link, _, rest = scope["path"].removeprefix(PREFIX).partition("/api/v1/keys/")
        other, _, operation = rest.partition("/")
        device = self.devices.get(link)
        if not scope["path"].startswith(PREFIX) or device is None or not operation:
            raise ApiError(404, "Not Found")
        caller = calling_kme(scope)
        if caller not in device.ends:
            raise ApiError(401, f"the client certificate does not name an end of KM-link "
                                f"{link}")
        if other not in device.ends or other == caller:
            raise ApiError(400, f"SAE {other!r} is not the other end of KM-link {link}")
        limits = Limits(key_size=device.key_bytes * 8, max_key_per_request=MAX_KEYS_PER_CALL,
                        max_key_size=device.key_bytes * 8, min_key_size=device.key_bytes * 8)
        end = device.end(caller)
        if operation == "status" and scope["method"] == "GET":
            return status_document(link, link, caller, other, await end.available(), limits)
        if scope["method"] != "POST" or operation not in ("enc_keys", "dec_keys"):
            raise ApiError(405, "Method Not Allowed")
        body = await json_body(receive)
        try:
            if operation == "enc_keys":
                order = key_order(body, {}, limits)
                return key_container(await end.enc_keys(order.number))
            return key_container(await end.dec_keys(key_ids(body, {}, limits)))
        except DeviceError as exc:
            raise ApiError(400 if operation == "dec_keys" else 503, str(exc)) from None


def make_device_app(devices: Mapping[str, DevicePair]) -> BodyLimit:
    """The ETSI 014 interface of ``devices``, behind the body cap."""
    return BodyLimit(DeviceApp(devices))
