"""The `herald` console script: one subcommand per role, `all` for every role at once, and
`rotate-keys` for re-sealing stored secrets under the newest key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import uvloop
from pymongo.errors import PyMongoError

from shared.config import SettingsError, StoreSettings, load_settings, load_store_settings
from shared.crypto import CredentialBox
from shared.logging import configure_logging
from shared.node import Role, RolesFactory, serve
from shared.rotation import rotate_keys
from shared.runtime import Runtime
from shared.store import Store, database_name

ROLES = ("scheduler", "executor", "recovery")

ENVIRONMENT_HELP = """\
environment (see README.md):
  MONGODB_URI / HERALD_MONGODB_URI   MongoDB connection string (required)
  REDIS_URL / HERALD_REDIS_URL       Redis URL (required)
  HERALD_ADMIN_TOKEN                 admin API bearer token (required)
  HERALD_SECRET_KEY                  Fernet key(s), newest first (required)
  HERALD_MONGODB_DB                  database when the URI names none [herald]
  HERALD_NODE_ID                     node identity [hostname-pid]
  HERALD_CLUSTER_NAME                Redis key namespace of this cluster [main]
  HERALD_LEADER_TTL_SECONDS          leader key ttl [10]
  HERALD_LEASE_TTL_SECONDS           per-job lock and lease ttl [60]
  HERALD_WINDOW_INTERVAL_SECONDS     window check interval [3600]
  HERALD_WINDOW_MARGIN_SECONDS       horizon beyond the interval [300]
  HERALD_LIGHT_SWEEP_SECONDS         light sweep interval [300]
  HERALD_FULL_SWEEP_CRON             full sweep schedule, UTC [30 3 * * *]
  HERALD_EXECUTOR_CONCURRENCY        jobs in flight per executor [32]
  HERALD_RETRY_BASE_SECONDS          retry backoff base [60]
  HERALD_RETRY_MAX_ATTEMPTS          attempts before a job fails [3]
  HERALD_NOTIFY_WEBHOOK_URL          where failures are announced [none]
  HERALD_EVENT_STREAMS_MAX           open /api/v1/events streams per node [500]
  HERALD_HTTP_KEEPALIVE_SECONDS      idle time before a connection is closed [75]
  HERALD_HTTP_HEADER_TIMEOUT_SECONDS time to send a request's headers [10]
  HERALD_LOG_LEVEL                   debug | info | warning | error [info]
"""

ROLE_HELP = {
    "scheduler": "join the leader election; the leader runs the window check; serve the admin API",
    "executor": "claim due jobs, publish them through providers, record the outcome",
    "recovery": "sweep for stuck, missed and half-published jobs and repair them",
    "all": "every role in one process (a laptop, the demo)",
}

ROTATE_HELP = ("re-seal every stored secret under the newest HERALD_SECRET_KEY, safely while "
               "the cluster runs; exit 1 if some value no configured key opens")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald",
        description="Herald publishes scheduled social-media posts on time and exactly once.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in ROLE_HELP.items():
        cmd = sub.add_parser(name, help=summary, description=summary, epilog=ENVIRONMENT_HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.add_argument("--http-port", type=_port, default=8080,
                         help="port of /healthz, /readyz, /metrics and the admin API [8080]")
        cmd.add_argument("--host", default="127.0.0.1",
                         help="address to bind; 0.0.0.0 in containers [127.0.0.1]")
        if name in ("executor", "all"):
            cmd.add_argument("--concurrency", type=_positive_int, default=None,
                             help="jobs in flight; overrides HERALD_EXECUTOR_CONCURRENCY")
    sub.add_parser("rotate-keys", help=ROTATE_HELP, description=ROTATE_HELP,
                   epilog=ENVIRONMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _port(value: str) -> int:
    port = _positive_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1-65535)")
    return port


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def build_roles(names: Sequence[str]) -> RolesFactory:
    def build(runtime: Runtime) -> list[Role]:
        from executor.role import ExecutorRole
        from recovery.role import RecoveryRole
        from scheduler.role import SchedulerRole

        classes: dict[str, Callable[[Runtime], Role]] = {
            "scheduler": SchedulerRole, "executor": ExecutorRole, "recovery": RecoveryRole,
        }
        return [classes[n](runtime) for n in names]

    return build


async def run_rotate_keys(settings: StoreSettings) -> int:
    """Print one line per collection and the ids of unreadable values; 1 when any remain."""
    store = Store(settings.mongodb_uri, database_name(settings.mongodb_uri, settings.mongodb_db))
    try:
        tallies = await rotate_keys(store, CredentialBox(settings.secret_key))
    except PyMongoError as exc:
        print(f"herald: rotate-keys: mongodb: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    for collection, tally in tallies.items():
        print(tally.line(collection))
        if tally.unreadable:
            ids = ", ".join(str(i) for i in tally.unreadable)
            print(f"{collection}: no configured key opens: {ids}")
    return 1 if any(t.unreadable for t in tallies.values()) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if getattr(args, "concurrency", None) is not None:
        overrides["HERALD_EXECUTOR_CONCURRENCY"] = args.concurrency
    try:
        if args.command == "rotate-keys":
            return uvloop.run(run_rotate_keys(load_store_settings()))
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.node_id)
    names = list(ROLES) if args.command == "all" else [args.command]
    return uvloop.run(serve(settings, names, build_roles(names), args.host, args.http_port))


if __name__ == "__main__":
    sys.exit(main())
