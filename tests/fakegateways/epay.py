"""A fake EPay (易支付) site for tests: real HTTP on 127.0.0.1.

It checks requests as an EPay site does — registered ``pid``, the MD5 signature over the
sorted non-empty parameters (``sign``/``sign_type`` excluded) plus the merchant key,
``money`` in yuan with at most two decimals, a known ``type`` — answers the order query
``api.php?act=order&pid=…&key=…&out_trade_no=…`` and refunds ``api.php?act=refund``, and
sends signed notifies as GET requests to ``notify_url``, the way most EPay sites do.

Buyer actions: ``pay(out_trade_no)`` (sync notify, returns the shop's answer).
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
import requests

from plugins.payments.epay import signing
from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route

BEIJING = timezone(timedelta(hours=8))
MONEY_RE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
TYPES = ("alipay", "wxpay", "qqpay")


def fen_of(money: str) -> int:
    whole, _, fraction = money.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def now_text() -> str:
    return datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class FakeEPay(FakeGateway):
    name = "epay"

    def __init__(self):
        super().__init__()
        self.merchants: dict[str, str] = {}  # pid -> key
        self.orders: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.deliveries: list[dict] = []

    def register_merchant(self, pid: str, key: str) -> None:
        self.merchants[pid] = key

    @staticmethod
    def _params(request: RecordedRequest) -> dict[str, str]:
        params = {name: values[-1] for name, values in request.query.items()}
        if request.method == "POST" and request.body:
            params.update(request.form())
        return params

    def _check_signed(self, params: dict[str, str]) -> str | None:
        """None when the order request is well-formed and signed with the merchant's key."""
        key = self.merchants.get(params.get("pid", ""))
        if key is None:
            return "商户不存在"
        if (params.get("sign_type") or "MD5") != "MD5" or not signing.verify(params, key):
            return "签名校验失败"
        for name in ("type", "out_trade_no", "notify_url", "name", "money"):
            if not params.get(name):
                return f"{name} 不能为空"
        if params["type"] not in TYPES:
            return "支付方式不存在"
        if not MONEY_RE.match(params["money"]) or fen_of(params["money"]) <= 0:
            return "金额不合法"
        return None

    def _open(self, params: dict[str, str]) -> tuple[dict | None, str | None]:
        existing = self.orders.get(params["out_trade_no"])
        if existing is not None:
            if existing["money"] != params["money"] or existing["pid"] != params["pid"]:
                return None, "订单号已存在"
            return existing, None
        order = self.orders[params["out_trade_no"]] = {
            "pid": params["pid"], "out_trade_no": params["out_trade_no"], "type": params["type"],
            "name": params["name"], "money": params["money"], "notify_url": params["notify_url"],
            "return_url": params.get("return_url", ""), "status": 0, "addtime": now_text(), "endtime": "",
            "trade_no": datetime.now(BEIJING).strftime("%Y%m%d%H%M%S") + str(secrets.randbelow(10**5)).zfill(5),
            "refunded": 0,
        }
        return order, None

    # --- checkout ------------------------------------------------------------------------------
    @route("GET", r"/submit\.php")
    def submit_get(self, request):
        return self._submit(request)

    @route("POST", r"/submit\.php")
    def submit_post(self, request):
        return self._submit(request)

    def _submit(self, request):
        params = self._params(request)
        problem = self._check_signed(params)
        order = None
        if problem is None:
            order, problem = self._open(params)
        if problem:
            return Reply(400, f"<h3>{problem}</h3>", {"Content-Type": "text/html; charset=utf-8"})
        return Reply(200, f"<h1>收银台</h1><p>{order['name']}</p><p id='money'>¥{order['money']}</p>",
                     {"Content-Type": "text/html; charset=utf-8"})

    @route("POST", r"/mapi\.php")
    def mapi(self, request):
        params = self._params(request)
        problem = self._check_signed(params)
        order = None
        if problem is None:
            order, problem = self._open(params)
        if problem:
            return {"code": -1, "msg": problem}
        answer = {"code": 1, "msg": "", "trade_no": order["trade_no"]}
        if order["type"] == "wxpay":
            answer["qrcode"] = f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}"
        else:
            answer["payurl"] = f"{self.base_url}/pay/{order['trade_no']}"
        return answer

    # --- api.php: the order query and refunds --------------------------------------------------
    @route("GET", r"/api\.php")
    def api_get(self, request):
        params = self._params(request)
        if self.merchants.get(params.get("pid", "")) != params.get("key") or not params.get("key"):
            return {"code": -3, "msg": "KEY校验失败"}
        if params.get("act") == "query":
            return {"code": 1, "pid": params["pid"], "active": 1, "money": "0.00", "orders": len(self.orders)}
        if params.get("act") != "order":
            return {"code": -5, "msg": "No Act!"}
        order = self.orders.get(params.get("out_trade_no", ""))
        if order is None or order["pid"] != params["pid"]:
            return {"code": -1, "msg": "订单号不存在"}
        return {"code": 1, "msg": "查询订单号成功！", "trade_no": order["trade_no"], "out_trade_no": order["out_trade_no"],
                "type": order["type"], "pid": order["pid"], "addtime": order["addtime"], "endtime": order["endtime"],
                "name": order["name"], "money": order["money"], "status": order["status"]}

    @route("POST", r"/api\.php")
    def api_post(self, request):
        params = self._params(request)
        if params.get("act") != "refund":
            return {"code": -5, "msg": "No Act!"}
        if self.merchants.get(params.get("pid", "")) != params.get("key") or not params.get("key"):
            return {"code": -3, "msg": "KEY校验失败"}
        order = self.orders.get(params.get("out_trade_no", ""))
        if order is None or order["pid"] != params["pid"] or order["status"] != 1:
            return {"code": -1, "msg": "订单不存在或未支付"}
        money = params.get("money", "")
        if not MONEY_RE.match(money):
            return {"code": -1, "msg": "金额不合法"}
        fen = fen_of(money)
        if fen <= 0 or fen > fen_of(order["money"]) - order["refunded"]:
            return {"code": -1, "msg": "退款金额超过可退金额"}
        order["refunded"] += fen
        self.refunds.append({"out_trade_no": order["out_trade_no"], "money": money})
        return {"code": 1, "msg": "退款成功"}

    # --- notifies ------------------------------------------------------------------------------
    def notify_params(self, out_trade_no: str, *, key: str | None = None, **overrides) -> dict[str, str]:
        """The notify for an order as it stands, signed (with ``key`` if given); ``overrides``
        change fields before signing (``None`` drops one)."""
        order = self.orders[out_trade_no]
        params = {"pid": order["pid"], "trade_no": order["trade_no"], "out_trade_no": out_trade_no,
                  "type": order["type"], "name": order["name"], "money": order["money"],
                  "trade_status": "TRADE_SUCCESS", **overrides}
        params = {name: value for name, value in params.items() if value is not None}
        return signing.sign_params(params, key or self.merchants[order["pid"]])

    def deliver(self, url: str, params: dict[str, str]) -> requests.Response:
        response = requests.get(url, params=params, timeout=15, allow_redirects=False)
        with self.lock:
            self.deliveries.append({"url": url, "params": params, "status": response.status_code,
                                    "text": response.text})
        return response

    def pay(self, out_trade_no: str, *, notify: bool = True) -> requests.Response | None:
        with self.lock:
            order = self.orders[out_trade_no]
            assert order["status"] == 0
            order.update(status=1, endtime=now_text())
            params = self.notify_params(out_trade_no)
        return self.deliver(order["notify_url"], params) if notify else None
