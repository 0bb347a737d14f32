"""The web UI in a real Chromium against a real kalad: create, watch, edit, disable, delete."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from tests.conftest import wait_until
from tests.webui.conftest import open_page, require_playwright, shot

expect = require_playwright()

FAR = "R/2031-01-01T00:00:00Z/PT1H"


def ui(daemon, hash_: str = "") -> str:
    return f"http://127.0.0.1:{daemon.port}/webui/{hash_}"


def job_by_name(daemon, name: str) -> dict | None:
    status, body = daemon.request("GET", "/job/")
    assert status == 200, body
    return next((j for j in body["jobs"].values() if j["name"] == name), None)


def test_local_job_create_run_edit_disable_delete(page, daemon, artifacts):
    page.goto(f"http://127.0.0.1:{daemon.port}/")
    assert page.url == ui(daemon)
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New job").click()
    expect(page.get_by_role("heading", name="New job")).to_be_visible()

    page.get_by_label("Name", exact=True).fill("ui-local")
    page.get_by_label("Owner (e-mail)").fill("ops@example.com")
    page.get_by_label("Command", exact=True).fill("sh -c 'echo hello-from-the-ui $MODE'")
    page.get_by_label("Environment, one NAME=value per line", exact=True).fill("MODE=in-env")
    page.get_by_label("Secret environment, one NAME=value per line").fill("PASS=hunter2")
    # The helper builds the schedule; the first run is a few seconds from now.
    start = (datetime.now(timezone.utc) + timedelta(seconds=6)).replace(microsecond=0)
    page.get_by_label("Start date").fill(start.strftime("%Y-%m-%d"))
    page.get_by_label("Start time").fill(start.strftime("%H:%M:%S"))
    page.get_by_label("Time zone").select_option("Z")
    page.get_by_label("Repeat", exact=True).select_option("forever")
    page.get_by_label("Every").fill("2")
    page.get_by_label("Every").dispatch_event("change")
    page.get_by_label("Unit").select_option("hour")
    expected = f"R/{start:%Y-%m-%dT%H:%M:%S}Z/PT2H"
    expect(page.get_by_label("Schedule (ISO 8601: R[n]/start/interval)")).to_have_value(expected)
    expect(page.locator("#schedule-preview li")).to_have_count(5)
    shot(page, artifacts, "create-form")
    page.get_by_role("button", name="Create job").click()

    expect(page.get_by_role("heading", name="ui-local")).to_be_visible()
    job_id = page.url.rsplit("/", 1)[1]
    assert job_by_name(daemon, "ui-local")["id"] == job_id
    # The first scheduled run appears by itself (the page refreshes), with its output.
    done = page.locator("#runs-table tbody tr").filter(has_text="succeeded")
    expect(done).to_have_count(1, timeout=30_000)
    done.get_by_text("Output").click()
    expect(done.locator("pre.output")).to_contain_text("hello-from-the-ui in-env")
    shot(page, artifacts, "job-detail")

    # The list shows it, found by its owner.
    page.get_by_role("link", name="← All jobs").click()
    page.get_by_label("Search").fill("ops@example")
    row = page.locator("#jobs-table tbody tr").filter(has_text="ui-local")
    expect(row).to_have_count(1)
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(row.locator("td[data-label='Succeeded / failed']")).to_have_text("1 / 0")
    expect(row).to_contain_text("every 2 hours")
    expect(row).to_contain_text("succeeded")
    shot(page, artifacts, "jobs-list")

    # Edit its schedule: kept counters and runs, new next run.
    row.get_by_role("link", name="ui-local").click()
    page.get_by_role("link", name="Edit").click()
    schedule = page.get_by_label("Schedule (ISO 8601: R[n]/start/interval)")
    expect(schedule).to_have_value(expected)
    schedule.fill(FAR)
    expect(page.locator("#schedule-preview li").first).to_contain_text("2031-01-01")
    shot(page, artifacts, "edit-form")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="ui-local")).to_be_visible()
    expect(page.locator("dl.fields")).to_contain_text(FAR)
    stored = job_by_name(daemon, "ui-local")
    assert stored["schedule"] == FAR and stored["id"] == job_id
    assert stored["next_run_at"].startswith("2031-01-01T00:00:00")
    assert stored["metadata"]["success_count"] == 1
    assert stored["env"] == {"MODE": "in-env"} and stored["secret_env"] == {"PASS": "***"}
    assert len(daemon.runs(job_id)) == 1

    # Disable, then enable again.
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".badges")).to_contain_text("disabled")
    assert job_by_name(daemon, "ui-local")["disabled"] is True
    page.get_by_role("button", name="Enable").click()
    expect(page.locator(".badges")).to_contain_text("enabled")
    assert job_by_name(daemon, "ui-local")["disabled"] is False

    # Delete, after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    assert job_by_name(daemon, "ui-local") is None


def test_remote_job_form_round_trip(page, daemon, artifacts):
    page.goto(ui(daemon, "#/new"))
    page.get_by_label("Name", exact=True).fill("ui-remote")
    page.get_by_label("Remote HTTP call").check()
    expect(page.get_by_label("Command", exact=True)).to_be_hidden()
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_label("Method").select_option("POST")
    page.get_by_label("Body").fill('{"hello": "world"}')
    page.get_by_label('Headers, one "Name: value" per line').fill(
        "Content-Type: application/json\nX-Multi: 1\nX-Multi: 2")
    page.get_by_label("Timeout (seconds, 0 for the default)").fill("5")
    page.get_by_label("Expected response codes").fill("200, 202")
    page.get_by_label("Schedule (ISO 8601: R[n]/start/interval)").fill(FAR)
    page.get_by_label("Retries").fill("2")
    shot(page, artifacts, "remote-form")
    page.get_by_role("button", name="Create job").click()
    expect(page.get_by_role("heading", name="ui-remote")).to_be_visible()

    remote = {
        "url": "http://127.0.0.1:9/hook", "method": "POST", "body": '{"hello": "world"}',
        "headers": {"Content-Type": ["application/json"], "X-Multi": ["1", "2"]},
        "timeout": 5, "expected_response_codes": [200, 202],
    }
    stored = job_by_name(daemon, "ui-remote")
    assert stored["type"] == 1 and stored["retries"] == 2 and stored["command"] == ""
    assert stored["remote_properties"] == remote
    expect(page.locator("dl.fields")).to_contain_text("http://127.0.0.1:9/hook")
    shot(page, artifacts, "remote-detail")

    # The edit form shows every value back; saving a change keeps the rest.
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Remote HTTP call")).to_be_checked()
    expect(page.get_by_label("URL")).to_have_value(remote["url"])
    expect(page.get_by_label("Method")).to_have_value("POST")
    expect(page.get_by_label("Body")).to_have_value(remote["body"])
    expect(page.get_by_label('Headers, one "Name: value" per line')).to_have_value(
        "Content-Type: application/json\nX-Multi: 1\nX-Multi: 2")
    expect(page.get_by_label("Timeout (seconds, 0 for the default)")).to_have_value("5")
    expect(page.get_by_label("Expected response codes")).to_have_value("200, 202")
    page.get_by_label("URL").fill("http://127.0.0.1:9/other")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("dl.fields")).to_contain_text("http://127.0.0.1:9/other")
    assert job_by_name(daemon, "ui-remote")["remote_properties"] == {**remote, "url": "http://127.0.0.1:9/other"}


def test_server_errors_appear_beside_the_field_they_name(page, daemon, console, artifacts):
    console.allow(r"status of 400")  # the browser logs each 400 the form provokes on purpose
    page.goto(ui(daemon, "#/new"))
    page.get_by_label("Name", exact=True).fill("ui-bad")
    page.get_by_label("Command", exact=True).fill("true")
    schedule = page.get_by_label("Schedule (ISO 8601: R[n]/start/interval)")
    schedule.fill("every day")
    error = page.locator("#schedule-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("schedule:")
    page.get_by_role("button", name="Create job").click()
    expect(error).to_contain_text("schedule:")
    expect(schedule).to_have_attribute("aria-invalid", "true")
    expect(schedule).to_be_focused()
    # The message sits in the schedule field's own box and is announced with it.
    assert page.locator(".field:has(#schedule) #schedule-error").count() == 1
    assert "schedule-error" in schedule.get_attribute("aria-describedby")
    shot(page, artifacts, "schedule-error")
    assert job_by_name(daemon, "ui-bad") is None

    # Another field's error goes beside that field, and the schedule's is cleared.
    schedule.fill(FAR)
    expect(error).to_be_hidden()
    page.get_by_label("Epsilon").fill("soon")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#" + page.get_by_label("Epsilon").get_attribute("id") + "-error")).to_contain_text("epsilon:")
    expect(error).to_be_hidden()
    assert job_by_name(daemon, "ui-bad") is None


def test_overview_figures_and_runs_chart(page, daemon, artifacts):
    ok = daemon.create(name="ov-ok", command="true", schedule=FAR)
    bad = daemon.create(name="ov-bad", command="false", schedule=FAR)
    for job_id in (ok, bad, ok):
        status, body = daemon.request("POST", f"/job/start/{job_id}/")
        assert status == 204, body
        wait_until(lambda: all(r["ended_at"] for r in daemon.runs(job_id)) and daemon.runs(job_id))
    wait_until(lambda: len(daemon.runs(ok)) == 2)
    status, stats = daemon.request("GET", "/stats/")
    page.goto(ui(daemon, "#/overview"))
    expect(page.locator("#stat-jobs")).to_have_text(str(stats["Stats"]["jobs"]))
    expect(page.locator("#stat-success")).to_have_text(str(stats["Stats"]["success_count"]))
    chart = page.locator("#runs-chart")
    expect(chart).to_be_visible()
    assert chart.locator("rect.ok").count() >= 1
    assert chart.locator("rect.fail").count() >= 1
    expect(page.locator("#chart-title")).to_contain_text("failed")
    expect(page.locator("#failing")).to_contain_text("ov-bad")
    shot(page, artifacts, "overview")


def test_phone_width_and_keyboard(browser, daemon, console, artifacts):
    job_id = daemon.create(name="phone-job", command="echo small", schedule=FAR)
    context, page = open_page(browser, console, viewport={"width": 390, "height": 844},
                              is_mobile=True, has_touch=True)
    try:
        for name, hash_ in [("phone-list", "#/jobs"), ("phone-detail", f"#/job/{job_id}"),
                            ("phone-form", "#/new"), ("phone-overview", "#/overview")]:
            page.goto(ui(daemon, hash_))
            page.locator("main h1").wait_for()
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name}: the page is {width}px wide"
            shot(page, artifacts, name)
        # Keyboard only: from the search box, tab to a sort button and use it.
        page.goto(ui(daemon, "#/jobs"))
        page.get_by_label("Search").focus()
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.focus") == "sort:name":
                break
        assert page.evaluate("document.activeElement.dataset.focus") == "sort:name"
        page.keyboard.press("Enter")
        expect(page.locator("th[aria-sort='descending']")).to_have_count(1)
        assert "d=desc" in page.url
    finally:
        context.close()
    assert not console.unexpected(), console.unexpected()


def test_auto_refresh_keeps_the_users_place(page, daemon):
    for i in range(60):
        daemon.create(name=f"place-{i:02d}", command="true", schedule=FAR)
    page.goto(ui(daemon, "#/jobs?q=place-&n=25"))
    page.get_by_role("button", name="Next ›").click()
    expect(page.locator("#job-summary")).to_contain_text("Showing 26–50 of 60")
    loaded = page.locator("main").get_attribute("data-loaded-at")
    daemon.create(name="place-new", command="true", schedule=FAR)
    page.get_by_role("button", name="Next ›").focus()
    # The next refresh brings the new job in, on the same page, with focus where it was.
    wait_until(lambda: page.locator("main").get_attribute("data-loaded-at") != loaded, timeout=15)
    expect(page.locator("#job-summary")).to_contain_text("Showing 26–50 of 61")
    assert page.evaluate("document.activeElement.dataset.focus") == "p:next"
    assert "p=2" in page.url


def test_token_is_asked_for_kept_in_session_storage_and_sent(page, daemon, console):
    """Stands in for API tokens with a route that answers 401 without the right header."""
    console.allow(r"status of 401")
    seen: list[str | None] = []

    def guard(route, request):
        auth = request.headers.get("authorization")
        seen.append(auth)
        if auth != "Bearer s3cret":
            route.fulfill(status=401, content_type="application/json",
                          body=json.dumps({"error": "this API needs a token"}),
                          headers={"WWW-Authenticate": 'Bearer realm="kalad"'})
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/.*"), guard)
    page.goto(ui(daemon, "#/jobs"))
    dialog = page.get_by_role("dialog", name="API token needed")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("this API needs a token")
    dialog.get_by_label("Token").fill("s3cret")
    dialog.get_by_role("button", name="Use token").click()
    expect(page.locator("#job-summary")).to_contain_text("jobs")
    assert seen[-1] == "Bearer s3cret"
    assert page.evaluate("sessionStorage.getItem('kalad.token')") == "s3cret"
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    expect(page.get_by_role("button", name="Forget token")).to_be_visible()
    page.get_by_role("button", name="Forget token").click()
    assert page.evaluate("sessionStorage.getItem('kalad.token')") is None


def test_parents_and_children_are_links(page, daemon, artifacts):
    parent = daemon.create(name="link-parent", command="true", schedule=FAR)
    child = daemon.create(name="link-child", command="true", parent_jobs=[parent])
    page.goto(ui(daemon, f"#/job/{parent}"))
    expect(page.get_by_role("heading", name="link-parent")).to_be_visible()
    children = page.locator("dl.fields dd").nth(
        page.locator("dl.fields dt").all_inner_texts().index("Children"))
    children.get_by_role("link", name="link-child").click()
    expect(page.get_by_role("heading", name="link-child")).to_be_visible()
    assert page.url.endswith(f"#/job/{child}")
    expect(page.locator("dl.fields")).to_contain_text("after its parent job succeeds")
    shot(page, artifacts, "child-detail")
    page.get_by_role("link", name="link-parent").click()
    expect(page.get_by_role("heading", name="link-parent")).to_be_visible()
    # Editing the child keeps its parent (the form cannot move it).
    page.goto(ui(daemon, f"#/job/{child}/edit"))
    parents = page.get_by_label("Parent jobs (ids, comma separated)")
    expect(parents).to_have_value(parent)
    expect(parents).to_have_attribute("readonly", "")
    page.get_by_label("Command", exact=True).fill("echo changed")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("dl.fields")).to_contain_text("echo changed")
    status, body = daemon.request("GET", f"/job/{child}/")
    assert body["job"]["parent_jobs"] == [parent] and body["job"]["command"] == "echo changed"


def test_a_job_deleted_elsewhere_is_shown_as_gone(page, daemon, console):
    console.allow(r"status of 404")
    job_id = daemon.create(name="short-lived", command="true", schedule=FAR)
    page.goto(ui(daemon, f"#/job/{job_id}"))
    expect(page.get_by_role("heading", name="short-lived")).to_be_visible()
    assert daemon.request("DELETE", f"/job/{job_id}/")[0] == 204
    expect(page.get_by_role("heading", name="No such job")).to_be_visible(timeout=10_000)
    expect(page.locator("#status")).to_be_empty()
