"""The console in a real browser (Debian's Chromium through Playwright) against a running
node: from an alert's link to a failed job, found by its text, retried with edited text and
seen published; a viewer's retry and a request without the CSRF token refused by the server."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, expect

from tests.console.conftest import Herald, sign_in

TIMEOUT_MS = 30_000


def test_find_a_failed_job_by_its_text_retry_it_edited_and_see_it_published(
        herald: Herald, browser: Browser) -> None:
    account = herald.webhook_account()
    word = uuid.uuid4().hex[:10]
    job_id = herald.failed_job(account, f"Launch day {word}: tickets at the door")
    herald.failed_job(account, "Another post that failed")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # The link an alert carries: failed jobs, bookmarkable; signing in comes back to it.
    page.goto(f"{herald.url}/console/jobs?state=failed")
    sign_in(page, herald.admin_token)
    expect(page).to_have_url(re.compile(r"/console/jobs\?state=failed$"))
    expect(page.get_by_role("heading", name="By account and error class")).to_be_visible()

    page.get_by_label("Search text or error").fill(word.upper())
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link").click()

    expect(page).to_have_url(re.compile(f"/console/jobs/{job_id}$"))
    expect(page.locator("[data-last-error]")).to_contain_text("permanent")
    expect(page.locator("[data-content]")).to_have_text(
        f"Launch day {word}: tickets at the door")
    edited = f"Launch day {word}: tickets online only"
    page.get_by_label("Text to publish").fill(edited)
    page.get_by_role("button", name="Retry", exact=True).click()

    # The live stream reloads the page when the job settles.
    expect(page.locator("h1 [data-job-state]")).to_have_text("succeeded", timeout=TIMEOUT_MS)
    expect(page.locator("[data-published-url], dd")).not_to_have_count(0)
    delivered = [d for d in herald.receiver.deliveries()["deliveries"]
                 if d["job_id"] == job_id and d["outcome"] == "accepted"]
    assert [d["body"]["text"] for d in delivered] == [edited]
    assert herald.api("GET", f"/jobs/{job_id}")["state"] == "succeeded"

    page.goto(f"{herald.url}/console/audit")
    expect(page.locator("tbody tr").first).to_contain_text("POST /jobs/{id}/retry")
    expect(page.locator("tbody tr").first).to_contain_text("console:admin")
    context.close()


def test_a_viewers_retry_is_refused_by_the_server(herald: Herald, browser: Browser) -> None:
    account = herald.webhook_account()
    job_id = herald.failed_job(account, "Viewer cannot retry this")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{herald.url}/console/jobs/{job_id}")
    sign_in(page, herald.viewer_token)
    expect(page.get_by_text("viewer (read-only)")).to_be_visible()
    # The page offers the form; the server refuses what it sends.
    with page.expect_response(f"**/console/jobs/{job_id}/retry") as answer:
        page.get_by_role("button", name="Retry", exact=True).click()
    assert answer.value.status == 403
    expect(page.locator("[data-error]")).to_contain_text("read-only")
    assert herald.api("GET", f"/jobs/{job_id}")["state"] == "failed"
    assert herald.api("GET", "/audit")["items"][0]["action"] != "POST /jobs/{id}/retry"
    context.close()


def test_a_change_without_the_csrf_token_is_refused(herald: Herald, browser: Browser) -> None:
    account = herald.webhook_account()
    job_id = herald.failed_job(account, "No CSRF, no change")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{herald.url}/console/")
    sign_in(page, herald.admin_token)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    headers = page.request.get(f"{herald.url}/console/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]

    # The session cookie goes with it (the browser context's), the CSRF token does not.
    refused = page.request.post(f"{herald.url}/console/jobs/{job_id}/retry",
                                form={"text": "forged"}, max_redirects=0)
    assert refused.status == 403
    assert "CSRF" in refused.text()
    wrong = page.request.post(f"{herald.url}/console/cluster/pause",
                              form={"reason": "forged", "csrf": "not-the-token"},
                              max_redirects=0)
    assert wrong.status == 403
    assert herald.api("GET", f"/jobs/{job_id}")["state"] == "failed"
    assert herald.api("GET", "/cluster")["paused"] is None
    cookie = next(c for c in context.cookies() if c["name"] == "herald_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    context.close()
