// The router: the path names the page, the query string holds the page's state, so every view
// is a shareable link and the back button works.  Each page module exports
// `render(main, ctx)`, where ctx = {path, params (URLSearchParams), match (route groups),
// signal (aborted when the user leaves the page)}; it may return a cleanup function.
import { navigate, onNavigate } from "./lib/nav.js";

const ROUTES = [
  [/^\/(?:search)?$/, "search"],
  [/^\/trace\/([^/]+)$/, "trace"],
  [/^\/compare$/, "compare"],
  [/^\/graph$/, "graph"],
  [/^\/open$/, "open"],
  [/^\/performance$/, "performance"],
  [/^\/alerts$/, "alerts"],
];

const main = document.getElementById("main");
let current = null; // {cleanup, controller}

async function route() {
  const url = new URL(location.href);
  let page = null, match = null;
  for (const [re, name] of ROUTES) {
    match = url.pathname.match(re);
    if (match) { page = name; break; }
  }
  if (current) {
    current.controller.abort();
    if (typeof current.cleanup === "function") current.cleanup();
    current = null;
  }
  for (const a of document.querySelectorAll("header nav a")) {
    a.toggleAttribute("aria-current", a.dataset.page === (page === "trace" ? "" : page));
  }
  main.replaceChildren();
  if (!page) {
    main.append(Object.assign(document.createElement("p"), { className: "error", textContent: `No page at ${url.pathname}.` }));
    return;
  }
  const controller = new AbortController();
  current = { controller, cleanup: null };
  const module = await import(`./pages/${page}.js`);
  if (controller.signal.aborted) return;
  try {
    current.cleanup = await module.render(main, {
      path: url.pathname, params: url.searchParams, match: match.slice(1).map(decodeURIComponent),
      signal: controller.signal,
    });
  } catch (err) {
    if (controller.signal.aborted) return;
    console.error(err);
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = err && err.message ? err.message : String(err);
    main.append(p);
  }
}

document.querySelector("form.jump").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = e.target.elements.id.value.trim();
  if (id) navigate(`/trace/${encodeURIComponent(id)}`);
  e.target.reset();
});

onNavigate(route);
route();
