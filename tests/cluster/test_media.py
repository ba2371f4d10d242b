"""Media and threads through a running cluster (issue 9's "Done when"): files uploaded through
`POST /api/v1/media`, posts naming them, Herald nodes as processes, each platform's emulator in
a process of its own comparing the SHA-256 of what it received with what was uploaded."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
import requests

from tests.cluster.conftest import FAST
from tests.cluster.support import (
    OAUTH_CLIENT_ENV,
    PlatformProcess,
    account_on,
    job_ids,
    platform_processes,
    record,
    sweep_repairs,
    wait_settled,
)
from tests.integration.media_fixtures import image, video
from tools.devservers import free_port
from tools.localcluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300, method="signal")]

#: Every platform that takes images, and those the issue names for video.
IMAGES = ["mastodon", "bluesky", "x", "linkedin", "facebook", "telegram", "discord", "slack",
          "instagram"]
VIDEOS = ["x", "facebook", "instagram", "tiktok", "youtube", "telegram", "mastodon"]
THREADS = ["mastodon", "bluesky", "x"]


@pytest.fixture
def cluster_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST, **OAUTH_CLIENT_ENV}


def upload(cluster: Cluster, name: str, data: bytes, content_type: str) -> dict[str, Any]:
    node = cluster.api_nodes()[0]
    answer = requests.post(f"{node.url}/api/v1/media",
                           headers={"Authorization": f"Bearer {cluster.token}"},
                           files={"file": (name, data, content_type)}, timeout=60)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def digests(state: Any) -> Iterator[str]:
    """Every `sha256` an emulator's state records, wherever it keeps its received files."""
    if isinstance(state, dict):
        for key, value in state.items():
            if key == "sha256" and isinstance(value, str):
                yield value
            else:
                yield from digests(value)
    elif isinstance(state, list):
        for value in state:
            yield from digests(value)


def wait_digest(emulator: PlatformProcess, sha256: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sha256 not in set(digests(emulator.state())):
        assert time.monotonic() < deadline, f"{emulator.platform} never received {sha256}"
        time.sleep(0.5)


def post_with(cluster: Cluster, account_id: str, content: dict[str, Any]) -> dict[str, Any]:
    at = datetime.now(UTC) + timedelta(seconds=2)
    post: dict[str, Any] = cluster.api("POST", "/posts", {
        "account_ids": [account_id], "content": content, "schedule": {"at": at.isoformat()}})
    return post


def test_images_and_videos_reach_every_platform_intact(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    platforms = sorted(set(IMAGES) | set(VIDEOS))
    with platform_processes(platforms, tmp_path) as emulators:
        # Slack and Instagram fetch media themselves, from node-a's signed public URLs.
        port = free_port()
        public = {"HERALD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        cluster.add_node("all", node_id="node-a", http_port=port, env=public)
        cluster.add_node("executor", node_id="node-b", env=public)
        cluster.start()
        cluster.wait_leader(timeout=20)
        picture = image("JPEG", size=(48, 36))
        clip = video(seconds=4, size=(48, 64))
        stored_image = upload(cluster, "picture.jpg", picture, "image/jpeg")
        stored_video = upload(cluster, "clip.mp4", clip, "video/mp4")
        assert stored_image["sha256"] == hashlib.sha256(picture).hexdigest()
        assert stored_video["sha256"] == hashlib.sha256(clip).hexdigest()
        assert stored_video["duration_seconds"] >= 3.5
        expected: list[tuple[str, str, str]] = []
        for platform in platforms:
            account = account_on(cluster, emulators[platform])
            made = []
            if platform in IMAGES:
                made.append(post_with(cluster, account, {
                    "text": f"an image on {platform}",
                    "media": [{"id": stored_image["id"], "alt": "a red rectangle"}]}))
                expected.append((platform, stored_image["sha256"], "image"))
            if platform in VIDEOS:
                made.append(post_with(cluster, account, {
                    "text": f"a video on {platform}", "title": "A clip",
                    "media": [{"id": stored_video["id"]}]}))
                expected.append((platform, stored_video["sha256"], "video"))
            jobs = wait_settled(cluster, account, job_ids(made), 120)
            assert {j["state"] for j in jobs} == {"succeeded"}, (platform, jobs)
        for platform, sha256, kind in expected:
            wait_digest(emulators[platform], sha256)
            print(f"{platform}: {kind} received intact")


def test_a_thread_survives_a_failure_on_part_two(cluster: Cluster, tmp_path: Path) -> None:
    """Part two fails with a 5xx once; the retry resumes at part two: part one is posted once
    and the three parts form one reply chain."""
    with platform_processes(THREADS, tmp_path) as emulators:
        cluster.add_node("all", node_id="node-a")
        cluster.start()
        cluster.wait_leader(timeout=20)
        for platform, emulator in emulators.items():
            account = account_on(cluster, emulator)
            post = post_with(cluster, account, {
                "text": f"{platform} thread part 1",
                "thread": [{"text": f"{platform} thread part 2"},
                           {"text": f"{platform} thread part 3"}]})
            emulator.control(pass_next=1, fail_next=1, fail_status=503)
            (job,) = wait_settled(cluster, account, job_ids([post]), 120)
            assert job["state"] == "succeeded", job
            # The first try met the 503 on part two; the second finished the thread.
            assert [a["outcome"] for a in job["attempts"]] == ["transient", "succeeded"], job
            assert [p["n"] for p in job["parts"]] == [0, 1, 2]
            texts = [p["text"] for p in emulator.state()["posts"]]
            assert texts.count(f"{platform} thread part 1") == 1, texts
            assert texts.count(f"{platform} thread part 2") == 1, texts
            assert texts.count(f"{platform} thread part 3") == 1, texts


def large_video(megabytes: float = 12) -> bytes:
    """A real MP4 of noise frames encoded losslessly, large enough for two upload chunks on
    YouTube (8 MiB) and TikTok (5 MiB at least)."""
    out = io.BytesIO()
    size, fps = (640, 480), 8
    with av.open(out, "w", format="mp4") as muxer:
        stream: Any = muxer.add_stream("libx264", rate=fps, options={"crf": "0"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        n = 0
        while out.tell() < megabytes * 1024 * 1024 or n < 4 * fps:
            frame = av.VideoFrame(size[0], size[1], "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = n
            for packet in stream.encode(frame):
                muxer.mux(packet)
            n += 1
        for packet in stream.encode():
            muxer.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize("platform,checkpoint", [("youtube", "youtube_upload"),
                                                 ("tiktok", "tiktok_publish")])
def test_an_executor_killed_mid_upload_is_resumed_without_a_second_video(
        cluster: Cluster, tmp_path: Path, platform: str, checkpoint: str) -> None:
    """Each platform call held 2 s by the emulator: the executor is killed once the upload
    session (YouTube's session URI, TikTok's `publish_id`) is saved on the job and its upload
    is under way. Its lease expires, a sweep reconciles the job from the saved checkpoint
    (YouTube by probing the session, TikTok by `status/fetch`), and a new executor finishes the
    same upload: one session, one init, one video, the bytes intact."""
    with platform_processes([platform], tmp_path) as emulators:
        emulator = emulators[platform]
        cluster.add_node("scheduler", node_id="scheduler")
        cluster.add_node("recovery", node_id="recovery")
        victim = cluster.add_node("executor", node_id="victim")
        cluster.start()
        cluster.wait_leader(timeout=20)
        clip = large_video()
        stored = upload(cluster, "large.mp4", clip, "video/mp4")
        account = account_on(cluster, emulator)
        (job_id,) = job_ids([post_with(cluster, account, {
            "text": f"a large video on {platform}", "title": "A large clip",
            "media": [{"id": stored["id"]}]})])
        emulator.control(delay=2.0)
        if platform == "youtube":  # its session URI takes chunks without authentication
            emulator.faults(chunk_delay=2.0)
        with record(cluster.env) as db:
            deadline = time.monotonic() + 60
            while not db["jobs"].find_one({"_id": job_id,
                                           f"checkpoints.{checkpoint}": {"$exists": True}}):
                assert time.monotonic() < deadline, "no upload session was saved"
                time.sleep(0.02)
            time.sleep(0.5)
            victim.kill()
            state = (db["jobs"].find_one({"_id": job_id}) or {})["state"]
        print(f"\nkilled the executor with the upload begun, the job {state}")
        assert state == "publishing"
        emulator.control(delay=0.0)
        if platform == "youtube":
            emulator.faults(chunk_delay=0.0)
        cluster.add_node("executor", node_id="rescuer")
        cluster.start()
        (job,) = wait_settled(cluster, account, [job_id], 120)
        assert job["state"] == "succeeded", job
        made = emulator.state()
        if platform == "youtube":
            assert made["inserts"] == 1, made
            (session,) = made["sessions"].values()
            assert session["sha256"] == stored["sha256"] and session["video_id"], session
        else:
            assert made["init_calls"] == 1, made
            (published,) = made["publishes"].values()
            assert published["sha256"] == stored["sha256"], published
            assert published["status"] == "PUBLISH_COMPLETE", published
        repairs = sweep_repairs(cluster)
        assert repairs["publishing_not_found"] + repairs["publishing_found"] == 1, repairs
