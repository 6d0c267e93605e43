"""The hosted pay page: plain HTML, inline CSS, no external assets, phone first."""
from __future__ import annotations

from html import escape

ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF",
                "XOF", "XPF"}
THREE_DECIMAL = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}

CSS = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f3f4f6;color:#111827}main{max-width:420px;margin:0 auto;padding:24px 16px}
.card{background:#fff;border-radius:14px;padding:24px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.badge{display:inline-block;font-size:12px;font-weight:600;letter-spacing:.04em;text-transform:uppercase;
background:#fef3c7;color:#92400e;border-radius:999px;padding:2px 10px}
h1{font-size:18px;margin:12px 0 4px}.amount{font-size:34px;font-weight:700;margin:8px 0 16px}
dl{margin:0 0 20px;font-size:14px;color:#4b5563}dt{float:left;clear:left;width:96px}dd{margin:0 0 6px 96px;
word-break:break-all}button,.button{display:block;width:100%;border:0;border-radius:10px;padding:14px;
font:inherit;font-size:17px;font-weight:600;cursor:pointer;text-align:center;text-decoration:none;margin-top:10px}
#pay,.button{background:#16a34a;color:#fff}#fail{background:#fff;color:#b91c1c;border:1px solid #fca5a5}
.status{font-size:20px;font-weight:700;margin:16px 0}.succeeded{color:#15803d}.failed{color:#b91c1c}
p.note{font-size:13px;color:#6b7280;margin-top:18px}
"""


def format_amount(amount: int, currency: str) -> str:
    """Minor units to a display string, in integers only (no floats near money)."""
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10 ** digits)
    text = f"{major:,}" + (f".{minor:0{digits}d}" if digits else "")
    return f"{sign}{text} {currency}"


def _layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def pay_page(payment: dict) -> str:
    amount = format_amount(payment["amount"], payment["currency"])
    details = (
        f"<dl><dt>Reference</dt><dd id=\"reference\">{escape(payment['reference'])}</dd>"
        + (f"<dt>For</dt><dd>{escape(payment['description'])}</dd>" if payment["description"] else "")
        + f"<dt>Payment</dt><dd>{escape(payment['id'])}</dd></dl>"
    )
    head = (f"<span class=\"badge\">Sandbox · no real money</span><h1>Pay the shop</h1>"
            f"<div class=\"amount\" id=\"amount\">{escape(amount)}</div>{details}")
    if payment["status"] == "pending":
        pid = escape(payment["id"])
        actions = (
            f"<form method=\"post\" action=\"/pay/{pid}/pay\"><button id=\"pay\" type=\"submit\">Pay {escape(amount)}"
            f"</button></form>"
            f"<form method=\"post\" action=\"/pay/{pid}/fail\"><button id=\"fail\" type=\"submit\">Fail the payment"
            f"</button></form>"
            "<p class=\"note\">This is the Kameng sandbox gateway. <b>Pay</b> completes the payment, "
            "<b>Fail</b> declines it; the shop is told either way.</p>"
        )
    else:
        label = {"succeeded": "Payment completed", "failed": "Payment failed"}[payment["status"]]
        actions = f"<div class=\"status {payment['status']}\" id=\"status\">{label}</div>"
        if payment["return_url"]:
            actions += f"<a class=\"button\" href=\"{escape(payment['return_url'])}\">Back to the shop</a>"
    return _layout(f"Pay {amount}", f"<div class=\"card\">{head}{actions}</div>")


def not_found_page() -> str:
    return _layout("Payment not found", "<div class=\"card\"><h1>Payment not found</h1>"
                                        "<p>This payment link is not valid.</p></div>")
