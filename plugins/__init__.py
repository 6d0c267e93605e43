"""Plugin framework: base classes, registry, per-shop configuration and hook dispatch.

Built-in plugins live in the sub-packages (payments/, marketing/, distribution/,
suppliers/) and use exactly the public API of this package, like third-party ones.
"""
