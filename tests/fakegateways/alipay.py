"""A fake Alipay open-platform gateway (``gateway.do``) for tests: real HTTP on 127.0.0.1.

It checks requests as Alipay does — the app must be registered with its application
public key, every request carries the common parameters and a valid RSA2 signature
(``sign`` excluded, empty values excluded, sorted) — signs every answer with its own
freshly generated Alipay key, and sends signed async notifications (form-encoded POST,
``sign``/``sign_type`` excluded from the signed string) to the trade's ``notify_url``.

Buyer actions: ``pay(out_trade_no)`` (sync notification, returns the shop's answer),
``refund_outside(out_trade_no, amount)`` (as from the Alipay merchant console).
"""
from __future__ import annotations

import io
import json
import secrets
import threading
import time
import zipfile
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from plugins.payments.alipay import signing
from tests.fakegateways._server import FakeGateway, RecordedRequest, Reply, route

BEIJING = timezone(timedelta(hours=8))
COMMON = ("app_id", "method", "charset", "sign_type", "timestamp", "version", "biz_content", "sign")
PAGE_METHODS = {"alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY", "alipay.trade.wap.pay": "QUICK_WAP_WAY"}


@lru_cache(maxsize=8)
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    """A fresh 2048-bit key per label and test run (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fen_of(text: str) -> int | None:
    whole, _, fraction = (text or "").partition(".")
    if not whole.isdigit() or len(fraction) > 2 or (fraction and not fraction.isdigit()):
        return None
    return int(whole) * 100 + int((fraction + "00")[:2])


def yuan_of(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def beijing_now(offset: timedelta = timedelta()) -> str:
    return (datetime.now(BEIJING) + offset).strftime("%Y-%m-%d %H:%M:%S")


class _GbkZipInfo(zipfile.ZipInfo):
    """A zip member named in GBK without the UTF-8 flag, as Alipay's bill zips are."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own hook
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


class FakeAlipay(FakeGateway):
    name = "alipay"

    def __init__(self):
        super().__init__()
        self.alipay_key = rsa_key("alipay-platform")
        self.apps: dict[str, rsa.RSAPublicKey] = {}
        self.seller_id = "2088" + "".join(str(secrets.randbelow(10)) for _ in range(12))
        self.trades: dict[str, dict] = {}
        self.refunds: dict[tuple[str, str], dict] = {}
        self.deliveries: list[dict] = []  # every notification sent: url, params, status, text
        self.hosts: dict[str, str] = {}  # host -> base URL (how notify URLs of test shops resolve)
        self._background: list[threading.Thread] = []
        # trade bills (对账单): one-time download links; days without a bill yet; a test spoils
        # a bill's detail text with ``bill_mangler(text) -> text`` or the zip with ``zip_mangler``
        self.bill_links: dict[str, tuple[float, bytes]] = {}
        self.unpublished_dates: set[str] = set()
        self.bill_mangler = None
        self.zip_mangler = None

    # --- set-up ------------------------------------------------------------------------------
    def register_app(self, app_id: str, app_public_key: rsa.RSAPublicKey) -> None:
        self.apps[app_id] = app_public_key

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    @property
    def alipay_public_key_text(self) -> str:
        return signing.public_key_text(self.alipay_key.public_key())

    # --- request checks ------------------------------------------------------------------------
    def _check(self, params: dict[str, str]) -> dict | None:
        """None if the request is well-formed and signed by the registered app, else the error node."""
        missing = [name for name in COMMON if not params.get(name)]
        if missing:
            return {"code": "40001", "msg": "Missing Required Arguments", "sub_code": f"isv.missing-{missing[0]}",
                    "sub_msg": f"缺少参数 {missing[0]}"}
        if params["app_id"] not in self.apps:
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id",
                    "sub_msg": "无效的AppID参数"}
        if params["sign_type"] != "RSA2" or params["charset"].lower() != "utf-8" or params["version"] != "1.0" \
                or params.get("format", "JSON").upper() != "JSON":
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-parameter",
                    "sub_msg": "sign_type/charset/version/format 无效"}
        try:
            sent = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            sent = None
        if sent is None or abs((datetime.now(BEIJING) - sent).total_seconds()) > 600:
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-timestamp",
                    "sub_msg": "非法的时间戳参数"}
        if not signing.verify(signing.content_to_sign(params), params["sign"], self.apps[params["app_id"]]):
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                    "sub_msg": "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"}
        try:
            biz = json.loads(params["biz_content"])
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-biz-content",
                    "sub_msg": "biz_content 不是 JSON 对象"}
        return None

    def _answer(self, method: str, node: dict, *, signed: bool = True) -> Reply:
        name = method.replace(".", "_") + "_response"
        node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        body = f'{{"{name}":{node_text}'
        if signed:
            body += f',"sign":"{signing.sign(node_text, self.alipay_key)}"'
        return Reply(200, (body + "}").encode(), {"Content-Type": "text/html;charset=utf-8"})

    @staticmethod
    def _params(request: RecordedRequest) -> dict[str, str]:
        params = {name: values[-1] for name, values in request.query.items()}
        if request.body:
            params.update(request.form())
        return params

    # --- the buyer's browser: page and wap checkout ----------------------------------------------
    @route("GET", r"/gateway\.do")
    def cashier(self, request):
        params = self._params(request)
        error = self._check(params)
        if error is None and params["method"] not in PAGE_METHODS:
            error = {"sub_code": "isv.invalid-method", "sub_msg": "不存在的方法名"}
        if error is not None:
            return Reply(400, f"<h1>错误代码 {error['sub_code']}</h1><p>{error['sub_msg']}</p>",
                         {"Content-Type": "text/html; charset=utf-8"})
        biz = json.loads(params["biz_content"])
        if biz.get("product_code") != PAGE_METHODS[params["method"]]:
            return Reply(400, "<h1>错误代码 invalid-product-code</h1>", {"Content-Type": "text/html; charset=utf-8"})
        trade, problem = self._open_trade(params, biz)
        if problem:
            return Reply(400, f"<h1>错误代码 {problem['sub_code']}</h1>", {"Content-Type": "text/html; charset=utf-8"})
        return Reply(200, f"<h1>支付宝收银台</h1><p>{trade['subject']}</p><p id='amount'>¥{trade['total_amount']}</p>",
                     {"Content-Type": "text/html; charset=utf-8"})

    def _open_trade(self, params: dict, biz: dict) -> tuple[dict | None, dict | None]:
        out_trade_no, amount = biz.get("out_trade_no", ""), fen_of(biz.get("total_amount", ""))
        if not out_trade_no or len(out_trade_no) > 64 or amount is None or amount <= 0 or not biz.get("subject"):
            return None, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.INVALID_PARAMETER",
                          "sub_msg": "参数无效"}
        trade = self.trades.get(out_trade_no)
        if trade is not None:
            if trade["status"] != "WAIT_BUYER_PAY":
                return None, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_HAS_SUCCESS",
                              "sub_msg": "交易已被支付"}
            if trade["total"] != amount:
                return None, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.CONTEXT_INCONSISTENT",
                              "sub_msg": "交易信息被篡改"}
            return trade, None
        trade = self.trades[out_trade_no] = {
            "app_id": params["app_id"], "out_trade_no": out_trade_no, "total": amount,
            "total_amount": biz["total_amount"], "subject": biz["subject"], "status": "WAIT_BUYER_PAY",
            "trade_no": datetime.now(BEIJING).strftime("%Y%m%d") + "22001" + secrets.token_hex(6).upper()[:11],
            "notify_url": params.get("notify_url", ""), "return_url": params.get("return_url", ""),
            "method": params["method"], "refunded": 0, "qr_code": "https://qr.alipay.com/bax0" + secrets.token_hex(10),
        }
        return trade, None

    # --- the API ------------------------------------------------------------------------------
    @route("POST", r"/gateway\.do")
    def api(self, request):
        params = self._params(request)
        if not request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self._answer("error", {"code": "40002", "msg": "Invalid Arguments",
                                          "sub_code": "isv.invalid-content-type"}, signed=False)
        error = self._check(params)
        method = params.get("method", "")
        if error is not None:
            body = json.dumps({"error_response": error}, ensure_ascii=False)
            return Reply(200, body.encode(), {"Content-Type": "text/html;charset=utf-8"})
        biz = json.loads(params["biz_content"])
        handler = {
            "alipay.trade.precreate": self._precreate, "alipay.trade.query": self._query,
            "alipay.trade.refund": self._refund, "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }.get(method)
        if handler is None:
            body = json.dumps({"error_response": {"code": "40004", "msg": "Business Failed",
                                                  "sub_code": "isv.invalid-method"}})
            return Reply(200, body.encode(), {"Content-Type": "text/html;charset=utf-8"})
        return self._answer(method, handler(params, biz))

    def _precreate(self, params, biz) -> dict:
        trade, problem = self._open_trade(params, biz)
        if problem:
            return problem
        return {"code": "10000", "msg": "Success", "out_trade_no": trade["out_trade_no"], "qr_code": trade["qr_code"]}

    def _trade_for(self, params, biz) -> dict | None:
        trade = self.trades.get(biz.get("out_trade_no", ""))
        return trade if trade is not None and trade["app_id"] == params["app_id"] else None

    def _query(self, params, biz) -> dict:
        trade = self._trade_for(params, biz)
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}
        return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
                "trade_status": trade["status"], "total_amount": trade["total_amount"],
                "buyer_logon_id": "buy***@example.com"}

    def _refund(self, params, biz) -> dict:
        trade = self._trade_for(params, biz)
        if trade is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"}
        request_no = biz.get("out_request_no") or trade["out_trade_no"]
        amount = fen_of(biz.get("refund_amount", ""))
        done = self.refunds.get((trade["out_trade_no"], request_no))
        if done is not None:  # the same out_request_no: answered again, no money moves
            if done["amount"] != amount:
                return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                        "sub_msg": "退款金额与原请求不一致"}
            return self._refund_node(trade, fund_change="N")
        if trade["status"] not in ("TRADE_SUCCESS",):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR",
                    "sub_msg": "交易状态不合法"}
        if amount is None or amount <= 0 or amount > trade["total"] - trade["refunded"]:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                    "sub_msg": "退款金额超限"}
        self._record_refund(trade, request_no, amount)
        return self._refund_node(trade, fund_change="Y")

    def _refund_node(self, trade: dict, *, fund_change: str) -> dict:
        return {"code": "10000", "msg": "Success", "trade_no": trade["trade_no"], "out_trade_no": trade["out_trade_no"],
                "fund_change": fund_change, "refund_fee": yuan_of(trade["refunded"]),
                "buyer_logon_id": "buy***@example.com"}

    def _record_refund(self, trade: dict, request_no: str, amount: int, *, notify: bool = True) -> None:
        self.refunds[(trade["out_trade_no"], request_no)] = {"amount": amount, "at": beijing_now()}
        trade["refunded"] += amount
        if trade["refunded"] == trade["total"]:
            trade["status"] = "TRADE_CLOSED"
        # Alipay tells the notify_url about the refund afterwards
        params = self.notification_params(trade["out_trade_no"], out_biz_no=request_no,
                                          refund_fee=yuan_of(trade["refunded"]), gmt_refund=beijing_now())
        if notify:
            self._later(trade["notify_url"], params)

    def _refund_query(self, params, biz) -> dict:
        trade = self._trade_for(params, biz)
        done = self.refunds.get((biz.get("out_trade_no", ""), biz.get("out_request_no", "")))
        if trade is None or done is None:  # Alipay answers "success" with no refund in it
            return {"code": "10000", "msg": "Success"}
        return {"code": "10000", "msg": "Success", "out_trade_no": trade["out_trade_no"],
                "out_request_no": biz["out_request_no"], "total_amount": trade["total_amount"],
                "refund_amount": yuan_of(done["amount"]), "refund_status": "REFUND_SUCCESS"}

    # --- trade bills (对账单) -------------------------------------------------------------------
    BILL_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
                   "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,"
                   "券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")

    def _bill_url(self, params, biz) -> dict:
        bill_date = biz.get("bill_date", "")
        try:
            day = datetime.strptime(bill_date, "%Y-%m-%d").date()
        except ValueError:
            day = None
        if biz.get("bill_type") not in ("trade", "signcustomer") or day is None:
            return {"code": "40004", "msg": "Business Failed", "sub_code": "isp.invalid_arguments",
                    "sub_msg": "参数不合法"}
        # the fake publishes at once (tests reconcile today); a test holds a day back
        if bill_date in self.unpublished_dates or day > datetime.now(BEIJING).date():
            return {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist",
                    "sub_msg": "账单不存在"}
        token = secrets.token_hex(16)
        self.bill_links[token] = (time.time() + 30, self.bill_zip(params["app_id"], bill_date))
        return {"code": "10000", "msg": "Success",
                "bill_download_url": f"{self.base_url}/downloadBillFile.resource?bizType=trade&fileId={token}"}

    def bill_detail(self, app_id: str, bill_date: str) -> str:
        """The detail CSV (业务明细) of the day: trades paid and refunds made that China day."""
        rows = []
        for trade in self.trades.values():
            if trade["app_id"] != app_id:
                continue
            cells = [f"{trade['trade_no']}\t", f"{trade['out_trade_no']}\t"]
            if (trade.get("paid_at") or "").startswith(bill_date):
                rows.append(",".join(cells + ["交易", trade["subject"], trade["paid_at"], trade["paid_at"], "", "", "",
                                              "", "buy***@example.com", trade["total_amount"], trade["total_amount"],
                                              "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", "",
                                              "-0.12", "0.00", ""]))
            for (out_trade_no, request_no), refund in self.refunds.items():
                if out_trade_no == trade["out_trade_no"] and refund["at"].startswith(bill_date):
                    amount = "-" + yuan_of(refund["amount"])
                    rows.append(",".join(cells + ["退款", trade["subject"], trade["paid_at"], refund["at"], "", "", "",
                                                  "", "buy***@example.com", amount, amount, "0.00", "0.00", "0.00",
                                                  "0.00", "0.00", "", "0.00", "0.00", f"{request_no}\t", "0.00",
                                                  "0.00", ""]))
        trades = sum(1 for row in rows if ",交易," in row)
        chinese_day = bill_date.replace("-", "年", 1).replace("-", "月", 1) + "日"
        text = "\n".join([
            "#支付宝业务明细查询", f"#账号：[{self.seller_id}0156]",
            f"#起始日期：[{chinese_day} 00:00:00]   终止日期：[{chinese_day} 23:59:59]",
            "#-----------------------------------------业务明细列表----------------------------------------",
            self.BILL_HEADER, *rows,
            "#-----------------------------------------业务明细列表结束------------------------------------",
            f"#交易合计：{trades}笔，退款合计：{len(rows) - trades}笔", f"#导出时间：[{beijing_now()}]", ""])
        return self.bill_mangler(text) if self.bill_mangler else text

    def backdate(self, days: int = 1) -> None:
        """Move every payment and refund so far ``days`` earlier (China time), so a test
        reconciles a finished day whatever the hour."""
        def earlier(text: str) -> str:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S") - timedelta(days=days)
            return moment.strftime("%Y-%m-%d %H:%M:%S")
        with self.lock:
            for trade in self.trades.values():
                if trade.get("paid_at"):
                    trade["paid_at"] = earlier(trade["paid_at"])
            for refund in self.refunds.values():
                refund["at"] = earlier(refund["at"])

    def bill_zip(self, app_id: str, bill_date: str) -> bytes:
        stem = f"{self.seller_id}0156_{bill_date.replace('-', '')}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, text in ((f"{stem}_业务明细.csv", self.bill_detail(app_id, bill_date)),
                               (f"{stem}_业务明细(汇总).csv", "#支付宝业务明细汇总\n门店编号,门店名称,交易订单总笔数\n")):
                info = _GbkZipInfo(name, date_time=(2026, 1, 1, 9, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, text.encode("gbk"))
        data = buffer.getvalue()
        return self.zip_mangler(data) if self.zip_mangler else data

    @route("GET", r"/downloadBillFile\.resource")
    def download_bill(self, request):
        token = request.query.get("fileId", [""])[0]
        expires, data = self.bill_links.pop(token, (0.0, b""))  # one download per link
        if time.time() > expires:
            return Reply(404, "<h1>文件不存在或已过期</h1>", {"Content-Type": "text/html; charset=utf-8"})
        return Reply(200, data, {"Content-Type": "application/oct-stream",
                                 "Content-Disposition": "attachment; filename=bill.csv.zip"})

    # --- notifications ---------------------------------------------------------------------------
    def notification_params(self, out_trade_no: str, **overrides) -> dict[str, str]:
        """The fields of a notification for the trade as it stands, signed; ``overrides``
        change fields *before* signing (``None`` drops one)."""
        trade = self.trades[out_trade_no]
        params = {
            "gmt_create": beijing_now(), "charset": "utf-8", "seller_email": "shop@example.com",
            "subject": trade["subject"], "buyer_id": "2088102177846875", "invoice_amount": trade["total_amount"],
            "notify_id": "2020" + secrets.token_hex(14), "fund_bill_list": '[{"amount":"%s","fundChannel":"ALIPAYACCOUNT"}]'
            % trade["total_amount"], "notify_type": "trade_status_sync", "trade_status": trade["status"],
            "receipt_amount": trade["total_amount"], "buyer_pay_amount": trade["total_amount"],
            "app_id": trade["app_id"], "seller_id": self.seller_id, "gmt_payment": beijing_now(),
            "notify_time": beijing_now(), "version": "1.0", "out_trade_no": out_trade_no,
            "total_amount": trade["total_amount"], "trade_no": trade["trade_no"], "auth_app_id": trade["app_id"],
            "point_amount": "0.00", "sign_type": "RSA2",
        }
        params.update(overrides)
        params = {name: value for name, value in params.items() if value is not None}
        return self.sign_notification(params)

    def sign_notification(self, params: dict[str, str], key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        params = {name: value for name, value in params.items() if name != "sign"}
        params["sign"] = signing.sign(signing.notification_content(params), key or self.alipay_key)
        return params

    def resolve(self, url: str) -> str:
        parts = urlsplit(url)
        base = self.hosts.get(parts.hostname or "")
        if base is None:
            return url
        mapped = urlsplit(base)
        return urlunsplit((mapped.scheme, mapped.netloc, parts.path, parts.query, ""))

    def deliver(self, url: str, params: dict[str, str]) -> requests.Response:
        response = requests.post(self.resolve(url), data=urlencode(params).encode(), timeout=15,
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                                 allow_redirects=False)
        with self.lock:
            self.deliveries.append({"url": url, "params": params, "status": response.status_code,
                                    "text": response.text})
        return response

    def _later(self, url: str, params: dict[str, str]) -> None:
        if not url:
            return

        def send():
            try:
                self.deliver(url, params)
            except requests.RequestException:
                pass  # Alipay would try again later; tests look at ``deliveries``

        thread = threading.Thread(target=send, daemon=True)
        self._background.append(thread)
        thread.start()

    def settle(self, timeout: float = 10) -> None:
        """Wait until every background notification has its answer."""
        for thread in list(self._background):
            thread.join(timeout)

    # --- buyer and console actions ---------------------------------------------------------------
    def pay(self, out_trade_no: str, *, notify: bool = True) -> requests.Response | None:
        """The buyer pays: the trade succeeds and Alipay notifies the shop at once
        (``notify=False``: the notification is lost on the way)."""
        with self.lock:
            trade = self.trades[out_trade_no]
            assert trade["status"] == "WAIT_BUYER_PAY", trade["status"]
            trade["status"], trade["paid_at"] = "TRADE_SUCCESS", beijing_now()
            params = self.notification_params(out_trade_no)
        return self.deliver(trade["notify_url"], params) if notify else None

    def scan(self, qr_code: str) -> str:
        """The buyer's Alipay app reads a QR code: the out_trade_no it belongs to."""
        return next(no for no, trade in self.trades.items() if trade["qr_code"] == qr_code)

    def refund_outside(self, out_trade_no: str, amount: int, *, notify: bool = True) -> str:
        """A refund made in the Alipay merchant console, not through Kameng
        (``notify=False``: its notification is lost on the way)."""
        with self.lock:
            request_no = "HZ" + secrets.token_hex(8)
            self._record_refund(self.trades[out_trade_no], request_no, amount, notify=notify)
        return request_no
