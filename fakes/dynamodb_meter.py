"""A recording proxy in front of moto that prices every DynamoDB request by DynamoDB's published
capacity rules, since moto reports no real consumed capacity.

Rules applied (on-demand request units; provisioned capacity units are the same numbers):

* item size: each attribute's name (UTF-8 bytes) plus its value: strings UTF-8 bytes, numbers
  1 byte per two significant digits plus 1, binary its bytes, booleans and nulls 1, lists and
  maps 3 bytes plus 1 byte per element plus their elements;
* reads: ``GetItem`` the item's size, ``Query`` the summed size of the items it returns, each
  rounded up to 4 KB: 1 unit per 4 KB strongly consistent, 0.5 eventually consistent;
* writes: ``PutItem``, ``UpdateItem`` and ``DeleteItem`` the larger of the item before and
  after, rounded up to 1 KB, 1 unit per KB; ``BatchWriteItem`` the same per item; every item
  of a ``TransactWriteItems`` twice that, a ``ConditionCheck`` priced as a write of the
  checked item (DynamoDB bills transactional items at 2 units per KB);
* global secondary indexes (projection ALL): a write that changes an index key costs a delete
  of the old index entry and a put of the new one; a write that changes only other attributes
  of an indexed item costs one index write; each entry priced like the item.

Usage::

    with CapacityMeter(moto.url, {"test-sessions": SESSIONS, ...}) as meter:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = meter.url
        ... run the code ...
        meter.totals()   # {"read_units": 3.5, "write_units": 9, "requests": {...}}
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from fakes.loopback import LoopbackServer, Request, Response
from functions.contract import TableSchema

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
_MOTO_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
_FORWARDED_HEADERS = ("content-type", "x-amz-target", "authorization", "x-amz-date")


@dataclass(frozen=True)
class Priced:
    """One request the meter forwarded, with what it cost."""

    operation: str
    table: str
    read_units: float
    write_units: float
    items: int = 0  # items a read returned
    consistent: bool = False


def attribute_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire form (``{"S": ...}``)."""
    (kind, content), *_ = value.items()
    return _SIZES[kind](content)


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    return math.ceil(len(digits) / 2) + 1


_SIZES: dict[str, Any] = {
    "S": lambda text: len(text.encode()),
    "N": _number_size,
    "B": lambda encoded: len(encoded) * 3 // 4,  # base64 on the wire
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "SS": lambda texts: sum(len(text.encode()) for text in texts),
    "NS": lambda numbers: sum(_number_size(number) for number in numbers),
    "L": lambda items: 3 + sum(1 + attribute_size(item) for item in items),
    "M": lambda items: (
        3 + sum(1 + len(name.encode()) + attribute_size(item) for name, item in items.items())
    ),
}


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def read_units(total_bytes: int, consistent: bool) -> float:
    units = max(math.ceil(total_bytes / READ_UNIT_BYTES), 1)
    return float(units) if consistent else units / 2


def write_units(item_bytes: int) -> int:
    return max(math.ceil(item_bytes / WRITE_UNIT_BYTES), 1)


def _transaction_items(body: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(entry.items())) for entry in body["TransactItems"]]


class CapacityMeter(LoopbackServer):
    """Forwards DynamoDB requests to ``upstream`` and prices each one; see the module docstring."""

    def __init__(self, upstream: str, schemas: Mapping[str, TableSchema]) -> None:
        super().__init__()
        self._upstream = upstream
        self._schemas = dict(schemas)
        self._http = httpx.Client(base_url=upstream, timeout=30)
        self._lock = threading.Lock()
        self.priced: list[Priced] = []

    def reset(self) -> None:
        with self._lock:
            self.priced.clear()

    def totals(self) -> dict[str, Any]:
        with self._lock:
            priced = list(self.priced)
        return {
            "read_units": sum(item.read_units for item in priced),
            "write_units": sum(item.write_units for item in priced),
            "requests": dict(Counter(item.operation for item in priced)),
        }

    def handle(self, request: Request) -> Response:
        operation = request.headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        body = json.loads(request.body or b"{}")
        before = self._items_before(operation, body)
        upstream = self._http.post(
            "/",
            content=request.body,
            headers={
                name: request.headers[name]
                for name in _FORWARDED_HEADERS
                if name in request.headers
            },
        )
        answer = upstream.json() if upstream.content else {}
        if upstream.status_code == 200:
            priced = self._price(operation, body, answer, before)
            with self._lock:
                self.priced.extend(priced)
        return Response(
            upstream.status_code,
            upstream.content,
            {"Content-Type": upstream.headers.get("content-type", "application/x-amz-json-1.0")},
        )

    # ---- pricing ---------------------------------------------------------------------------

    def _get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        response = self._http.post(
            "/",
            json={"TableName": table, "Key": key, "ConsistentRead": True},
            headers={
                "x-amz-target": "DynamoDB_20120810.GetItem",
                "content-type": "application/x-amz-json-1.0",
                "authorization": _MOTO_AUTHORIZATION,  # moto routes by the credential scope
            },
        )
        return response.json().get("Item")

    def _key(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        schema = self._schemas[table]
        names = [schema.hash_key.name] + ([schema.range_key.name] if schema.range_key else [])
        return {name: item[name] for name in names}

    def _transaction_key(self, kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
        if kind == "Put":
            return self._key(item["TableName"], item["Item"])
        return dict(item["Key"])

    def _request_key(self, table: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if "PutRequest" in request:
            return self._key(table, request["PutRequest"]["Item"])
        return dict(request["DeleteRequest"]["Key"])

    def _items_before(self, operation: str, body: Mapping[str, Any]) -> list[Any]:
        if operation in ("UpdateItem", "DeleteItem"):
            return [self._get(body["TableName"], body["Key"])]
        if operation == "PutItem":
            table = body["TableName"]
            return [self._get(table, self._key(table, body["Item"]))]
        if operation == "TransactWriteItems":
            return [
                self._get(item["TableName"], self._transaction_key(kind, item))
                for kind, item in _transaction_items(body)
            ]
        if operation == "BatchWriteItem":
            return [
                self._get(table, self._request_key(table, request))
                for table, requests in body["RequestItems"].items()
                for request in requests
            ]
        return []

    def _price(
        self, operation: str, body: Mapping[str, Any], answer: Mapping[str, Any], before: list[Any]
    ) -> list[Priced]:
        consistent = bool(body.get("ConsistentRead"))
        if operation == "GetItem":
            item = answer.get("Item")
            units = read_units(item_size(item), consistent)
            return [Priced(operation, body["TableName"], units, 0, int(bool(item)), consistent)]
        if operation == "Query":
            items = answer.get("Items", [])
            units = read_units(sum(map(item_size, items)), consistent)
            return [Priced(operation, body["TableName"], units, 0, len(items), consistent)]
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = body["TableName"]
            old = before[0]
            if operation == "PutItem":
                new = body["Item"]
            elif operation == "UpdateItem":
                new = self._get(table, body["Key"])
            else:
                new = None
            return [Priced(operation, table, 0, self._write_cost(table, old, new))]
        if operation == "BatchWriteItem":
            priced = []
            olds = iter(before)
            for table, requests in body["RequestItems"].items():
                for request in requests:
                    new = request.get("PutRequest", {}).get("Item")
                    priced.append(
                        Priced(operation, table, 0, self._write_cost(table, next(olds), new))
                    )
            return priced
        if operation == "TransactWriteItems":
            return self._price_transaction(body, before)
        return [Priced(operation, body.get("TableName", ""), 0, 0)]

    def _price_transaction(self, body: Mapping[str, Any], before: list[Any]) -> list[Priced]:
        priced = []
        for (kind, item), old in zip(_transaction_items(body), before, strict=True):
            table = item["TableName"]
            if kind == "ConditionCheck":
                cost = write_units(item_size(old))
            else:
                new = (
                    item["Item"] if kind == "Put"
                    else self._get(table, item["Key"]) if kind == "Update"
                    else None
                )  # fmt: skip
                cost = self._write_cost(table, old, new)
            priced.append(Priced(f"TransactWriteItems.{kind}", table, 0, 2 * cost))
        return priced

    def _write_cost(
        self, table: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> int:
        cost = write_units(max(item_size(old), item_size(new)))
        for index in self._schemas[table].indexes:
            names = [index.hash_key.name] + ([index.range_key.name] if index.range_key else [])
            old_key = [old.get(name) for name in names] if old else None
            new_key = [new.get(name) for name in names] if new else None
            in_old = bool(old_key) and all(old_key)
            in_new = bool(new_key) and all(new_key)
            if in_old and in_new and old_key == new_key:
                cost += write_units(item_size(new)) if old != new else 0
            else:
                cost += (write_units(item_size(old)) if in_old else 0) + (
                    write_units(item_size(new)) if in_new else 0
                )
        return cost
