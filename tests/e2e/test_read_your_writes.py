"""Read your own writes across the broker: a client that places an order and reads its
customer with the order's X-Event-Position always sees that order counted, however many
clients do so at once, and whether the projector is quick, held back, or killed and started
again. A read that cannot be served by its deadline is a 503, never a stale answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from contracts.partitions import Partition
from contracts.positions import ORDER_LOG, LogPosition
from tests.e2e.conftest import System, projector_held_back, running_system
from tests.e2e.orders import WIDGET
from tests.support import Databases, ServiceProcess, eventually, projector_process

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rabbitmq_up"), pytest.mark.timeout(180)]

CLIENTS = 16
DEADLINE = 15.0  # seconds the customer API waits: longer than a projector takes to restart


@dataclass
class Services:
    system: System
    impatient: ServiceProcess  # the customer API again, on the same database, waiting 0.5 s


@pytest.fixture(scope="module", params=[1, 4], ids=["unpartitioned", "4 partitions"])
async def services(databases: Databases, request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """The whole system, its log in one partition or in four shared by two projectors."""
    env = {"MIN_POSITION_DEADLINE": str(DEADLINE), "ORDER_PARTITIONS": str(request.param)}
    async with running_system(databases, env=env) as system:
        impatient = ServiceProcess(
            "customers", {**system.customers.env, "MIN_POSITION_DEADLINE": "0.5"}
        ).start()
        try:
            yield Services(system, impatient)
        finally:
            impatient.stop()


def position(token: str) -> int:
    return LogPosition.parse(token, log=ORDER_LOG).position


def served_at(response: httpx.Response) -> int:
    """X-Projection-Position: the number, or, partitioned, the partition's token."""
    header = response.headers["X-Projection-Position"]
    return int(header) if header.isdigit() else position(header)


@dataclass
class Client:
    """One client with a customer of its own: it places orders and reads the customer with
    each order's token, checking the count includes its own order every time."""

    system: System
    http: httpx.AsyncClient
    customer: int = 0
    placed: int = 0
    waited_for: list[int] = field(default_factory=list)  # each read's X-Projection-Position

    async def sign_up(self) -> None:
        response = await self.http.post(
            f"{self.system.customers.url}/api/v1/customers",
            json={"customer_name": "Reader", "address": "1 Own Write Street"},
        )
        assert response.status_code == 201, response.text
        self.customer = response.json()["id"]

    async def place(self) -> str:
        body = {**WIDGET, "customer_id": self.customer}
        response = await self.http.post(f"{self.system.orders.url}/api/v1/orders", json=body)
        assert response.status_code == 201, response.text
        self.placed += 1
        return str(response.headers["X-Event-Position"])

    async def read_own_write(self, token: str) -> None:
        response = await self.http.get(
            f"{self.system.customers.url}/api/v1/customers/{self.customer}",
            headers={"X-Min-Position": token},
        )
        assert response.status_code == 200, response.text
        assert response.json()["orders_count"] == self.placed  # its own order, counted
        reached = served_at(response)
        assert reached >= position(token)
        self.waited_for.append(reached)

    async def round(self) -> None:
        await self.read_own_write(await self.place())


async def clients(system: System, http: httpx.AsyncClient) -> list[Client]:
    made = [Client(system, http) for _ in range(CLIENTS)]
    await asyncio.gather(*(client.sign_up() for client in made))
    return made


async def one_client(services: Services, http: httpx.AsyncClient) -> Client:
    reader = Client(services.system, http)
    await reader.sign_up()
    return reader


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=2 * CLIENTS)
    async with httpx.AsyncClient(timeout=DEADLINE + 10, limits=limits) as client:
        yield client


async def test_each_change_answers_with_its_position_in_the_order_log(
    services: Services, http: httpx.AsyncClient
) -> None:
    orders = services.system.orders.url
    key = {"Idempotency-Key": "read-your-writes"}
    placed = await http.post(f"{orders}/api/v1/orders", json=WIDGET, headers=key)
    order = placed.json()["id"]
    confirmed = await http.post(f"{orders}/api/v1/orders/{order}/confirm")
    replayed = await http.post(f"{orders}/api/v1/orders", json=WIDGET, headers=key)
    read = await http.get(f"{orders}/api/v1/orders/{order}")

    assert (placed.status_code, confirmed.status_code, replayed.status_code) == (201, 200, 200)
    assert position(confirmed.headers["X-Event-Position"]) > position(
        placed.headers["X-Event-Position"]
    )
    # A replay records nothing, but answers with where the order was placed.
    assert replayed.headers["X-Event-Position"] == placed.headers["X-Event-Position"]
    assert "X-Event-Position" not in read.headers  # a read records nothing


async def test_many_clients_each_read_their_own_orders_counted(
    services: Services, http: httpx.AsyncClient
) -> None:
    readers = await clients(services.system, http)

    for _ in range(3):
        await asyncio.gather(*(client.round() for client in readers))

    assert all(client.placed == 3 and len(client.waited_for) == 3 for client in readers)


async def test_reads_wait_for_a_held_back_projector_and_then_see_their_orders(
    services: Services, http: httpx.AsyncClient
) -> None:
    readers = await clients(services.system, http)

    with projector_held_back(services.system):
        tokens = await asyncio.gather(*(client.place() for client in readers))
        reading = asyncio.gather(
            *(client.read_own_write(token) for client, token in zip(readers, tokens, strict=True))
        )
        done, _ = await asyncio.wait({reading}, timeout=1.5)
        assert not done  # every read is waiting for orders_count, none answered stale

    await reading  # each read checks its own order is counted
    assert all(len(client.waited_for) == 1 for client in readers)


async def test_reads_wait_through_a_projector_killed_and_started_again(
    services: Services, http: httpx.AsyncClient
) -> None:
    system = services.system
    readers = await clients(system, http)
    await asyncio.gather(*(client.round() for client in readers))

    for projector in system.projectors():  # kill -9, with reads about to wait on them
        system.workers[projector].kill()
    second = asyncio.gather(*(client.round() for client in readers))
    await eventually(
        lambda: all(client.placed == 2 for client in readers),
        within=30,
        what="every client's second order placed",
    )
    assert not second.done()  # orders placed, nobody to count them: every read waits
    for projector in system.projectors():
        system.workers[projector] = projector_process(system.projector_env()).start()
    await second
    await asyncio.gather(*(client.round() for client in readers))  # and it goes on

    assert all(client.placed == 3 and len(client.waited_for) == 3 for client in readers)


async def test_a_read_the_projection_cannot_serve_by_the_deadline_is_a_503(
    services: Services, http: httpx.AsyncClient
) -> None:
    reader = await one_client(services, http)
    url = f"{services.impatient.url}/api/v1/customers/{reader.customer}"

    with projector_held_back(services.system):
        token = await reader.place()
        started = time.monotonic()
        behind = await http.get(url, headers={"X-Min-Position": token})
        waited = time.monotonic() - started

    assert behind.status_code == 503, behind.text
    assert waited >= 0.5  # it waited for its deadline first
    assert behind.headers["Retry-After"] == "1"
    assert behind.json()["code"] == "read_model_behind"
    assert served_at(behind) < position(token)
    await reader.read_own_write(token)  # the patient API serves it once the projector moves


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("payments:1", "payments log"),
        ("1", "<log>:<number>"),
        ("orders:-1", "<log>:<number>"),
        ("shipments:4", "no log"),
        ("orders:99999999999999999999", "<log>:<number>"),
    ],
)
async def test_a_position_that_is_not_of_the_order_log_is_refused(
    services: Services, http: httpx.AsyncClient, token: str, why: str
) -> None:
    customers = services.system.customers.url

    by_header = await http.get(f"{customers}/api/v1/customers/1", headers={"X-Min-Position": token})
    by_query = await http.get(f"{customers}/api/v1/customers", params={"min_position": token})

    for refused in (by_header, by_query):
        assert refused.status_code == 422, refused.text
        assert why in refused.text


async def test_a_position_asked_by_query_and_by_header_waits_for_the_later(
    services: Services, http: httpx.AsyncClient
) -> None:
    reader = await one_client(services, http)
    first = await reader.place()
    second = await reader.place()

    response = await http.get(
        f"{services.system.customers.url}/api/v1/customers",
        params={"min_position": first, "limit": 500},
        headers={"X-Min-Position": second},
    )

    assert response.status_code == 200, response.text
    assert served_at(response) >= position(second)
    listed = {customer["id"]: customer for customer in response.json()}
    assert listed[reader.customer]["orders_count"] == 2


async def test_a_position_of_another_layout_or_another_customers_partition_is_refused(
    services: Services, http: httpx.AsyncClient
) -> None:
    system = services.system
    reader = await one_client(services, http)
    token = await reader.place()
    url = f"{system.customers.url}/api/v1/customers"
    if system.partitions == 1:
        assert "/" not in token  # orders:N, as before partitions
        wrong = [(f"{url}/{reader.customer}", "orders/1of4:1", "not in partitions")]
    else:
        own = LogPosition.parse(token, log=ORDER_LOG).partition
        assert own == str(Partition.of(reader.customer, system.partitions))
        other = next(c for c in range(1, 100) if str(Partition.of(c, system.partitions)) != own)
        wrong = [
            (f"{url}/{reader.customer}", "orders:1", "in 4 partitions"),
            (f"{url}/{reader.customer}", "orders/1of2:1", "in 4 partitions"),
            (f"{url}/{other}", token, "this customer's is"),
        ]

    for where, asked, why in wrong:
        refused = await http.get(where, headers={"X-Min-Position": asked})
        assert refused.status_code == 422, refused.text
        assert why in refused.text


async def test_a_list_without_a_position_says_where_each_partition_had_got(
    services: Services, http: httpx.AsyncClient
) -> None:
    system = services.system
    listed = await http.get(f"{system.customers.url}/api/v1/customers")

    header = listed.headers["X-Projection-Position"]
    if system.partitions == 1:
        assert header.isdigit()
    else:
        tokens = [LogPosition.parse(t, log=ORDER_LOG) for t in header.split(", ")]
        assert [t.partition for t in tokens] == [f"{p}of4" for p in range(4)]
