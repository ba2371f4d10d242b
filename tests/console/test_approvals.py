"""The approval queue in a real browser against a running node whose generated content comes
from the language model's emulator: a generated post waits on the Approvals page, is approved
with edited text, and the job keeps that text; a viewer's approval is refused by the server."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.console.conftest import LLM_MODEL, Herald, sign_in
from tests.emulators.llm import LlmEmulator


def test_a_generated_post_is_approved_with_edited_text(
        herald_llm: Herald, llm: LlmEmulator, browser: Browser) -> None:
    herald = herald_llm
    llm.default = "Spring sale: 20% off everything this weekend."
    account = herald.webhook_account()
    job = herald.awaiting_approval(account, "Announce the spring sale in one sentence")
    job_id = job["id"]
    assert job["content"]["text"] == "Spring sale: 20% off everything this weekend."

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{herald.url}/console/")
    sign_in(page, herald.admin_token)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Approvals").click()
    expect(page).to_have_url(re.compile(r"/console/approvals$"))
    waiting = page.locator(f'article[data-job-id="{job_id}"]')
    expect(waiting).to_have_count(1)
    expect(waiting.locator("[data-prompt]")).to_have_text(
        "Announce the spring sale in one sentence")
    expect(waiting.locator("[data-model]")).to_have_text(LLM_MODEL)
    expect(waiting.locator("[data-time-left]")).to_contain_text("before it is missed")
    text = waiting.get_by_label("Text to publish")
    expect(text).to_have_value("Spring sale: 20% off everything this weekend.")

    edited = "Spring sale: 20% off everything, Saturday and Sunday only."
    text.fill(edited)
    waiting.get_by_role("button", name="Approve").click()

    expect(page).to_have_url(re.compile(r"/console/approvals\?done=approved$"))
    expect(page.locator(f'article[data-job-id="{job_id}"]')).to_have_count(0)
    approved = herald.api("GET", f"/jobs/{job_id}")
    assert approved["content_state"] == "approved"
    assert approved["content"]["text"] == edited
    entries = herald.api("GET", "/audit")["items"]
    assert (entries[0]["actor"], entries[0]["action"], entries[0]["target"]) == (
        "console:admin", "POST /jobs/{id}/approve", job_id)

    page.goto(f"{herald.url}/console/jobs/{job_id}")
    expect(page.locator("[data-content-state]")).to_have_text("approved")
    expect(page.locator("[data-content]")).to_have_text(edited)
    context.close()


def test_a_viewers_approval_is_refused_by_the_server(
        herald_llm: Herald, browser: Browser) -> None:
    herald = herald_llm
    account = herald.webhook_account()
    job_id = herald.awaiting_approval(account, "Announce the opening hours")["id"]

    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{herald.url}/console/approvals")
    sign_in(page, herald.viewer_token)
    expect(page.get_by_text("viewer (read-only)")).to_be_visible()
    waiting = page.locator(f'article[data-job-id="{job_id}"]')
    waiting.get_by_label("Text to publish").fill("A viewer's edit")
    # The page offers the form; the server refuses what it sends.
    with page.expect_response(f"**/console/jobs/{job_id}/approve") as answer:
        waiting.get_by_role("button", name="Approve").click()
    assert answer.value.status == 403
    expect(page.locator("[data-error]")).to_contain_text("read-only")
    unchanged = herald.api("GET", f"/jobs/{job_id}")
    assert unchanged["content_state"] == "awaiting_approval"
    assert unchanged["content"]["text"] != "A viewer's edit"
    assert herald.api("GET", "/audit")["items"][0]["action"] != "POST /jobs/{id}/approve"
    context.close()
