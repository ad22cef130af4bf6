// The demo inbox: a bell with the unread count, the newest notifications, and a live feed.
// The user's token comes in the URL fragment (#token=...), which never reaches a server log.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const state = { user: null, unread: 0, items: new Map(), nextCursor: null, feed: null };
const $ = (id) => document.getElementById(id);

function userOf(jwt) {
  const part = jwt.split(".")[1] || "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(json).sub;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(method, path, body) {
  // A notification the feed pushed may not be stored yet: the service answers 409 with
  // Retry-After until the sink has written it.
  for (let attempt = 0; attempt < 30; attempt++) {
    const response = await fetch(`/v1/users/${encodeURIComponent(state.user)}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 409) {
      const wait = Number(response.headers.get("Retry-After") || "1");
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    const data = await response.json();
    if (!response.ok) throw new Error(`${response.status}: ${data.error}`);
    return data;
  }
  throw new Error("the notification was not stored in time");
}

function setUnread(count) {
  state.unread = Math.max(0, count);
  $("badge").textContent = String(state.unread);
  $("badge").hidden = state.unread === 0;
  document.title = state.unread ? `(${state.unread}) notipipe inbox` : "notipipe inbox";
}

function render(item) {
  let li = document.querySelector(`li[data-id="${CSS.escape(item.delivery_id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.id = item.delivery_id;
    li.innerHTML = '<span class="title"></span><span class="body"></span><time></time>' +
      '<span class="actions"><button class="toggle-read" type="button"></button>' +
      '<button class="archive" type="button">Archive</button></span>';
    li.querySelector(".toggle-read").addEventListener("click", () => toggleRead(item.delivery_id));
    li.querySelector(".archive").addEventListener("click", () => archive(item.delivery_id));
  }
  li.className = item.read ? "read" : "unread";
  li.querySelector(".title").textContent = item.title;
  li.querySelector(".body").textContent = item.body;
  li.querySelector("time").textContent = new Date(item.created_at).toLocaleString();
  li.querySelector("time").dateTime = item.created_at;
  li.querySelector(".toggle-read").textContent = item.read ? "Mark unread" : "Mark read";
  return li;
}

function place(item, where) {
  const known = state.items.has(item.delivery_id);
  state.items.set(item.delivery_id, item);
  const li = render(item);
  if (!known) {
    if (where === "top") $("list").prepend(li); else $("list").append(li);
  }
  return known;
}

async function toggleRead(id) {
  try {
    const updated = await api("PATCH", `/notifications/${encodeURIComponent(id)}`,
      { read: !state.items.get(id).read });
    place(updated);
    setUnread(updated.unread);
  } catch (error) { showError(String(error)); }
}

async function archive(id) {
  try {
    const updated = await api("PATCH", `/notifications/${encodeURIComponent(id)}`, { archived: true });
    state.items.delete(id);
    document.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.remove();
    setUnread(updated.unread);
  } catch (error) { showError(String(error)); }
}

async function markAll() {
  try {
    const done = await api("POST", "/notifications/mark-all", { read: true });
    for (const item of state.items.values()) place({ ...item, read: true });
    setUnread(done.unread);
  } catch (error) { showError(String(error)); }
}

async function loadPage() {
  const query = state.nextCursor ? `&cursor=${encodeURIComponent(state.nextCursor)}` : "";
  const page = await api("GET", `/notifications?limit=20${query}`);
  for (const item of page.items) place(item, "bottom");
  state.nextCursor = page.next_cursor;
  $("more").hidden = !page.next_cursor;
  return page;
}

function openFeed(after) {
  const url = `/v1/users/${encodeURIComponent(state.user)}/feed?access_token=${encodeURIComponent(token)}` +
    `&after=${encodeURIComponent(after)}`;
  // On a reconnect the browser sends Last-Event-ID: the service replays what was missed.
  const feed = new EventSource(url);
  feed.addEventListener("ready", () => {
    document.body.dataset.feed = "live";
    $("status").textContent = "live";
  });
  feed.addEventListener("notification", (event) => {
    const item = JSON.parse(event.data);
    const known = place(item, "top");
    if (!known && !item.read) setUnread(state.unread + 1);
  });
  feed.addEventListener("reload", () => { feed.close(); start(); });
  feed.onerror = () => {
    document.body.dataset.feed = "reconnecting";
    $("status").textContent = "reconnecting…";
  };
  state.feed = feed;
}

async function start() {
  if (!token) {
    showError("no token: open this page as /#token=<a token from `notipipe inbox token --user ...`>");
    return;
  }
  try {
    state.user = userOf(token);
  } catch (error) {
    showError("the token in the URL is not a token");
    return;
  }
  $("who").textContent = state.user;
  state.items.clear();
  state.nextCursor = null;
  $("list").replaceChildren();
  try {
    const first = await loadPage();
    setUnread((await api("GET", "/unread-count")).unread);
    openFeed(first.feed_after);
  } catch (error) { showError(String(error)); }
}

$("bell").addEventListener("click", () => {
  const open = $("panel").hidden;
  $("panel").hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
});
$("mark-all").addEventListener("click", markAll);
$("more").addEventListener("click", () => loadPage().catch((error) => showError(String(error))));
start();
