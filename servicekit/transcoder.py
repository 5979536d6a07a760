"""A msgspec-based transcoder for the event store, writing the library's own stored format.

The library's `JSONTranscoder` tags each value of a registered type as
`{"_type_": name, "_data_": encoded}`, through the `json` module's Python hooks. This one
writes and reads the very same bytes with msgspec, so stored events stay readable by either
(a test holds them byte for byte equal). msgspec encodes UUIDs, decimals and datetimes by
itself, untagged, so the values are tagged in a walk before encoding, and untagged in a walk
after decoding.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

_PLAIN = (str, int, float, bool, type(None))


class MsgspecTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(self._tagged(obj))

    def decode(self, data: bytes) -> Any:
        return self._untagged(self._decoder.decode(data))

    def _tagged(self, value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is dict:
            return {key: self._tagged(item) for key, item in value.items()}
        if kind is list or kind is tuple:
            return [self._tagged(item) for item in value]
        transcoding = self.types.get(kind)
        if transcoding is not None:
            return {"_type_": transcoding.name, "_data_": self._tagged(transcoding.encode(value))}
        if isinstance(value, _PLAIN):  # a str or int subclass (an enum): as json writes it
            return value
        raise TranscodingNotRegisteredError(
            f"Object of type {kind} is not serializable. Please define and register"
            " a custom transcoding for this type."
        )

    def _untagged(self, value: Any) -> Any:
        """Tagged values decoded, in place, visiting only containers (most values of an
        event's state are plain)."""
        if type(value) is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = self._untagged(item)
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                return self._decode_obj(value)
        elif type(value) is list:
            for index, item in enumerate(value):
                if type(item) is dict or type(item) is list:
                    value[index] = self._untagged(item)
        return value


def msgspec_transcoder() -> MsgspecTranscoder:
    """With the transcodings every application of ours registers (the library's defaults)."""
    transcoder = MsgspecTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DecimalAsStr())
    transcoder.register(DatetimeAsISO())
    return transcoder
