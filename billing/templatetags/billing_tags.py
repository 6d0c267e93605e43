from django import template

from platform_core.money import format_minor

register = template.Library()


@register.filter
def money(amount, currency):
    return format_minor(int(amount or 0), currency or "CNY")


@register.filter
def bp(value):
    return f"{int(value or 0) / 100:g} %"
