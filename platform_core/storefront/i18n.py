"""Storefront wording in English and Simplified Chinese.

Templates read ``T.<key>`` (a per-language dict put in every storefront context);
Python code translates messages that come from services with :func:`t`. One table,
no compiled catalogues, so a theme author sees every string in one place.
"""
from __future__ import annotations

import re

from django.utils import translation

LANGUAGES = ("en", "zh-hans")

# key: (English, 简体中文)
MESSAGES: dict[str, tuple[str, str]] = {
    # navigation and chrome
    "home": ("Home", "首页"),
    "all": ("All", "全部"),
    "lookup": ("Find my order", "查单"),
    "account": ("My account", "我的账户"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出登录"),
    "register": ("Create account", "注册"),
    "footer": ("Instant delivery after payment", "自动发货，付款即得"),
    "hero_text": ("Game cards, memberships, activation keys — delivered automatically after payment.",
                  "游戏点卡、会员、激活码 —— 付款后自动发货。"),
    "search": ("Search", "搜索"),
    "search_placeholder": ("Search products", "搜索商品"),
    "categories": ("Categories", "分类"),
    "hot": ("Hot right now", "热销商品"),
    "products": ("Products", "商品"),
    "results_for": ("Results for", "搜索结果："),
    "no_products": ("No products here yet.", "暂无商品。"),
    "no_results": ("Nothing matches your search.", "没有找到相关商品。"),
    "coming_soon": ("Products are on their way.", "商品即将上架。"),
    "in_stock": ("In stock", "有货"),
    "sold_out": ("Sold out", "已售罄"),
    "members_only": ("Members", "会员专享"),
    "price_from": ("from %(price)s", "%(price)s 起"),
    "prev": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    # product page
    "choose_option": ("Option", "规格"),
    "quantity": ("Quantity", "数量"),
    "quantity_range": ("Buy %(min)s to %(max)s", "每单 %(min)s – %(max)s 件"),
    "unit_price": ("Unit price", "单价"),
    "total": ("Total", "合计"),
    "subtotal": ("Subtotal", "小计"),
    "discount": ("Discount", "优惠"),
    "wholesale": ("Buy more, pay less", "批发价"),
    "wholesale_from": ("From %(n)s pcs", "%(n)s 件起"),
    "per_unit": ("each", "每件"),
    "description": ("Details", "商品详情"),
    "contact": ("E-mail or phone", "邮箱或手机号"),
    "contact_help": ("We send the keys here and you need it to find the order.", "用于接收卡密和查询订单。"),
    "query_password": ("Query password", "查询密码"),
    "query_password_help": ("At least 4 characters; with it you can look the order up later.",
                            "至少 4 位，用于日后查询订单。"),
    "payment_method": ("Payment method", "支付方式"),
    "fee_plus": ("(+%(fee)s fee)", "（手续费 +%(fee)s）"),
    "to_pay": ("To pay", "实付"),
    "payment_fee": ("Payment fee", "支付手续费"),
    "amount_paid": ("Paid", "实付金额"),
    "buy": ("Buy now", "立即购买"),
    "signed_in_as": ("Signed in as", "当前账户"),
    "members_only_notice": ("Only members can buy this product.", "此商品仅限会员购买。"),
    "sign_in_to_buy": ("Sign in to buy", "登录后购买"),
    "no_payment": ("This shop cannot take payments right now.", "本店暂未开通支付。"),
    "sold_out_notice": ("This option is sold out. Please check back later.", "该规格已售罄，请稍后再来。"),
    "topup_note": ("We top up the account you enter after payment.", "付款后将为您填写的账户充值。"),
    "manual_note": ("The shop delivers this product by hand shortly after payment.", "付款后由店家尽快人工发货。"),
    "form_expired": ("This form has expired; please try again.", "页面已过期，请重试。"),
    "fix_errors": ("Please check the highlighted fields.", "请检查标出的内容。"),
    # order page
    "order": ("Order", "订单"),
    "order_number": ("Order number", "订单号"),
    "status": ("Status", "状态"),
    "placed_at": ("Placed", "下单时间"),
    "your_keys": ("Your keys", "您的卡密"),
    "copy": ("Copy", "复制"),
    "copied": ("Copied", "已复制"),
    "copy_all": ("Copy all", "全部复制"),
    "replaced": ("replaced", "已更换"),
    "pay": ("Pay", "去支付"),
    "pay_again": ("Pay now", "立即支付"),
    "cancel_order": ("Cancel order", "取消订单"),
    "cancel_confirm": ("Cancel this order?", "确定取消此订单？"),
    "pay_before": ("Please pay before", "请在此时间前付款："),
    "scan_to_pay": ("Scan or open this to pay", "扫码或打开以下内容付款"),
    "open_payment": ("Open payment", "打开支付"),
    "waiting_payment": ("Waiting for your payment — this page updates by itself.", "等待付款 —— 页面会自动刷新。"),
    "report_problem": ("Report a problem", "售后申请"),
    "reason": ("What went wrong?", "问题类型"),
    "message": ("Message", "说明"),
    "send": ("Send", "提交"),
    "reply": ("Reply", "回复"),
    "tickets": ("After-sales", "售后记录"),
    "ticket_status_open": ("Open", "处理中"),
    "ticket_status_answered": ("Answered", "已回复"),
    "ticket_status_closed": ("Closed", "已关闭"),
    "staff": ("Shop", "店家"),
    "you": ("You", "我"),
    "ticket_opened": ("Thanks — the shop will answer here.", "已提交，店家会在此回复您。"),
    "reply_sent": ("Reply sent.", "回复已发送。"),
    "order_cancelled": ("The order is cancelled.", "订单已取消。"),
    "keep_link": ("Bookmark this page or look the order up later with your contact and query password.",
                  "请收藏本页，或日后凭联系方式和查询密码查单。"),
    "account_label_default": ("Account", "充值账号"),
    "top_up_target": ("Top-up account", "充值账号"),
    "delivery_note": ("Delivery", "发货内容"),
    "wallet_topup_title": ("Wallet top-up", "余额充值"),
    "refunded_amount": ("Refunded", "已退款"),
    "payment_failed": ("The payment could not start", "无法发起支付"),
    # lookup
    "lookup_title": ("Find my order", "订单查询"),
    "lookup_help": ("Enter the order number, the contact you used and your query password.",
                    "请输入订单号、下单时的联系方式和查询密码。"),
    "lookup_failed": ("No order matches these details.", "没有符合这些信息的订单。"),
    "too_many_tries": ("Too many attempts. Please wait a minute and try again.", "尝试次数过多，请一分钟后再试。"),
    "find": ("Find", "查询"),
    # account
    "login_label": ("E-mail or phone", "邮箱或手机号"),
    "password": ("Password", "密码"),
    "name": ("Name (optional)", "昵称（可选）"),
    "login_failed": ("Wrong e-mail/phone or password.", "账号或密码错误。"),
    "have_account": ("Already have an account?", "已有账户？"),
    "no_account": ("No account yet?", "还没有账户？"),
    "my_orders": ("My orders", "我的订单"),
    "no_orders": ("No orders yet.", "暂无订单。"),
    "wallet": ("Wallet", "钱包"),
    "balance": ("Balance", "余额"),
    "wallet_history": ("Wallet history", "余额明细"),
    "no_wallet_entries": ("No wallet movements yet.", "暂无余额变动。"),
    "top_up": ("Top up", "充值"),
    "amount": ("Amount", "金额"),
    "no_topup_provider": ("Top-ups are not available in this shop.", "本店暂未开通余额充值。"),
    "entry_topup": ("Top-up", "充值"),
    "entry_payment": ("Payment", "消费"),
    "entry_refund": ("Refund", "退款"),
    "entry_adjustment": ("Adjustment", "调整"),
    "signed_out": ("You are signed out.", "已退出登录。"),
    "welcome": ("Welcome!", "欢迎！"),
}

STATUS_WORDS: dict[str, tuple[str, str]] = {
    "pending_payment": ("Waiting for payment", "待付款"),
    "paid": ("Paid — delivering now", "已付款，正在发货"),
    "awaiting_stock": ("Paid — your keys follow as soon as stock arrives", "已付款，到货后自动发货"),
    "processing": ("Paid — the shop is delivering your order", "已付款，店家正在处理"),
    "delivered": ("Delivered", "已发货"),
    "completed": ("Completed", "已完成"),
    "expired": ("Expired — not paid in time", "已过期（未及时付款）"),
    "cancelled": ("Cancelled", "已取消"),
    "refunded": ("Refunded", "已退款"),
}

REASONS: dict[str, tuple[str, str]] = {
    "invalid_key": ("The key does not work", "卡密无效"),
    "not_received": ("I did not receive it", "未收到货"),
    "other": ("Something else", "其他问题"),
}

# messages raised by services (English) → Chinese; patterns for the ones with numbers
SERVICE_MESSAGES: dict[str, str] = {
    "Enter a valid e-mail address or phone number.": "请输入有效的邮箱或手机号。",
    "Choose a query password of at least 4 characters to look the order up later.": "请设置至少 4 位的查询密码，用于日后查单。",
    "You have too many unpaid orders. Pay or cancel one first.": "您有太多未付款订单，请先支付或取消。",
    "Too many unpaid orders from your network. Pay or cancel one first.": "您的网络下未付款订单过多，请先支付或取消。",
    "Quantity must be a whole number.": "数量必须是整数。",
    "This product is not available.": "该商品不可购买。",
    "Sign in as a member to buy this product.": "请登录会员账户后购买。",
    "Sold out.": "已售罄。",
    "Choose what went wrong.": "请选择问题类型。",
    "Describe the problem (up to 4,000 characters).": "请描述问题（不超过 4000 字）。",
    "After-sales help is for paid orders.": "售后仅适用于已付款订单。",
    "This order already has open tickets; reply there.": "此订单已有处理中的售后，请在其中回复。",
    "Write a message (up to 4,000 characters).": "请填写内容（不超过 4000 字）。",
    "This ticket is closed.": "此售后已关闭。",
    "This order is not waiting for payment any more.": "此订单已不再等待付款。",
    "The reservation of this order ran out; place the order again.": "订单保留时间已过，请重新下单。",
    "Top-up amount must be between 0.01 and 100,000.": "充值金额须在 0.01 到 100,000 之间。",
    "An account with this e-mail or phone exists; sign in instead.": "该邮箱或手机号已注册，请直接登录。",
    "Your wallet balance is too low.": "余额不足。",
    "Enter a whole number.": "请输入整数。",
    "This field is required.": "此项为必填。",
    "Choose one of the options.": "请选择一项。",
    "Enter an amount like 10 or 9.90.": "请输入金额，例如 10 或 9.90。",
    "This password is too short. It must contain at least 10 characters.": "密码太短，至少需要 10 个字符。",
    "This password is too common.": "密码过于常见。",
    "This password is entirely numeric.": "密码不能全是数字。",
    "The payment method is not available for this order.": "此订单不能使用该支付方式。",
    "Your wallet balance is too low for this order. Top up your wallet or choose another payment method.":
        "余额不足，请先充值或选择其他支付方式。",
    "Sign in to pay from your wallet.": "请登录后使用余额支付。",
    "Try again in a moment.": "请稍后再试。",
    "This payment method is not available right now. Choose another one or try again later.":
        "该支付方式暂不可用，请选择其他支付方式或稍后再试。",
    "The payment was declined. Try another card or payment method.": "付款被拒绝，请换一张卡或其他支付方式。",
}
SERVICE_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^Only (\d+) left in stock\.$"), "库存仅剩 {0} 件。"),
    (re.compile(r"^Quantity must be between (\d+) and (\d+)\.$"), "数量须在 {0} 到 {1} 之间。"),
    (re.compile(r"^An order has 1 to (\d+) lines\.$"), "每个订单 1 到 {0} 行。"),
    (re.compile(r"^Enter a valid (.+)\.$"), "请输入有效的{0}。"),
    (re.compile(r"^An order that is .+ cannot become .+\.$"), "订单当前状态不允许此操作。"),
    (re.compile(r"^Ensure this value is greater than or equal to (\d+)\.$"), "不能小于 {0}。"),
    (re.compile(r"^Ensure this value is less than or equal to ([\d,]+)\.$"), "不能大于 {0}。"),
    # payment gateways (plugins.payments.gateway)
    (re.compile(r"^(.+) is not reachable\. Try again in a moment\.$"), "暂时无法连接 {0}，请稍后再试。"),
    (re.compile(r"^(.+) did not answer in time\. Try again in a moment\.$"), "{0} 响应超时，请稍后再试。"),
    (re.compile(r"^(.+) had a problem \(HTTP \d+\)\. Try again in a moment\.$"), "{0} 暂时出现问题，请稍后再试。"),
    (re.compile(r"^(.+) sent an unexpected answer\. Try again in a moment\.$"), "{0} 返回异常，请稍后再试。"),
    (re.compile(r"^(.+) declined the payment: (.+)$"), "{0} 拒绝了本次付款：{1}"),
]


def current_language() -> str:
    language = (translation.get_language() or "en").lower()
    return "zh-hans" if language.startswith("zh") else "en"


def _pick(pair: tuple[str, str], language: str | None = None) -> str:
    return pair[1] if (language or current_language()) == "zh-hans" else pair[0]


class Catalog(dict):
    """``T.key`` in templates; an unknown key shows itself instead of failing."""

    def __missing__(self, key):
        return key


_CATALOGS: dict[str, Catalog] = {
    language: Catalog({key: _pick(pair, language) for key, pair in MESSAGES.items()}) for language in LANGUAGES
}


def catalog(language: str | None = None) -> Catalog:
    return _CATALOGS[language or current_language()]


def msg(key: str, **params) -> str:
    text = catalog()[key]
    return text % params if params else text


def t(message: str) -> str:
    """A service's English message in the buyer's language."""
    message = str(message)
    if current_language() != "zh-hans":
        return message
    if message in SERVICE_MESSAGES:
        return SERVICE_MESSAGES[message]
    for pattern, template in SERVICE_PATTERNS:
        match = pattern.match(message)
        if match:
            return template.format(*match.groups())
    return message


def status_word(status: str) -> str:
    return _pick(STATUS_WORDS.get(status, (status, status)))


def reason_choices() -> list[tuple[str, str]]:
    return [(value, _pick(pair)) for value, pair in REASONS.items()]


def reason_word(reason: str) -> str:
    return _pick(REASONS.get(reason, (reason, reason)))
