"""``python -m sandbox_gateway [--host H] [--port P] [--db PATH] [--public-url URL] [--strict]``"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from sandbox_gateway.server import create_server, default_db_path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox_gateway", description="Kameng sandbox payment gateway")
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8001")))
    parser.add_argument("--db", default=os.environ.get("SANDBOX_DB") or str(default_db_path()),
                        help="SQLite file (default: $KAMENG_STATE_DIR/sandbox-gateway.sqlite3)")
    parser.add_argument("--public-url", default=os.environ.get("SANDBOX_PUBLIC_URL", ""),
                        help="base URL buyers' browsers reach the pay page at (default: the API request's host)")
    parser.add_argument("--strict", action="store_true",
                        help="only accept API keys registered with --merchant (otherwise any sk_sandbox_ key works)")
    parser.add_argument("--merchant", action="append", default=[], metavar="API_KEY",
                        help="register this API key (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = create_server(args.host, args.port, db_path=args.db, public_url=args.public_url,
                               auto_register=not args.strict)
    except OSError as exc:
        print(f"sandbox gateway: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for key in args.merchant:
        try:
            server.app.add_merchant(key)
        except ValueError as exc:
            print(f"sandbox gateway: {exc}", file=sys.stderr)
            return 2
    # SIGTERM (the supervisor stopping us) ends serve_forever like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"sandbox gateway listening on {server.base_url} (database {args.db})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
