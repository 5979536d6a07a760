"""Hostile requests as bytes: a raw HTTP/1.1 client, generators of bad input, a fixed corpus.

Schema-shaped fuzzing (schemathesis) only sends JSON that some schema describes. What a
client can really send is bytes: bodies that are not UTF-8, documents nested thousands
deep, truncated or re-encoded ones, numbers no column can hold, and paths, queries and
headers made of anything the HTTP grammar lets through. The generators here make those,
and `send` puts them on the wire exactly as made.
"""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

Strategy = st.SearchStrategy


@dataclass(frozen=True)
class Request:
    method: str
    target: bytes  # the path and query exactly as they go on the request line
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    def wire(self, host: str) -> bytes:
        head = [
            self.method.encode() + b" " + self.target + b" HTTP/1.1",
            b"Host: " + host.encode(),
            b"Connection: close",
            b"Content-Length: %d" % len(self.body),
            *(name + b": " + value for name, value in self.headers),
        ]
        return b"\r\n".join(head) + b"\r\n\r\n" + self.body


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_problem(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/problem+json")


def send(port: int, request: Request, timeout: float = 10.0) -> Answer:
    """One request on a connection of its own; the status line and headers of the answer.

    A hang is a failure too: past `timeout` seconds without an answer, TimeoutError.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.wire(f"127.0.0.1:{port}"))
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    if not head.startswith("HTTP/1.1 "):
        raise ConnectionError(f"no HTTP answer, only {received[:200]!r}")
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ")[1]), headers)


# --- the parts of a request ---------------------------------------------------------

# Numbers beyond anything a field holds, or that are costly to read: 1e999999999 as an
# integer has a billion digits.
HUGE_NUMBERS = [
    b"1e999999999",
    b"-1e999999999",
    b"1e-999999999",
    b"9" * 4000,
    b"-" + b"9" * 4000,
    b"18446744073709551616",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1E400",
    b"0.000000000000000000000000000001",
    b"123456789012345678901234567890.123456789",
    b"-0",
    b"-0.0",
    b"1.0e0",
]
# Bytes that are not JSON numbers but sit where numbers go.
NOT_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"0x10", b"1_000", b"+1", b".5", b"01"]


def json_text(text: str) -> bytes:
    """A JSON string literal, escaping only what JSON requires (non-ASCII stays raw UTF-8,
    lone surrogates become \\u escapes)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out).encode()


def json_values(depth: int = 3) -> Strategy[bytes]:
    """Well-formed JSON values of any shape, as bytes."""
    scalars = st.one_of(
        st.sampled_from([b"null", b"true", b"false", b"0", b"1", b"-1", b'""']),
        st.integers().map(lambda n: str(n).encode()),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda x: repr(x).encode()),
        st.text(max_size=50).map(json_text),
        st.sampled_from(HUGE_NUMBERS),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"),
            st.lists(st.tuples(st.text(max_size=10), inner), max_size=4).map(
                lambda pairs: b"{" + b",".join(json_text(k) + b":" + v for k, v in pairs) + b"}"
            ),
        ),
        max_leaves=depth * 4,
    )


def deep(levels: int, kind: str) -> bytes:
    """A document nested `levels` deep: arrays, or objects."""
    if kind == "array":
        return b"[" * levels + b"]" * levels
    return b'{"a":' * levels + b"1" + b"}" * levels


def nested() -> Strategy[bytes]:
    return st.builds(
        deep, st.integers(min_value=1, max_value=20_000), st.sampled_from(["array", "object"])
    )


def field_value(valid: list[bytes]) -> Strategy[bytes]:
    """What goes in a known field: a valid value, a huge or not-a-number, a nest, anything."""
    return st.one_of(
        st.sampled_from(valid),
        st.sampled_from(HUGE_NUMBERS + NOT_NUMBERS),
        nested(),
        json_values(),
        st.text(max_size=300).map(json_text),
    )


def documents(fields: dict[str, list[bytes]]) -> Strategy[bytes]:
    """Objects of the endpoint's own fields, each valid (the first of its list), hostile or
    left out, with strangers among them; flat, or wrapped as {"order": ...}."""

    @st.composite
    def shaped(draw: st.DrawFn) -> bytes:
        pairs: list[tuple[bytes, bytes]] = []
        for name, values in fields.items():
            how = draw(st.sampled_from(["valid", "valid", "valid", "valid", "hostile", "out"]))
            if how != "out":
                value = values[0] if how == "valid" else draw(field_value(values))
                pairs.append((json_text(name), value))
        strangers = st.tuples(st.text(max_size=10).map(json_text), json_values())
        extra = draw(st.lists(strangers, max_size=2))
        mixed = draw(st.permutations([*pairs, *extra]))
        return b"{" + b",".join(key + b":" + value for key, value in mixed) + b"}"

    flat = shaped()
    return st.one_of(flat, flat.map(lambda inner: b'{"order":' + inner + b"}"))


def mangled(document: Strategy[bytes]) -> Strategy[bytes]:
    """A document broken the ways bytes break: cut short, bytes inserted or changed,
    re-encoded (UTF-16, UTF-32, Latin-1), prefixed with a byte order mark."""

    @st.composite
    def mangle(draw: st.DrawFn) -> bytes:
        raw = draw(document)
        how = draw(st.sampled_from(["cut", "insert", "replace", "encode", "bom"]))
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        if how == "cut":
            return raw[:at]
        if how == "insert":
            junk = draw(st.binary(min_size=1, max_size=8))
            return raw[:at] + junk + raw[at:]
        if how == "replace" and raw:
            byte = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            return raw[: min(at, len(raw) - 1)] + byte + raw[min(at, len(raw) - 1) + 1 :]
        if how == "encode":
            codec = draw(st.sampled_from(["utf-16", "utf-32", "utf-16-be", "latin-1"]))
            return raw.decode("utf-8", "replace").encode(codec, "replace")
        return b"\xef\xbb\xbf" + raw

    return mangle()


def bodies(fields: dict[str, list[bytes]]) -> Strategy[bytes]:
    """Every kind of body at once: shaped, mangled, nested, raw bytes, empty."""
    shaped = documents(fields)
    return st.one_of(
        shaped,
        mangled(shaped),
        nested(),
        json_values(),
        st.binary(max_size=2000),
        st.just(b""),
    )


def _encoded(raw: bytes) -> bytes:
    return quote_from_bytes(raw, safe="").encode()


# Segments and query values that have broken parsers before: digits no integer column
# holds, digits that are not ASCII, escapes that are not escapes.
HOSTILE_TEXT = [
    b"9" * 5000,
    b"18446744073709551616",
    b"-1",
    b"0",
    b"%00",
    b"%ff%fe",
    b"%ed%a0%80",  # an encoded lone surrogate
    b"%c3%28",  # an invalid UTF-8 pair
    b"%zz",
    b"%",
    b"%2F..%2F",
    _encoded("١٢٣".encode()),  # Arabic-Indic digits: isdigit() says yes, int() differs
    _encoded("²".encode()),
    b"1e3",
    b"0x10",
    b"+1",
    b"1.0",
    b"%201",  # a space before the digit
    b"",
]


def text_part(known: list[bytes]) -> Strategy[bytes]:
    """A path segment or a query value: known-good, hostile, or any bytes, percent-encoded."""
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(),
        st.sampled_from(HOSTILE_TEXT),
        st.binary(max_size=60).map(_encoded),
        st.text(max_size=30).map(lambda t: _encoded(t.encode("utf-8", "surrogatepass"))),
        st.integers().map(lambda n: str(n).encode()),
    )


def queries(names: dict[str, list[bytes]]) -> Strategy[bytes]:
    """A query string: the endpoint's own parameters and strangers, repeated, malformed."""
    own = (
        st.sampled_from(sorted(names)).flatmap(
            lambda name: text_part(names[name]).map(lambda value: name.encode() + b"=" + value)
        )
        if names
        else st.nothing()
    )
    pair = st.one_of(
        own,
        st.tuples(text_part([]), text_part([])).map(lambda kv: kv[0] + b"=" + kv[1]),
        st.sampled_from([b"", b"=", b"&", b"==", b"%", b"a", b"a=b=c"]),
    )
    return st.lists(pair, max_size=5).map(lambda items: b"?" + b"&".join(items) if items else b"")


# Header values the HTTP grammar allows: visible ASCII, spaces and tabs inside, and
# obs-text (bytes 0x80-0xFF), which the server must take without knowing their encoding.
_FIELD_BYTES = [9, *range(0x20, 0x7F), *range(0x80, 0x100)]


def header_values() -> Strategy[bytes]:
    legal = st.lists(st.sampled_from(_FIELD_BYTES), max_size=300).map(bytes)
    return st.one_of(
        legal.map(lambda value: value.strip(b" \t")),
        st.sampled_from([b"9" * 5000, b'"' + b"9" * 5000 + b'"', b"*", b'W/"1"', b'"-1"']),
    )


def headers(names: list[bytes]) -> Strategy[tuple[tuple[bytes, bytes], ...]]:
    return st.lists(st.tuples(st.sampled_from(names), header_values()), max_size=3).map(tuple)


ANY_HEADERS = [b"Content-Type", b"X-Correlation-ID", b"Accept", b"Accept-Encoding"]


def cursor_of(text: bytes) -> bytes:
    """A cursor such as the APIs hand out, around any text (`p<position>` is theirs)."""
    return base64.urlsafe_b64encode(text).rstrip(b"=")


CURSORS = [cursor_of(b"p1"), cursor_of(b"p" + b"9" * 30), cursor_of(b"p-1"), cursor_of(b"\xff")]
