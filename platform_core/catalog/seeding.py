"""The sample catalog a new shop starts with (when asked for): a few categories,
products of each type, and demo card keys, so the storefront works at once."""
from __future__ import annotations

import secrets

from django.db import connection

from platform_core.catalog.models import SKU, Category, Product, WholesalePrice
from platform_core.inventory.models import CardKey
from platform_core.inventory.stock import KeyCipher, recount

KEYS_PER_SKU = 25


def _demo_keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{secrets.token_hex(4).upper()}-{secrets.token_hex(4).upper()}" for _ in range(count)]


def seed_sample_catalog(shop, *, sample_catalog: bool) -> None:
    if not sample_catalog:
        return
    zh = shop.language == "zh-hans"
    cipher = KeyCipher(connection.tenant)

    def category(name_zh, name_en, parent=None, order=0):
        return Category.objects.create(name=name_zh if zh else name_en, parent=parent, sort_order=order)

    def product(cat, name_zh, name_en, skus, *, kind=Product.Type.CARD_KEY, loop=False, desc_zh="", desc_en="",
                **fields):
        item = Product.objects.create(category=cat, name=name_zh if zh else name_en, type=kind,
                                      description=desc_zh if zh else desc_en, **fields)
        for order, (sku_zh, sku_en, price) in enumerate(skus):
            sku = SKU.objects.create(product=item, name=sku_zh if zh else sku_en, price=price, sort_order=order)
            if kind == Product.Type.CARD_KEY:
                secrets_ = [f"DOWNLOAD-{secrets.token_hex(6).upper()}"] if loop else \
                    _demo_keys(f"DEMO{sku.pk}", KEYS_PER_SKU)
                CardKey.objects.bulk_create([
                    CardKey(sku=sku, product_id_copy=item.pk, secret=cipher.encrypt(s), fingerprint=cipher.fingerprint(s),
                            is_loop=loop) for s in secrets_
                ])
                recount(sku.pk)
        return item

    games = category("游戏点卡", "Game cards", order=0)
    steam = category("Steam", "Steam", parent=games, order=0)
    mobile = category("手游充值", "Mobile games", parent=games, order=1)
    video = category("视频会员", "Video memberships", order=1)
    software = category("软件激活码", "Software keys", order=2)

    card = product(steam, "Steam 钱包充值卡", "Steam wallet card",
                   [("50 元", "50 CNY", 4800), ("100 元", "100 CNY", 9500), ("200 元", "200 CNY", 18800)],
                   desc_zh="<p>官方充值卡，付款后自动发货，卡密即时显示。</p>",
                   desc_en="<p>Official wallet card. Delivered automatically the moment you pay.</p>")
    WholesalePrice.objects.create(sku=card.skus.get(price=9500), min_quantity=5, unit_price=9300)
    product(mobile, "王者荣耀 点券", "Honor of Kings vouchers",
            [("60 点券", "60 vouchers", 600), ("300 点券", "300 vouchers", 2900)], low_stock_threshold=5)
    product(video, "视频会员 月卡", "Video membership",
            [("30 天", "30 days", 1500), ("90 天", "90 days", 4200), ("365 天", "365 days", 14800)])
    product(mobile, "手机话费直充", "Mobile phone top-up", [("50 元", "50 CNY", 4980), ("100 元", "100 CNY", 9950)],
            kind=Product.Type.TOPUP, account_pattern=r"1[3-9]\d{9}", account_label="手机号" if zh else "Phone number")
    product(software, "办公软件 激活码", "Office suite licence key", [("永久版", "Lifetime", 9900)],
            desc_zh="<p>一机一码，激活说明随卡密发送。</p>", desc_en="<p>One key per device.</p>")
    product(software, "字体包 下载码", "Font pack download code", [("通用", "Standard", 300)], loop=True)
