"""The real TelegramProvider against the Bot API emulator over loopback sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shared.models import Content, ThreadItem
from shared.providers.base import (
    AuthRevoked,
    MediaInfo,
    MemoryCheckpoints,
    OutcomeUnknown,
    Permanent,
    Published,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.providers.telegram import TelegramProvider
from tests.emulators.telegram import (
    BOT_ID,
    CHANNEL_ID,
    CHANNEL_USERNAME,
    GROUP_ID,
    TelegramEmulator,
)
from tests.integration.media_threads import Scripted, image, media_request, video
from tests.integration.platform_support import Serve, control, publish_request, running


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    async with running(TelegramEmulator) as e:
        yield e


@pytest.fixture
def provider(session: aiohttp.ClientSession) -> TelegramProvider:
    return TelegramProvider(session)


def request_for(emulator: TelegramEmulator, text: str = "Hello, channel", *,
                token: str | None = None, **config: Any) -> PublishRequest:
    account = emulator.account()
    token = token or account["credentials"]["bot_token"]
    return publish_request(account, text, credentials={"bot_token": token}, **config)


# --- publishing -------------------------------------------------------------------------------


async def test_send_message_to_a_public_channel_links_the_message(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    published = await provider.publish(request_for(emulator, "Bonjour 👋"))
    assert published == Published("1", f"https://t.me/{CHANNEL_USERNAME}/1")
    [post] = emulator.posts
    assert (post["text"], post["chat_id"], post["message_id"]) == ("Bonjour 👋", CHANNEL_ID, 1)
    [call] = emulator.received
    assert call["method"] == "sendmessage" and call["token"] == emulator.bot_token
    assert call["content_type"] == "application/json"
    assert call["params"] == {"chat_id": CHANNEL_ID, "text": "Bonjour 👋"}
    second = await provider.publish(request_for(emulator, "again"))
    assert second.platform_post_id == "2"


async def test_channel_by_username_and_options(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    request = request_for(emulator, chat_id=f"@{CHANNEL_USERNAME}",
                          disable_notification=True, disable_link_preview=True)
    published = await provider.publish(request)
    assert published.url == f"https://t.me/{CHANNEL_USERNAME}/1"
    [call] = emulator.received
    assert call["params"] == {"chat_id": f"@{CHANNEL_USERNAME}", "text": "Hello, channel",
                              "disable_notification": True,
                              "link_preview_options": {"is_disabled": True}}
    assert emulator.posts[0]["disable_notification"] is True


async def test_chat_without_a_public_username_has_no_url(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    published = await provider.publish(request_for(emulator, chat_id=GROUP_ID))
    assert published == Published("1", None)
    assert emulator.posts[0]["chat_id"] == GROUP_ID


async def test_flood_control_waits_the_seconds_telegram_names(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, rate_limit_next=1, retry_after=7)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited, match="retry after 7") as info:
        await provider.publish(request_for(emulator))
    assert info.value.scope == "account"
    assert before + timedelta(seconds=7) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(seconds=7)
    assert emulator.posts == []
    assert (await provider.publish(request_for(emulator))).platform_post_id == "1"


async def test_server_error_is_transient_and_secret_free(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, fail_next=1, fail_status=502)
    with pytest.raises(Transient, match="502") as info:
        await provider.publish(request_for(emulator))
    assert emulator.bot_token not in str(info.value)
    assert emulator.bot_token.split(":")[1] not in str(info.value)


async def test_dropped_connection_is_an_unknown_outcome_without_the_token(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(OutcomeUnknown) as info:
        await provider.publish(request_for(emulator))
    assert emulator.bot_token not in str(info.value)
    assert emulator.posts == []


async def test_lost_answer_is_an_unknown_outcome_and_the_message_exists(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_after_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(request_for(emulator))
    assert [p["text"] for p in emulator.posts] == ["Hello, channel"]
    assert not provider.supports_lookup and not provider.honours_idempotency_key
    with pytest.raises(NotImplementedError):
        await provider.lookup(request_for(emulator), datetime.now(UTC))


async def test_unreachable_server_is_transient_without_the_token(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Transient, match="unreachable") as info:
        await provider.publish(request_for(emulator, api_base=f"http://127.0.0.1:{port}"))
    assert not isinstance(info.value, OutcomeUnknown)
    assert emulator.bot_token not in str(info.value)


async def test_revoked_token_is_auth_revoked(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, expire_tokens=True)
    with pytest.raises(AuthRevoked, match="401") as info:
        await provider.publish(request_for(emulator))
    assert emulator.bot_token not in str(info.value)
    assert emulator.posts == []


async def test_expired_answer_is_auth_revoked(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, expire_next=1)
    with pytest.raises(AuthRevoked, match="Unauthorized"):
        await provider.publish(request_for(emulator))


async def test_unknown_bot_is_auth_revoked(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    stranger = f"{BOT_ID}:{'A' * 35}"
    with pytest.raises(AuthRevoked, match="401") as info:
        await provider.publish(request_for(emulator, token=stranger))
    assert stranger not in str(info.value) and "A" * 35 not in str(info.value)


async def test_kicked_bot_is_auth_revoked_so_jobs_wait(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    emulator.kick(CHANNEL_ID)
    with pytest.raises(AuthRevoked, match=r"403.*not a member"):
        await provider.publish(request_for(emulator))
    assert emulator.posts == []


async def test_unknown_chat_is_permanent(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    with pytest.raises(Permanent, match="chat not found") as info:
        await provider.publish(request_for(emulator, chat_id=-1009999999999))
    assert not isinstance(info.value, AuthRevoked)


async def test_emulator_counts_utf16_code_units_and_refuses_too_long_text(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    await provider.publish(request_for(emulator, "😀" * 2048))  # 4,096 code units
    with pytest.raises(Permanent, match="message is too long"):
        await provider.publish(request_for(emulator, "😀" * 2048 + "x"))
    assert len(emulator.posts) == 1


async def test_emulator_refuses_malformed_requests_as_telegram_does(
    emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    base = emulator.base_url
    async with session.post(f"{base}/botnot-a-token/sendMessage", json={}) as response:
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404,
                                         "description": "Not Found"}
    url = f"{base}/bot{emulator.bot_token}/sendMessage"
    async with session.post(url, json={"text": "no chat"}) as response:
        assert (await response.json())["description"] == "Bad Request: chat_id is empty"
    async with session.post(url, json={"chat_id": CHANNEL_ID, "text": "  "}) as response:
        assert (await response.json())["description"] == "Bad Request: message text is empty"
    async with session.post(url, json={"chat_id": CHANNEL_ID, "text": "x",
                                       "disable_notification": "loud"}) as response:
        assert response.status == 400
    async with session.post(url, data={"chat_id": str(CHANNEL_ID), "text": "a form",
                                       "unknown_field": "ignored"}) as response:
        document = await response.json()
        assert document["ok"] is True and document["result"]["chat"]["id"] == CHANNEL_ID
    async with session.get(f"{base}/bot{emulator.bot_token}/GETME") as response:
        assert (await response.json())["result"]["id"] == BOT_ID
    assert [p["text"] for p in emulator.posts] == ["a form"]


# --- limits and account fields ----------------------------------------------------------------


async def test_text_limit_in_utf16_code_units(provider: TelegramProvider) -> None:
    assert await provider.check_content(Content(text="x" * 4096), {}) == []
    assert await provider.check_content(Content(text="😀" * 2048), {}) == []
    assert await provider.check_content(Content(text="x" * 4097), {}) == [
        ("content.text", "telegram: 4097 UTF-16 code units, at most 4096")]
    assert await provider.check_content(Content(text="😀" * 2049), {}) == [
        ("content.text", "telegram: 4098 UTF-16 code units, at most 4096")]


@pytest.mark.parametrize(("config", "credentials", "fields"), [
    ({"chat_id": -1001234567890}, {"bot_token": "123:abc_DEF-ghi"}, set()),
    ({"chat_id": "@my_channel", "api_base": "http://127.0.0.1:9"},
     {"bot_token": "123:abc"}, set()),
    ({"chat_id": "my_channel"}, {"bot_token": "123:abc"}, {"config.chat_id"}),
    ({"chat_id": True}, {"bot_token": "123:abc"}, {"config.chat_id"}),
    ({"chat_id": 1.0, "disable_notification": "yes"}, {"bot_token": "nope"},
     {"config.chat_id", "config.disable_notification", "credentials.bot_token"}),
    ({}, {}, {"config.chat_id", "credentials.bot_token"}),
])
def test_account_fields_are_validated(
    provider: TelegramProvider, config: dict[str, Any], credentials: dict[str, Any],
    fields: set[str],
) -> None:
    problems = provider.validate_account(config, credentials)
    assert {field.split(".")[0] + "." + field.split(".")[1] for field, _ in problems} == fields


async def test_malformed_token_is_refused_without_being_shown(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    with pytest.raises(Permanent, match="bot_token") as info:
        await provider.publish(request_for(emulator, token="secret token with spaces"))
    assert "secret token" not in str(info.value) and info.value.__cause__ is None
    assert emulator.received == []


# --- answers the emulator does not give -------------------------------------------------------


async def test_error_echoing_the_url_is_scrubbed_of_the_token(
    provider: TelegramProvider, emulator: TelegramEmulator,
    serve: Serve,
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 400,
                                  "description": f"Bad Request: no such path {request.path}"},
                                 status=400)

    base = await serve(echo)
    with pytest.raises(Permanent, match="no such path") as info:
        await provider.publish(request_for(emulator, api_base=base))
    assert emulator.bot_token not in str(info.value)


async def test_group_upgraded_to_supergroup_names_the_new_chat(
    provider: TelegramProvider, emulator: TelegramEmulator,
    serve: Serve,
) -> None:
    async def migrated(_request: web.Request) -> web.Response:
        return web.json_response({
            "ok": False, "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1001777}}, status=400)

    base = await serve(migrated)
    with pytest.raises(Permanent, match=r"set config\.chat_id") as info:
        await provider.publish(request_for(emulator, api_base=base, chat_id=-4242))
    assert "-1001777" in str(info.value)


async def test_429_with_only_the_header_uses_it(
    provider: TelegramProvider, emulator: TelegramEmulator,
    serve: Serve,
) -> None:
    async def flood(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 429,
                                  "description": "Too Many Requests"},
                                 status=429, headers={"Retry-After": "11"})

    base = await serve(flood)
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as info:
        await provider.publish(request_for(emulator, api_base=base))
    assert before + timedelta(seconds=11) <= info.value.retry_at
    assert info.value.retry_at <= datetime.now(UTC) + timedelta(seconds=11)


async def test_nothing_to_refresh_or_connect(provider: TelegramProvider) -> None:
    assert provider.connects_with == "credentials"
    with pytest.raises(AuthRevoked):
        await provider.refresh({"chat_id": CHANNEL_ID}, {"bot_token": "1:a"}, None)


# --- media and threads ------------------------------------------------------------------------


def media_for(emulator: TelegramEmulator, text: str = "with media", **kwargs: Any
              ) -> PublishRequest:
    return media_request(emulator.account(), text, **kwargs)


async def test_one_photo_is_streamed_with_the_text_as_its_caption(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    picture = image(content_type="image/jpeg")
    published = await provider.publish(media_for(emulator, "a caption 👋", media=[picture]))
    [call] = emulator.received
    assert call["method"] == "sendphoto" and call["content_type"] == "multipart/form-data"
    assert call["params"] == {"chat_id": str(CHANNEL_ID), "caption": "a caption 👋"}
    [received] = emulator.state()["files"]
    assert received["sha256"] == picture.sha256 and received["size"] == len(picture.data)
    [post] = emulator.posts
    assert post["text"] == "a caption 👋" and post["files"] == [received["id"]]
    assert published == Published("1", f"https://t.me/{CHANNEL_USERNAME}/1")


async def test_a_video_goes_by_send_video(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    clip = video()
    await provider.publish(media_for(emulator, "", media=[clip]))
    assert emulator.received[0]["method"] == "sendvideo"
    [received] = emulator.state()["files"]
    assert received["sha256"] == clip.sha256 and received["kind"] == "video"


async def test_several_files_are_one_album_captioned_once(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    files = [image("a", content_type="image/jpeg"), video("b", size=500_000),
             image("c", content_type="image/png")]
    published = await provider.publish(media_for(emulator, "an album", media=files))
    [call] = emulator.received
    assert call["method"] == "sendmediagroup"
    assert json.loads(call["params"]["media"]) == [
        {"type": "photo", "media": "attach://file0", "caption": "an album"},
        {"type": "video", "media": "attach://file1"},
        {"type": "photo", "media": "attach://file2"}]
    assert [f["sha256"] for f in emulator.state()["files"]] == [f.sha256 for f in files]
    assert [p["text"] for p in emulator.posts] == ["an album", "", ""]
    assert published.platform_post_id == "1"  # the album's first message


async def test_a_thread_of_three_survives_a_failure_on_part_two(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    def fail_part_two(key: str, value: Any) -> None:
        if key == "parts" and len(value) == 1:
            emulator.faults.fail_next = 1

    checkpoints = Scripted(fail_part_two)
    request = media_for(emulator, "one/3", media=[image("a", content_type="image/jpeg")],
                        thread=[("two/3", [image("b"), image("c")]), ("three/3", [])],
                        checkpoints=checkpoints)
    with pytest.raises(Transient):
        await provider.publish(request)
    assert [p["text"] for p in emulator.posts] == ["one/3"]

    published = await provider.publish(request)
    assert [p["text"] for p in emulator.posts] == ["one/3", "two/3", "", "three/3"]
    first, second, _album_second, third = emulator.posts
    assert second["reply_to"] == first["message_id"]
    assert third["reply_to"] == second["message_id"]  # the album's first message
    # the failed try was refused before the Bot API read it (`received` lists what it read)
    assert emulator.faults.fail_next == 0
    assert [c["method"] for c in emulator.received] == [
        "sendphoto", "sendmediagroup", "sendmessage"]
    assert published.platform_post_id == str(first["message_id"])
    assert [p["n"] for p in checkpoints.get("parts")] == [0, 1, 2]


async def test_a_reply_to_a_message_that_is_gone_is_refused(
    provider: TelegramProvider, emulator: TelegramEmulator
) -> None:
    request = media_for(emulator, "head", thread=[("tail", [])], checkpoints=MemoryCheckpoints(
        {"parts": [{"n": 0, "platform_post_id": "999", "url": None}]}))
    with pytest.raises(Permanent, match="message to be replied not found"):
        await provider.publish(request)
    assert emulator.posts == []


async def test_an_upload_cut_off_is_an_unknown_outcome_and_sends_nothing(
    provider: TelegramProvider, emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    await control(session, emulator, drop_next=1)
    with pytest.raises(OutcomeUnknown):
        await provider.publish(media_for(emulator, media=[image(size=600_000)]))
    assert emulator.posts == [] and emulator.state()["files"] == []


async def test_the_bot_api_refuses_what_telegram_refuses(
    emulator: TelegramEmulator, session: aiohttp.ClientSession
) -> None:
    url = f"{emulator.base_url}/bot{emulator.bot_token}"

    def form(**fields: Any) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("chat_id", str(CHANNEL_ID))
        for name, value in fields.items():
            if isinstance(value, bytes):
                data.add_field(name, value, filename=f"{name}.bin", content_type="image/png")
            else:
                data.add_field(name, value)
        return data

    async def description(method: str, data: aiohttp.FormData) -> str:
        async with session.post(f"{url}/{method}", data=data) as response:
            return str((await response.json())["description"])

    assert await description("sendPhoto", form(caption="x")) == (
        "Bad Request: there is no photo in the request")
    assert await description("sendPhoto", form(photo=b"x", caption="y" * 1025)) == (
        "Bad Request: message caption is too long")
    assert await description("sendPhoto", form(photo=b"x" * 10_000_001)) == (
        "Request Entity Too Large")
    one = json.dumps([{"type": "photo", "media": "attach://a"}])
    assert await description("sendMediaGroup", form(media=one, a=b"x")) == (
        "Bad Request: media must include 2-10 items")
    missing = json.dumps([{"type": "photo", "media": "attach://a"},
                          {"type": "photo", "media": "attach://b"}])
    assert await description("sendMediaGroup", form(media=missing, a=b"x")) == (
        "Bad Request: there is no photo in the request")
    assert emulator.posts == []


async def test_media_limits_are_checked_at_scheduling(provider: TelegramProvider) -> None:
    def content(text: str = "x", thread: int = 0) -> Content:
        return Content(text=text, thread=[ThreadItem(text="y") for _ in range(thread)])

    photo = MediaInfo("image/jpeg", 1000, 1200, 800)
    assert await provider.check_content(content("😀" * 512), {}, [[photo]]) == []
    assert await provider.check_content(content("😀" * 513), {}, [[photo]]) == [
        ("content.text", "telegram: 1026 UTF-16 code units, at most 1024 as a caption of media")]
    assert await provider.check_content(content("x" * 2000), {}, [[]]) == []
    assert await provider.check_content(content(), {}, [[photo] * 11]) == [
        ("content.media", "telegram: 11 files, at most 10 in an album")]
    problems = await provider.check_content(content(thread=1), {}, [[], [
        MediaInfo("image/png", 10_000_001), MediaInfo("video/mp4", 50_000_001),
        MediaInfo("application/pdf", 10), MediaInfo("image/png", 10, 9000, 2000),
        MediaInfo("image/png", 10, 2100, 100)]])
    assert problems == [
        ("content.thread.0.media.0", "telegram: 10000001 bytes, at most 10000000 for a photo "
                                     "sent by a bot"),
        ("content.thread.0.media.1", "telegram: 50000001 bytes, at most 50000000 for a video "
                                     "sent by a bot"),
        ("content.thread.0.media.2", "telegram: application/pdf is not a photo (JPEG, PNG, "
                                     "WebP) or a video"),
        ("content.thread.0.media.3", "telegram: a photo's width and height add up to at most "
                                     "10000"),
        ("content.thread.0.media.4", "telegram: a photo's sides differ by at most 20 times")]
    assert provider.supports_threads and provider.supports_media
