"""Benchmark (not a test): how long the page's latent explorers take to decode one digit in the browser.

    python benchmarks/explorer_speed.py           # prints one JSON line
    python benchmarks/explorer_speed.py --save    # and writes benchmarks/explorer_speed.json

Opens index.html (from disk, as a reader does) in Chromium driven by Playwright, at desktop size
(1280 × 900), first at full speed and then with the CPU throttled 4× (Chrome DevTools Protocol,
Emulation.setCPUThrottlingRate: the usual stand-in for a mid-range phone). For each explorer it
times, in the page with performance.now(), over many random latent points inside the explorer's view:

- decode_ms: the decoder alone (window.vaeExplorer.decode: three int8 Dense layers in JavaScript,
  z → 784 pixel probabilities), per digit;
- set_point_ms: what one pointer move costs, through the page's test hook window.vaeExplorer.setZ:
  decode, draw the digit and the marker on the plane, update the readout and the description, and
  read the digit canvas back (the hook's return value; a pointer move does not do that last part).
  In 3-D the hook also sets the slice (z₂), which redraws the plane's points, as moving the
  slider does; a pointer move over the plane does not, so there it costs less than this.

The medians of several rounds are reported. Chromium is /usr/bin/chromium unless $VAE_PAGE_CHROMIUM
names another, with the arguments the page's tests use.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(REPO_ROOT / "code"))

CHROMIUM = os.environ.get("VAE_PAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 900}
THROTTLE = 4  # the CPU slow-down for the "phone" figure

# Runs in the page: `rounds` rounds of `count` random points each (a fixed-seed generator, inside the
# view's extent and, in 3-D, the slice's); returns the median milliseconds per point of each round.
TIME_IN_PAGE = """([name, count, rounds]) => {
  const api = window.vaeExplorer;
  const first = api.state(name);
  const dim = first.z.length, extent = first.extent;
  let seed = 12345;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const points = [];
  for (let i = 0; i < count; i++) points.push(Array.from({length: dim}, () => (2 * random() - 1) * extent * 0.9));
  const median = values => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const time = action => {
    const perRound = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      for (const z of points) action(z);
      perRound.push((performance.now() - start) / count);
    }
    return median(perRound);
  };
  api.decode(name, points[0]);  // warm up the JIT and unpack the weights
  const decode = time(z => api.decode(name, z));
  const setPoint = time(z => api.setZ(name, z));
  api.setZ(name, first.z);
  return {decode_ms: decode, set_point_ms: setPoint, latent_dim: dim};
}"""


def measure_explorers(root=REPO_ROOT, count=100, rounds=7):
    """{"benchmark": "explorer_decode", "desktop": {model: {...}}, "throttled_4x": {...}, ...}."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set VAE_PAGE_CHROMIUM)")
    result = {"benchmark": "explorer_decode", "page": "index.html", "viewport": DESKTOP, "points_per_round": count,
              "rounds": rounds, "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        result["browser"] = f"Chromium {browser.version}"
        for label, throttle in [("desktop", 1), (f"throttled_{THROTTLE}x", THROTTLE)]:
            context = browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            if throttle > 1:
                context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": throttle})
            page.goto((Path(root) / "index.html").as_uri(), wait_until="load")
            # Each explorer starts when it scrolls into view: scroll through the page once.
            height = page.evaluate("document.documentElement.scrollHeight")
            for y in range(0, height + 600, 500):
                page.evaluate(f"window.scrollTo(0, {y})")
                page.wait_for_timeout(25)
            page.wait_for_function("window.vaeExplorer && window.vaeExplorer.models().length === 3", timeout=60_000)
            result[label] = {}
            for name in sorted(page.evaluate("window.vaeExplorer.models()")):
                timing = page.evaluate(TIME_IN_PAGE, [name, count, rounds])
                result[label][name] = {key: round(value, 4) if isinstance(value, float) else value
                                       for key, value in timing.items()}
            context.close()
        browser.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save", action="store_true", help="also write benchmarks/explorer_speed.json")
    args = parser.parse_args()
    result = measure_explorers()
    print(json.dumps(result))
    if args.save:
        from vae.saving import save_json

        save_json(result, HERE / "explorer_speed.json")


if __name__ == "__main__":
    main()
