"""The Order aggregate: the rules an order obeys, the events it records, and its errors."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

PRODUCT_NAME_MAX = 200
PRICE_PLACES = Decimal("0.01")
MAX_QUANTITY = 1_000_000
MAX_PRICE = Decimal("1000000000")  # a billion per item is beyond any catalogue we serve
DEFAULT_CURRENCY = "EUR"


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


PAYMENT_FAILED = "payment_failed"  # the cancellation reason when a payment fails

# The lifecycle, as data: the statuses each status may move to.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.CONFIRMED, Status.CANCELLED}),
    Status.CONFIRMED: frozenset({Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPED: frozenset({Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def order_total(price: Decimal, quantity: int) -> Decimal:
    """What an order costs: price times quantity, to the cent."""
    return (price * quantity).quantize(PRICE_PLACES)


# The statuses an order may be placed with. Only a paid order ships, and a new order is
# not paid yet, so it can be neither shipped nor delivered; nor placed already cancelled.
NEW_ORDER_STATUSES = frozenset({Status.PENDING, Status.CONFIRMED})
NEW_ORDER_RULE = "a new order is confirmed or pending: it is not paid yet"


def rule_violations(
    *,
    product_name: str | None = None,
    quantity: int | None = None,
    price: Decimal | None = None,
    currency: str | None = None,
    status: Status | None = None,
) -> list[tuple[str, str]]:
    """Every rule a new order breaks, as (field, message) pairs; None skips a field."""
    broken: list[tuple[str, str]] = []
    if status is not None and status not in NEW_ORDER_STATUSES:
        broken.append(("status", NEW_ORDER_RULE))
    if product_name is not None and not product_name.strip():
        broken.append(("product_name", "must not be blank"))
    if product_name is not None and len(product_name) > PRODUCT_NAME_MAX:
        broken.append(("product_name", f"must be at most {PRODUCT_NAME_MAX} characters"))
    if product_name is not None and "\x00" in product_name:
        broken.append(("product_name", "must not contain NUL characters"))
    if quantity is not None and not 1 <= quantity <= MAX_QUANTITY:
        broken.append(("quantity", f"must be a whole number from 1 to {MAX_QUANTITY}"))
    if price is not None and (not price.is_finite() or not 0 <= price <= MAX_PRICE):
        broken.append(("price", f"must be a number from 0 to {MAX_PRICE}"))
    elif price is not None and price != price.quantize(PRICE_PLACES):
        broken.append(("price", "must have at most 2 decimal places"))
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isupper()
    ):
        broken.append(("currency", "must be a three-letter ISO 4217 code such as EUR"))
    return broken


class Order(Aggregate):
    """An order; its only storage is the events below."""

    @classmethod
    def place(
        cls,
        *,
        order_id: Any,
        customer_id: int,
        product_name: str,
        quantity: int,
        price: Decimal,
        status: Status = Status.PENDING,
        currency: str = DEFAULT_CURRENCY,
        correlation_id: str = "",
    ) -> Order:
        broken = rule_violations(
            product_name=product_name,
            quantity=quantity,
            price=price,
            currency=currency,
            status=Status(status),
        )
        if broken:
            raise InvalidOrderError(broken)
        return cls._create(
            cls.Placed,
            id=order_id,
            customer_id=customer_id,
            product_name=product_name,
            quantity=quantity,
            price=price.quantize(PRICE_PLACES),
            status=Status(status),
            currency=currency,
            correlation_id=correlation_id,
        )

    class Placed(Aggregate.Created):
        """Version 2 added `currency`; stored version-1 events are upcast when read."""

        class_version = 2
        customer_id: int
        product_name: str
        quantity: int
        price: Decimal
        status: Status
        currency: str
        correlation_id: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["currency"] = DEFAULT_CURRENCY  # every order before v2 was priced in euros

    @event(Placed)
    def __init__(
        self,
        *,
        customer_id: int,
        product_name: str,
        quantity: int,
        price: Decimal,
        status: Status,
        currency: str,
        correlation_id: str,
    ) -> None:
        self.customer_id = customer_id
        self.product_name = product_name
        self.quantity = quantity
        self.price = price
        self.status = Status(status)
        self.currency = currency
        self.payment_status = PaymentStatus.PENDING

    # Lifecycle commands: the public method checks, the event method only changes state.

    def confirm(self, correlation_id: str = "") -> None:
        self._check_move(Status.CONFIRMED)
        self._confirmed(from_status=self.status, correlation_id=correlation_id)

    def ship(self, correlation_id: str = "") -> None:
        self._check_move(Status.SHIPPED)
        if self.payment_status is not PaymentStatus.PAID:
            raise PaymentRequiredError(self.payment_status)
        self._shipped(from_status=self.status, correlation_id=correlation_id)

    def deliver(self, correlation_id: str = "") -> None:
        self._check_move(Status.DELIVERED)
        self._delivered(from_status=self.status, correlation_id=correlation_id)

    def cancel(self, reason: str, correlation_id: str = "") -> None:
        self._check_move(Status.CANCELLED)
        self._cancelled(from_status=self.status, reason=reason, correlation_id=correlation_id)

    def record_payment(
        self, *, payment_id: Any, succeeded: bool, reason: str = "", correlation_id: str = ""
    ) -> bool:
        """Take a payment result; False (and nothing recorded) if one was taken already.

        The first result decides: a duplicate or late one never flips paid and failed. A
        failed payment cancels the order unless it has shipped or is cancelled already. A
        payment that succeeds for an order cancelled meanwhile is recorded as paid: the money
        was taken, and the history shows what a refund has to undo.
        """
        if self.payment_status is not PaymentStatus.PENDING:
            return False
        if succeeded:
            self._paid(payment_id=payment_id, correlation_id=correlation_id)
            return True
        self._payment_failed(payment_id=payment_id, reason=reason, correlation_id=correlation_id)
        if Status.CANCELLED in TRANSITIONS[self.status]:
            self._cancelled(
                from_status=self.status, reason=PAYMENT_FAILED, correlation_id=correlation_id
            )
        return True

    @event("Paid")
    def _paid(self, payment_id: Any, correlation_id: str) -> None:
        self.payment_status = PaymentStatus.PAID
        self.payment_id = payment_id

    @event("PaymentFailed")
    def _payment_failed(self, payment_id: Any, reason: str, correlation_id: str) -> None:
        self.payment_status = PaymentStatus.FAILED
        self.payment_id = payment_id

    def _check_move(self, target: Status) -> None:
        if target not in TRANSITIONS[self.status]:
            raise InvalidTransitionError(self.status, target)

    @event("Confirmed")
    def _confirmed(self, from_status: Status, correlation_id: str) -> None:
        self.status = Status.CONFIRMED

    @event("Shipped")
    def _shipped(self, from_status: Status, correlation_id: str) -> None:
        self.status = Status.SHIPPED

    @event("Delivered")
    def _delivered(self, from_status: Status, correlation_id: str) -> None:
        self.status = Status.DELIVERED

    @event("Cancelled")
    def _cancelled(self, from_status: Status, reason: str, correlation_id: str) -> None:
        self.status = Status.CANCELLED
        self.cancellation_reason = reason

    @property
    def total(self) -> Decimal:
        return order_total(self.price, self.quantity)

    def same_request(
        self,
        *,
        customer_id: int,
        product_name: str,
        quantity: int,
        price: Decimal,
        status: Status,
        currency: str = DEFAULT_CURRENCY,
    ) -> bool:
        """Whether a placement with these values is the one that created this order."""
        return (customer_id, product_name, quantity, price, Status(status), currency) == (
            self.customer_id,
            self.product_name,
            self.quantity,
            self.price,
            self.status,
            self.currency,
        )


class OrderError(Exception):
    """Base of the errors the order domain raises."""


class InvalidOrderError(OrderError):
    def __init__(self, broken: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field} {message}" for field, message in broken))
        self.broken = broken

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.broken]


class InvalidTransitionError(OrderError):
    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"an order that is {current} cannot become {target}")
        self.current = current
        self.target = target


class PaymentRequiredError(OrderError):
    def __init__(self, payment_status: PaymentStatus) -> None:
        super().__init__(f"only a paid order can be shipped; its payment is {payment_status}")
        self.payment_status = payment_status
