"""Browser-test support: headless Debian Chromium driven by Playwright, axe-core from npm (node_modules,
installed by scripts/bootstrap.sh dev), accessible-name checks and screenshots at 320 and 1280 px.

`target` below is a Playwright Page or Frame: kdgrade runs inside the LMS's cross-site iframe, so most
checks run in the tool's frame, and screenshots are of the whole LMS page around it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Frame, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
WIDTHS = (320, 1280)

Target = Page | Frame


def _inject_axe(target: Target) -> None:
    if not target.evaluate("() => typeof window.axe === 'object'"):
        if not AXE_JS.exists():
            raise RuntimeError(f"{AXE_JS} is missing: run scripts/bootstrap.sh dev (npm ci)")
        target.evaluate(AXE_JS.read_text())


def axe_violations(target: Target) -> list[dict[str, Any]]:
    """axe-core's violations on the current document of `target` (all rules it runs by default:
    WCAG 2.0/2.1 A and AA plus best practices), each reduced to id, impact, help and the offending nodes."""
    _inject_axe(target)
    result = target.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"][:200] for n in v["nodes"]][:5]} for v in result["violations"]]


def assert_no_axe_violations(target: Target, page_name: str) -> None:
    found = axe_violations(target)
    assert not found, f"axe-core on {page_name}:\n{json.dumps(found, indent=1)}"


_NAMES_JS = """() => {
  axe.setup(document);
  try {
    const sel = 'input:not([type=hidden]), select, textarea, button, a[href], [role=button], [role=link], '
              + '[role=checkbox], [role=radio], [role=tab], [role=menuitem], [role=switch], [tabindex]';
    const out = [];
    for (const el of document.querySelectorAll(sel)) {
      if (!el.getClientRects().length || el.closest('[aria-hidden=true]') || el.matches(':disabled')) continue;
      const v = axe.utils.getNodeFromTree(el);
      const name = (axe.commons.text.accessibleTextVirtual(v) || '').replace(/\\s+/g, ' ').trim();
      out.push({tag: el.tagName.toLowerCase(), type: el.type || '', name, href: el.getAttribute('href') || '',
                radio: el.type === 'radio' ? el.name : '', html: el.outerHTML.slice(0, 160)});
    }
    return out;
  } finally { axe.teardown(); }
}"""


def accessible_controls(target: Target) -> list[dict[str, str]]:
    """Every visible, enabled control of the document with its accessible name (computed by axe-core)."""
    _inject_axe(target)
    return target.evaluate(_NAMES_JS)


def assert_unique_accessible_names(target: Target) -> list[dict[str, str]]:
    """Every control has a non-empty accessible name, and no two controls share one (links to the same
    address, and radio buttons of different groups that share their option label, excepted)."""
    controls = accessible_controls(target)
    nameless = [c["html"] for c in controls if not c["name"]]
    assert not nameless, f"controls without an accessible name: {nameless}"
    seen: dict[str, dict[str, str]] = {}
    duplicates = []
    for c in controls:
        key = c["name"].casefold()
        first = seen.get(key)
        if first is None:
            seen[key] = c
        elif not (c["href"] and c["href"] == first["href"]):
            duplicates.append((first["html"], c["html"]))
    assert not duplicates, "controls sharing an accessible name:\n" + "\n".join(f"  {a}\n  {b}" for a, b in duplicates)
    return controls


def horizontal_overflow(target: Target) -> int:
    """How many CSS pixels the document is wider than its viewport (0: no horizontal scroll)."""
    return target.evaluate("() => Math.max(0, document.documentElement.scrollWidth"
                           " - document.documentElement.clientWidth)")


def wider_than_viewport(target: Target) -> list[str]:
    """The innermost elements that stick out to the right of the viewport (what makes it scroll)."""
    return target.evaluate("""() => {
      const w = document.documentElement.clientWidth, out = [];
      for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.right > w + 0.5 && ![...el.children].some(c => c.getBoundingClientRect().right > w + 0.5))
          out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} right=${Math.round(r.right)}`);
      }
      return out.slice(0, 8);
    }""")


def screenshot(page: Page, name: str, frame: Frame | None = None) -> dict[int, Path]:
    """Full-page screenshots at 320 and 1280 px wide: var/screenshots/<name>-320.png and -1280.png.
    With `frame`, also checks that the tool's document does not scroll sideways at either width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or {"width": 1280, "height": 900}
    out: dict[int, Path] = {}
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            page.wait_for_timeout(300)  # layout, and the frame's resize message to the LMS page
            # Chromium paints a cross-site (out-of-process) frame only where the viewport shows it, so
            # the viewport grows to the whole page instead of a full-page capture.
            height = page.evaluate("() => document.documentElement.scrollHeight")
            page.set_viewport_size({"width": width, "height": max(400, min(height, 6000))})
            page.wait_for_timeout(150)
            if frame is not None:
                over = horizontal_overflow(frame)
                assert over == 0, f"{name} at {width} px scrolls sideways by {over} px: {wider_than_viewport(frame)}"
            path = SCREENSHOTS / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            out[width] = path
    finally:
        page.set_viewport_size(before)
    return out


def tool_frame(page: Page) -> Frame:
    """The kdgrade frame of an LMS page opened by DevPlatform.frame_url()."""
    handle = page.wait_for_selector("iframe#tool")
    frame = handle.content_frame()
    assert frame is not None
    return frame


def ready(frame: Frame, selector: str) -> Frame:
    """Wait for a kdgrade page showing `selector` whose script has set up its keyboard handlers."""
    frame.wait_for_selector(f"html[data-ready] {selector}")
    return frame


def check_page(page: Page, frame: Frame, name: str) -> None:
    """What every kdgrade page must pass: zero axe violations, unique accessible names, no sideways scroll
    at 320 px, and its screenshots."""
    frame.wait_for_load_state()
    assert_no_axe_violations(frame, name)
    assert_unique_accessible_names(frame)
    screenshot(page, name, frame)
