"""The web console in a real headless browser (Debian's chromium, driven by Playwright): open
the console of `eventbook serve` (with a token), open an account's passbook, send a deposit,
see the new row in the passbook and the live log update. The browser is the system's
chromium; the project's setup installs it (.ci/run), and a test never skips for want of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from test_serve import call, eventbook, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_console_shows_a_deposit_in_the_passbook_and_the_live_log(tmp_path: Path) -> None:
    assert CHROMIUM, "chromium is missing: apt-get install chromium (.ci/run does)"
    store, tokens = str(tmp_path / "bank"), str(tmp_path / "tokens.json")
    token = eventbook("tokens", "create", "--name", "clerk", "--role", "write", "--tokens", tokens)
    token = token.stdout.strip()
    app = "eventbook.examples.bank:app"
    with serving("--store", store, "serve", "--app", app, "--tokens", tokens) as base:
        assert call("POST", f"{base}/commands/OpenAccount", {"account_id": "a1"}, token)[0] == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"{base}/console")
                page.fill("#token", token)
                page.dispatch_event("#token", "change")
                expect(page.locator("#log tbody tr[data-position='1']")).to_be_visible()
                page.click("#streams li[data-stream='account-a1']")
                expect(page.locator("#passbook tbody tr")).to_have_count(1)
                page.select_option("#command-type", "Deposit")
                page.fill("#command-body", '{"account_id": "a1", "amount": 25}')
                page.click("#send")
                expect(page.locator("#result")).to_contain_text("accepted at position 2")
                row = page.locator("#passbook tbody tr[data-position='2']")
                expect(row).to_contain_text("Deposited")
                expect(row).to_contain_text("balance 25")
                expect(page.locator("#log tbody tr[data-position='2']")).to_contain_text(
                    "Deposited"
                )
                # a command sent by someone else shows up live
                call("POST", f"{base}/commands/Deposit", {"account_id": "a1", "amount": 5}, token)
                expect(page.locator("#log tbody tr[data-position='3']")).to_be_visible()
                expect(page.locator("#passbook tbody tr[data-position='3']")).to_contain_text(
                    "balance 30"
                )
            finally:
                browser.close()
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0


def test_the_console_draws_the_books_and_their_corrections(tmp_path: Path) -> None:
    assert CHROMIUM, "chromium is missing: apt-get install chromium (.ci/run does)"
    store = str(tmp_path / "shops")
    assert eventbook("--store", store, "demo", "retail").returncode == 0
    app = "eventbook.examples.retail:app"
    with (
        serving("--store", store, "serve", "--app", app, "--no-auth") as base,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/console")
            row = page.locator("#corrections tbody tr[data-period='2026-11-24']")
            expect(row).to_contain_text("2200")
            expect(row).to_contain_text("4200")
            correction = page.locator("#books-chart line[data-correction='2026-11-24']")
            expect(correction).to_have_count(1)
            expect(page.locator("#books-chart rect")).to_have_count(1)
            expect(page.locator("#books-measure")).to_contain_text("Asia/Taipei")
        finally:
            browser.close()
