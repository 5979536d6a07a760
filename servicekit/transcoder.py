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
from eventsourcing.persistence import JSONTranscoder
from eventsourcing.utils import get_topic

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
        if isinstance(value, _PLAIN):  # a str or int subclass (an enum): as json writes it
            return value
        tagged = self._encode_obj(value)  # the library's tag; it refuses an unregistered type
        tagged["_data_"] = self._tagged(tagged["_data_"])
        return tagged

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


# An application's env entry for it; the library registers its transcodings as for its own.
TRANSCODER_ENV = {"TRANSCODER_TOPIC": get_topic(MsgspecTranscoder)}
