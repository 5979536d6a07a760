"""The order service's event feed, read over HTTP: catch-up, gap healing, rebuild and verify."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from contracts.codec import ContractError, decode_feed
from projections.sequencer import Event

HEAD_HEADER = "X-Last-Position"  # the order service says where its feed ends


class FeedUnavailableError(RuntimeError):
    pass


class FeedClient:
    """The feed of the whole log; or, given a `partition` (`2of4`), that partition's events
    alone, chained within it; or, given `partitions`, every event tagged with its partition
    of that layout (contracts.partitions)."""

    def __init__(
        self,
        base_url: str,
        *,
        page_size: int = 1000,
        timeout: float = 10.0,
        partition: str | None = None,
        partitions: int | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.page_size = page_size
        self.head: int | None = None  # the feed's last position, as of the latest page
        self._layout: dict[str, str | int] = {}
        if partition is not None:
            self._layout["partition"] = partition
        elif partitions is not None:
            self._layout["partitions"] = partitions

    async def page(
        self, after: int, limit: int | None = None, *, partition: str | None = None
    ) -> list[Event]:
        """A page after `after`; of `partition` alone when one is given here."""
        layout = self._layout if partition is None else {"partition": partition}
        params = {"after": after, "limit": limit or self.page_size, **layout}
        try:
            response = await self._http.get("/api/v1/events", params=params)
            response.raise_for_status()
            if head := response.headers.get(HEAD_HEADER):
                self.head = int(head)
            return decode_feed(response.content)
        except (httpx.HTTPError, ContractError, ValueError) as exc:
            raise FeedUnavailableError(f"event feed: {type(exc).__name__}: {exc}") from None

    async def pages(self, after: int, upto: int | None = None) -> AsyncIterator[list[Event]]:
        """Pages after `after`, until the end of the feed or past `upto`.

        The next page is already on its way while the caller works on this one: the order
        service encodes it while the caller applies this one, on the other core.
        """
        ahead: asyncio.Future[list[Event]] | None = asyncio.ensure_future(self.page(after))
        try:
            while ahead is not None:
                page, ahead = await ahead, None
                if upto is not None:
                    page = [e for e in page if e.position <= upto]
                if not page:
                    return
                after = page[-1].position
                if upto is None or after < upto:
                    ahead = asyncio.ensure_future(self.page(after))
                yield page
        finally:
            if ahead is not None:  # the caller stopped early, or failed
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, FeedUnavailableError):
                    await ahead

    async def fetch(self, after: int, upto: int) -> list[Event]:
        """Every envelope with after < position <= upto (the sequencer's gap filler)."""
        return [event async for page in self.pages(after, upto) for event in page]

    async def aclose(self) -> None:
        await self._http.aclose()
