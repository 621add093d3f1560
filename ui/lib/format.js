// Shared formatting: durations, times, service colours.  Times in the UI model are
// microseconds since the epoch (Numbers), as Jaeger's model has them.

/** A duration in microseconds as a short human string: 850µs, 12.3ms, 4.56s, 2m 3s. */
export function duration(us) {
  if (!Number.isFinite(us)) return "–";
  const a = Math.abs(us);
  if (a < 1) return `${Math.round(us * 1000)}ns`;
  if (a < 1000) return `${+us.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0)}µs`;
  if (a < 1e6) return `${+(us / 1000).toFixed(a < 1e4 ? 2 : a < 1e5 ? 1 : 0)}ms`;
  if (a < 6e7) return `${+(us / 1e6).toFixed(a < 1e7 ? 2 : 1)}s`;
  const s = Math.round(us / 1e6);
  return s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** A wall-clock time (µs since the epoch) in the browser's time zone, to the millisecond. */
export function timestamp(us) {
  if (!Number.isFinite(us)) return "–";
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A stable colour per service name (same name, same colour on every page). */
export function serviceColor(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  const hue = (h >>> 0) % 360;
  return `hsl(${hue} 55% 45%)`;
}

/** Create an element: el("td", {className: "x", onclick}, child, "text", ...). */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else if (k === "className" || k === "textContent" || k === "htmlFor" || k === "value") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Load a page's own stylesheet once (`ui/pages/<page>.css`), resolved when it applies. */
export function stylesheet(href) {
  const url = new URL(href, location.origin).href;
  let link = [...document.querySelectorAll("link[rel=stylesheet]")].find((l) => l.href === url);
  if (link) return link.sheet ? Promise.resolve() : new Promise((ok) => link.addEventListener("load", ok, { once: true }));
  link = Object.assign(document.createElement("link"), { rel: "stylesheet", href: url });
  const loaded = new Promise((ok) => { link.addEventListener("load", ok, { once: true }); link.addEventListener("error", ok, { once: true }); });
  document.head.append(link);
  return loaded;
}
