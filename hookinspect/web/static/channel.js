// A relay channel's page: its recent events, live. Captured text only ever enters the page
// through textContent; the token is read from the URL's #fragment, which browsers never send.
"use strict";

const channel = location.pathname.split("/")[1];
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const KEEP = 100;  // events shown at most

// Control characters as visible escapes (\x1b), as the terminal and the inspector show them.
function visible(text) {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g,
                      (c) => c.charCodeAt(0) < 0x100 ? "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0")
                                                    : "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = visible(text);
  if (className) node.className = className;
  return node;
}

function bodyText(base64, headers) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const text = new TextDecoder("utf-8", {fatal: false}).decode(bytes);
  const type = (headers.find(([name]) => name.toLowerCase() === "content-type") || ["", ""])[1];
  if (/json/i.test(type)) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as it came */ }
  }
  return text;
}

function show(raw) {
  const item = element("li", undefined, "event");
  const when = new Date(raw.received_us / 1000).toLocaleTimeString();
  const title = element("p", undefined, "event-title");
  if (raw.sealed !== undefined) {  // a sealed channel: only the laptop with its key can read it
    title.append(element("span", `#${raw.id} `, "s-bold"), element("span", "sealed", "s-bold s-magenta"),
                 element("span", `  ${Math.max(0, atob(raw.sealed).length - 48)} bytes of JSON, encrypted`),
                 element("span", "  " + when, "s-dim"));
    item.append(title);
  } else {
    title.append(element("span", `#${raw.id} `, "s-bold"), element("span", raw.method + " ", "s-bold s-magenta"),
                 element("span", raw.path + (raw.query ? "?" + raw.query : "")), element("span", "  " + when, "s-dim"));
    const headers = element("pre", raw.headers.map(([name, value]) => `${name}: ${value}`).join("\n"), "event-headers");
    const body = element("pre", bodyText(raw.body_base64, raw.headers), "event-body");
    item.append(title, headers, body);
  }
  const list = document.getElementById("events");
  list.prepend(item);
  while (list.children.length > KEEP) list.lastChild.remove();
}

document.getElementById("channel-url").textContent = location.origin + "/" + channel;
const query = new URLSearchParams({raw: "1", smee: "0", recent: "20", ...(token ? {token} : {})});
const stream = new EventSource(`/${channel}?${query}`);
const status = document.getElementById("status");
stream.addEventListener("ready", () => { status.textContent = "live"; });
stream.addEventListener("message", (event) => show(JSON.parse(event.data).hookinspect));
stream.addEventListener("error", () => {
  status.textContent = token ? "disconnected, retrying…" : "disconnected: a sealed channel needs its token (open the URL with #token=…)";
});
