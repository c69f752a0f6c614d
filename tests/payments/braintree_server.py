"""A small local Braintree server: answers the SDK over HTTP with Braintree's documented XML
for sale, submit_for_settlement, void, refund, find, transaction search by order id and
dispute find, keeping transactions and disputes in memory."""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

TRANSACTION_XML = """<?xml version="1.0" encoding="UTF-8"?>
<transaction>
  <id>{id}</id>
  <status>{status}</status>
  <type>{type}</type>
  <amount>{amount}</amount>
  <currency-iso-code>{currency}</currency-iso-code>
  <order-id>{order_id}</order-id>
  <refund-ids type="array">{refund_ids}</refund-ids>
  <credit-card>
    <card-type>Visa</card-type>
    <last-4>1111</last-4>
    <bin>411111</bin>
    <expired type="boolean">false</expired>
  </credit-card>
</transaction>"""

SEARCH_IDS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<search-results>
  <page-size type="integer">50</page-size>
  <ids type="array">{ids}</ids>
</search-results>"""

DISPUTE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<dispute>
  <id>{id}</id>
  <status>{status}</status>
  <kind>chargeback</kind>
  <reason>fraud</reason>
  <amount-disputed>{amount}</amount-disputed>
  <currency-iso-code>{currency}</currency-iso-code>
  <transaction>
    <id>{transaction_id}</id>
    <amount>{amount}</amount>
  </transaction>
</dispute>"""

ERROR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<api-error-response>
  <errors><errors type="array"/></errors>
  <message>{message}</message>
</api-error-response>"""


@dataclass
class Transaction:
    id: str
    status: str
    amount: str
    type: str = "sale"
    currency: str = "EUR"
    order_id: str = ""
    refund_ids: list[str] = field(default_factory=list)

    def xml(self) -> str:
        refunds = "".join(f"<item>{escape(r)}</item>" for r in self.refund_ids)
        return TRANSACTION_XML.format(
            id=escape(self.id),
            status=self.status,
            type=self.type,
            amount=self.amount,
            currency=self.currency,
            order_id=escape(self.order_id),
            refund_ids=refunds,
        )


class BraintreeServer:
    def __init__(self) -> None:
        self.transactions: dict[str, Transaction] = {}
        self.dispute_calls: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str, str]] = []
        self.fail_with: tuple[int, str] | None = None  # (status, message) for the next calls
        # Disputes by id: (status, transaction id, amount), for dispute find.
        self.disputes: dict[str, tuple[str, str, str]] = {}
        # Create this many sales and then drop the connection instead of answering: a lost
        # answer, the sale done at the gateway.
        self.drop_sale_answers = 0
        self.delay = 0.0
        self._ids = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                server.requests.append((self.command, self.path, body))
                if server.delay:
                    time.sleep(server.delay)
                if server.fail_with is not None:
                    status, message = server.fail_with
                    return self._send(status, ERROR_XML.format(message=escape(message)))
                drop = (
                    server.drop_sale_answers > 0
                    and self.command == "POST"
                    and re.fullmatch(r"/merchants/[^/]+/transactions", self.path) is not None
                )
                status, reply = server.answer(self.command, self.path, body)
                if drop and status == 201:
                    server.drop_sale_answers -= 1
                    self.close_connection = True
                    return  # no answer at all: the client sees the connection closed
                self._send(status, reply)

            do_GET = do_POST = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _new_id(self) -> str:
        return f"bt{next(self._ids):06d}"

    def answer(self, method: str, path: str, body: str) -> tuple[int, str]:
        dispute = re.fullmatch(
            r"/merchants/[^/]+/disputes/([^/]+)/(accept|finalize|evidence)", path
        )
        if dispute:
            dispute_id, action = dispute.groups()
            self.dispute_calls.append((dispute_id, action, body))
            if action == "evidence":
                return 201, (
                    '<?xml version="1.0" encoding="UTF-8"?><evidence>'
                    f"<id>ev{len(self.dispute_calls)}</id><comment>x</comment>"
                    "</evidence>"
                )
            return 200, '<?xml version="1.0" encoding="UTF-8"?><success>true</success>'
        found = re.fullmatch(r"/merchants/[^/]+/disputes/([^/]+)", path)
        if found and method == "GET":
            if found[1] not in self.disputes:
                return 404, ""
            status, transaction_id, amount = self.disputes[found[1]]
            return 200, DISPUTE_XML.format(
                id=escape(found[1]),
                status=status,
                transaction_id=escape(transaction_id),
                amount=amount,
                currency="EUR",
            )
        if method == "POST" and path.endswith("/transactions/advanced_search_ids"):
            wanted = re.search(r"<order_id>\s*<is>([^<]*)</is>", body)
            ids = [
                t.id
                for t in self.transactions.values()
                if wanted is not None and t.order_id == wanted[1]
            ]
            return 200, SEARCH_IDS_XML.format(ids="".join(f"<item>{i}</item>" for i in ids))
        if method == "POST" and path.endswith("/transactions/advanced_search"):
            ids = re.findall(r"<item>([^<]*)</item>", body)
            items = "".join(
                self.transactions[i].xml().split("\n", 1)[1] for i in ids if i in self.transactions
            )
            return 200, (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f'<credit-card-transactions type="collection">{items}</credit-card-transactions>'
            )
        match = re.fullmatch(r"/merchants/[^/]+/transactions(?:/([^/]+)(?:/(\w+))?)?", path)
        if not match:
            return 404, ""
        reference, action = match.groups()
        amount = (re.search(r"<amount>([^<]*)</amount>", body) or [None, None])[1]
        order_id = (re.search(r"<order_id>([^<]*)</order_id>", body) or [None, ""])[1]
        if method == "POST" and reference is None:
            settle = re.search(r"<submit_for_settlement[^>]*>true<", body) is not None
            sale = Transaction(
                self._new_id(),
                "submitted_for_settlement" if settle else "authorized",
                amount or "0.00",
                order_id=order_id,
            )
            self.transactions[sale.id] = sale
            return 201, sale.xml()
        original = self.transactions.get(reference or "")
        if original is None:
            return 404, ""
        if method == "GET" and action is None:
            return 200, original.xml()
        if method == "PUT" and action == "submit_for_settlement":
            original.status = "submitted_for_settlement"
            original.amount = amount or original.amount
            return 200, original.xml()
        if method == "PUT" and action == "void":
            original.status = "voided"
            return 200, original.xml()
        if method == "POST" and action == "refund":
            refund = Transaction(
                self._new_id(),
                "submitted_for_settlement",
                amount or original.amount,
                type="credit",
                order_id=order_id,
            )
            self.transactions[refund.id] = refund
            original.refund_ids.append(refund.id)
            return 201, refund.xml()
        return 404, ""
