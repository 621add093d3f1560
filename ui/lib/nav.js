// Navigation inside the one-page UI: same-origin links and `navigate()` push a history entry
// and re-render; `replaceParams()` rewrites the current URL's query (the page's state) without
// a new entry unless asked.
const listeners = [];

export function onNavigate(fn) { listeners.push(fn); }

function notify() { for (const fn of listeners) fn(); }

export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (target.origin !== location.origin) { location.href = target.href; return; }
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  notify();
  window.scrollTo(0, 0);
}

/** Write `params` (object or URLSearchParams) as the current URL's query string.  With
 *  `push`, a new history entry (the back button returns to the previous state). */
export function replaceParams(params, { push = false } = {}) {
  const url = new URL(location.href);
  url.search = new URLSearchParams(params).toString();
  if (url.href === location.href) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

window.addEventListener("popstate", notify);

// Plain same-origin links navigate without a reload (modifier clicks open tabs as usual).
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/ui/")) return;
  e.preventDefault();
  navigate(url.href);
});
