"""Wallet payments: signed-in customers pay from their shop wallet balance."""
