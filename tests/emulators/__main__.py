"""Run one platform emulator as its own process, for cluster tests and by hand:
`python -m tests.emulators mastodon --port 9101`. Each `tests/emulators/<platform>.py` names its
class `EMULATOR`. It prints its base URL on stdout once it listens."""

from __future__ import annotations

import argparse
import asyncio
import importlib

from tests.emulators.platform import PlatformEmulator, until_signalled


async def _serve(platform: str, host: str, port: int) -> None:
    emulator: PlatformEmulator = importlib.import_module(f"tests.emulators.{platform}").EMULATOR()
    url = await emulator.start(host, port)
    print(url, flush=True)
    try:
        await until_signalled()
    finally:
        await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("platform")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(args.platform, args.host, args.port))


if __name__ == "__main__":
    main()
