"""Debian's Chromium for the browser benchmarks: headless, no network of its own, driven by
Playwright (``playwright install`` cannot fetch a browser here; the system one is used)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright, executable: str = CHROMIUM):
    """A headless Chromium browser from a ``sync_playwright()`` context."""
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
