// The status page's live updates: the guard renders the page with its current status (GET /), and
// this script swaps in the same part, rendered by the guard again (GET /status/live), every few
// seconds. No markup is built here: the guard's renderer escapes every value it inserts.

const REFRESH_MS = 2000;

async function refresh() {
  try {
    const response = await fetch("/status/live", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    document.getElementById("live").innerHTML = await response.text();
    const state = document.getElementById("state");
    state.dataset.state = "live";
    state.title = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    // The last good update stays in view, marked as such.
    const state = document.getElementById("state");
    state.dataset.state = "stale";
    state.title = `last refresh failed: ${error.message}`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

void refresh();
