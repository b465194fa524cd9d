/*
 * The kiosk fleet console. It talks only to salt-api (the origin that served
 * it): POST /login with eauth, then runner calls on POST / with the token in
 * the X-Auth-Token header (never a cookie: requests go with credentials
 * "omit"). The token lives in sessionStorage, so it ends with the tab.
 *
 * Every value that comes from the fleet (kiosk codes, grains, alert texts,
 * salt-api's own messages) reaches the page through textContent or an
 * attribute, never as HTML: nothing here parses a string into the page.
 *
 * Views (the part of the address after #): fleet, plan, events, releases,
 * env, kiosk/<minion id>. Strings are in strings.js.
 */
(function () {
  "use strict";

  // The console never runs inside another site's frame (clickjacking): rest_cherrypy
  // sends no frame-ancestors header and a meta tag cannot set one.
  if (window.top !== window.self) {
    document.addEventListener("DOMContentLoaded", () => (document.body.textContent = "The fleet console cannot be shown inside a frame."));
    return;
  }

  /* ---------- strings ---------- */

  const LANGS = window.KIOSK_STRINGS || {};
  const LANG = LANGS[(navigator.language || "en").slice(0, 2)] ? (navigator.language || "en").slice(0, 2) : "en";

  function t(key, vars) {
    const template = (LANGS[LANG] && LANGS[LANG][key]) || (LANGS.en && LANGS.en[key]) || key;
    // One pass: a value that itself contains "{name}" is never filled in again.
    return template.replace(/\{(\w+)\}/g, (whole, name) => (vars && name in vars ? String(vars[name]) : whole));
  }

  /* ---------- DOM ---------- */

  // el("a", {href: "#/x", class: "c", onclick: fn}, "text", child, ...): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function text(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toLocaleString();
  }

  function say(message, kind) {
    const status = document.getElementById("status");
    status.className = kind || "";
    status.textContent = message || "";
  }

  function table(headers, rows, attrs) {
    return el(
      "table",
      attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)
    );
  }

  /* ---------- session and salt-api ---------- */

  const TOKEN_KEY = "kiosk-console-session";

  const session = {
    load() {
      try {
        return JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
      } catch (err) {
        return null;
      }
    },
    save(value) {
      sessionStorage.setItem(TOKEN_KEY, JSON.stringify(value));
    },
    clear() {
      sessionStorage.removeItem(TOKEN_KEY);
    },
  };

  class ApiError extends Error {
    constructor(message, status, refused) {
      super(message);
      this.status = status;
      this.refused = refused; // true: the function refused the input ({"error": ...})
    }
  }

  // salt-api answers a refusal with an HTML page; show its text, parsed, never inserted.
  async function answerText(resp) {
    const body = await resp.text();
    if (/^\s*</.test(body)) {
      const doc = new DOMParser().parseFromString(body, "text/html");
      const main = doc.querySelector("#content") || doc.body;
      const words = (main ? main.textContent : body).replace(/\s+/g, " ").trim();
      return words.replace(/\s*Powered by CherryPy.*$/i, "");
    }
    try {
      const data = JSON.parse(body);
      if (data && data.return) return text(data.return);
    } catch (err) {
      /* not JSON: shown as it is */
    }
    return body.trim() || resp.statusText;
  }

  function sessionEnded(reason) {
    session.clear();
    state.user = null;
    showLogin(reason);
  }

  async function api(fun, kwarg) {
    const current = session.load();
    if (!current || !current.token) {
      // Another call has just ended the session and shown the sign-in.
      throw new ApiError(t("session.none"), 401, false);
    }
    if (current.expire && current.expire * 1000 < Date.now()) {
      sessionEnded(t("session.expired"));
      throw new ApiError(t("session.expired"), 401, false);
    }
    const resp = await fetch("/", {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-Auth-Token": current.token },
      body: JSON.stringify([{ client: "runner", fun: fun, kwarg: kwarg || {} }]),
    });
    if (!resp.ok) {
      const message = await answerText(resp);
      // salt-api: an unknown, logged-out or expired token is "No permission";
      // a known token without the right gets "Authentication failure ...".
      const stored = session.load();
      if (resp.status === 401 && /No permission/i.test(message) && stored && stored.token === current.token) {
        sessionEnded(t("session.expired")); // not a newer session signed in while this call ran
      }
      throw new ApiError(message, resp.status, false);
    }
    const data = await resp.json();
    const ret = data && data.return ? data.return[0] : undefined;
    if (ret && typeof ret === "object" && !Array.isArray(ret) && typeof ret.error === "string" && ret.retcode) {
      throw new ApiError(ret.error, resp.status, true);
    }
    if (typeof ret === "string" && /^(Exception occurred|Passed invalid arguments|'[^']+' is not available)/.test(ret)) {
      throw new ApiError(ret, resp.status, true);
    }
    return ret;
  }

  async function login(username, password, eauth) {
    const resp = await fetch("/login", {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ username: username, password: password, eauth: eauth }),
    });
    if (!resp.ok) throw new ApiError(resp.status === 401 ? t("login.refused") : await answerText(resp), resp.status);
    const data = (await resp.json()).return[0];
    session.save({ token: data.token, expire: data.expire, user: data.user, eauth: data.eauth, perms: data.perms || [] });
  }

  async function logout() {
    const current = session.load();
    session.clear();
    if (current && current.token) {
      try {
        await fetch("/logout", {
          method: "POST",
          credentials: "omit",
          headers: { Accept: "application/json", "X-Auth-Token": current.token },
        });
      } catch (err) {
        /* the token is dropped here either way */
      }
    }
    showLogin(t("login.signedout"));
  }

  /* ---------- rights (from /login's perms, as salt-api's runner ACL reads them) ---------- */

  function matches(pattern, fun) {
    const glob = new RegExp("^" + pattern.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    if (glob.test(fun)) return true;
    try {
      return new RegExp("^(?:" + pattern + ")$").test(fun);
    } catch (err) {
      return false;
    }
  }

  function allowed(fun) {
    const current = session.load();
    for (const perm of (current && current.perms) || []) {
      if (perm === "@runner" || perm === ".*") return true;
      if (perm && typeof perm === "object") {
        for (const [key, funs] of Object.entries(perm)) {
          if (key !== "@runner") continue;
          const list = Array.isArray(funs) ? funs : [funs];
          if (list.some((f) => typeof f === "string" && matches(f, fun))) return true;
        }
      }
    }
    return false;
  }

  /* ---------- layout ---------- */

  const state = { user: null, fleet: null, view: null };

  const VIEWS = [
    ["fleet", "nav.fleet"],
    ["plan", "nav.plan"],
    ["events", "nav.events"],
    ["releases", "nav.releases"],
    ["env", "nav.env"],
  ];

  function header() {
    const top = clear(document.getElementById("top"));
    const current = session.load();
    const nav = el("nav", { "aria-label": t("nav.label") });
    if (current) {
      for (const [name, key] of VIEWS) {
        nav.appendChild(el("a", { href: "#/" + name, "data-view": name, class: "nav" }, t(key)));
      }
    }
    append(top, [
      el("h1", {}, t("app.title")),
      nav,
      current
        ? el(
            "div",
            { class: "who" },
            el("span", { class: "user" }, t("app.user", { user: current.user })),
            el("button", { type: "button", id: "logout", onclick: logout }, t("app.logout"))
          )
        : null,
    ]);
  }

  function markNav(view) {
    for (const link of document.querySelectorAll("nav a.nav")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function main() {
    return clear(document.getElementById("main"));
  }

  function failure(err, where) {
    const message = err instanceof ApiError && err.status === 401 ? t("error.refused", { message: err.message }) : err.message;
    const box = el("p", { class: "error", role: "alert" }, message);
    if (where) append(where, [box]);
    return box;
  }

  /* ---------- sign-in ---------- */

  function showLogin(reason) {
    say("");
    header();
    const root = main();
    const error = el("p", { class: "error", role: "alert", id: "login-error" }, reason && reason !== t("login.signedout") ? reason : "");
    const form = el(
      "form",
      { id: "login", class: "card narrow", autocomplete: "on" },
      el("h2", {}, t("login.title")),
      reason === t("login.signedout") ? el("p", { class: "muted" }, reason) : null,
      el("label", { for: "username" }, t("login.username")),
      el("input", { id: "username", name: "username", required: true, autocomplete: "username" }),
      el("label", { for: "password" }, t("login.password")),
      el("input", { id: "password", name: "password", type: "password", required: true, autocomplete: "current-password" }),
      el("label", { for: "eauth" }, t("login.eauth")),
      el("select", { id: "eauth", name: "eauth" }, ["pam", "ldap", "file"].map((v) => el("option", { value: v }, v))),
      el("button", { type: "submit", class: "primary" }, t("login.submit")),
      error
    );
    const submit = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      submit.disabled = true;
      error.textContent = "";
      try {
        await login(form.username.value, form.password.value, form.eauth.value);
        header();
        if (!location.hash || location.hash === "#/" || location.hash === "#main") location.hash = "#/fleet";
        else route();
      } catch (err) {
        error.textContent = err.message;
      } finally {
        submit.disabled = false;
      }
    });
    root.appendChild(form);
    form.username.focus();
  }

  /* ---------- fleet ---------- */

  const POWER_CLASS = { on: "power-on", off: "power-off", unknown: "power-unknown" };

  // One tile per kiosk, cloned from a template: 10,000 of them are drawn at once.
  let tileTemplate = null;

  function kioskTile(kiosk) {
    if (!tileTemplate) {
      tileTemplate = el("a", { class: "tile" }, el("span", { class: "code" }), el("span", { class: "release" }), el("span", { class: "state" }));
    }
    const power = kiosk.power || "unswept";
    const tile = tileTemplate.cloneNode(true);
    tile.href = "#/kiosk/" + encodeURIComponent(kiosk.minion_id);
    tile.className = "tile " + (POWER_CLASS[kiosk.power] || "power-unswept") + (kiosk.alert ? " alerting" : "");
    tile.dataset.kiosk = kiosk.minion_id;
    tile.title = t("fleet.tile", { code: kiosk.code, power: t("power." + power), expected: text(kiosk.expected) });
    const [code, release, shown] = tile.children;
    code.textContent = kiosk.code;
    release.textContent = kiosk.release || t("fleet.norelease");
    if (kiosk.release_ok === false) release.className = "release bad";
    shown.textContent = t("power." + power);
    if (kiosk.alert) {
      tile.appendChild(el("span", { class: "alert-text" }, t("fleet.alert", { reason: text(kiosk.alert.reason) })));
    }
    return tile;
  }

  function fleetSection(campus, kiosks) {
    const grid = el("div", { class: "tiles" });
    const fragment = document.createDocumentFragment();
    for (const kiosk of kiosks) fragment.appendChild(kioskTile(kiosk));
    grid.appendChild(fragment);
    return el(
      "section",
      { class: "campus", "data-campus": campus.name },
      el("h2", {}, t("fleet.campus", { name: campus.name, count: kiosks.length })),
      el("p", { class: "relays" }, t("fleet.relays"), " ", campus.relays.length ? campus.relays.join(", ") : "—"),
      kiosks.length ? grid : el("p", { class: "muted" }, t("fleet.empty"))
    );
  }

  function renderFleet(data, filters, into) {
    clear(into);
    const needle = filters.search.trim().toLowerCase();
    const counts = { kiosks: 0, on: 0, off: 0, unknown: 0, unswept: 0, alerts: 0 };
    const alerts = [];
    for (const campus of data.campuses) {
      if (filters.campus && campus.name !== filters.campus) continue;
      const kiosks = campus.kiosks.filter(
        (k) =>
          (!filters.group || (k.groups || []).includes(filters.group)) &&
          (!needle || String(k.code).toLowerCase().includes(needle))
      );
      for (const kiosk of kiosks) {
        counts.kiosks += 1;
        counts[kiosk.power in POWER_CLASS ? kiosk.power : "unswept"] += 1;
        if (kiosk.alert) {
          counts.alerts += 1;
          alerts.push(kiosk);
        }
      }
      into.appendChild(fleetSection(campus, kiosks));
    }
    into.insertBefore(
      el(
        "p",
        { class: "counts", id: "fleet-counts" },
        t("fleet.counts", counts)
      ),
      into.firstChild
    );
    return alerts;
  }

  async function showFleet() {
    const root = main();
    const filters = { campus: "", group: "", search: "" };
    const body = el("div", { id: "fleet" });
    const campusSelect = el("select", { id: "f-campus" }, el("option", { value: "" }, t("fleet.allcampuses")));
    const groupSelect = el("select", { id: "f-group" }, el("option", { value: "" }, t("fleet.allgroups")));
    const search = el("input", { id: "f-search", type: "search", maxlength: 64, placeholder: t("fleet.searchhint") });
    const bar = el(
      "form",
      { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      el("label", { for: "f-campus" }, t("fleet.campusfilter")),
      campusSelect,
      el("label", { for: "f-group" }, t("fleet.groupfilter")),
      groupSelect,
      el("label", { for: "f-search" }, t("fleet.search")),
      search,
      el("button", { type: "button", onclick: () => showFleet() }, t("app.refresh"))
    );
    append(root, [el("h2", { class: "view" }, t("nav.fleet")), bar, actionsPanel(), body]);
    say(t("app.loading"));
    let data;
    try {
      data = await api("kiosk_inventory.fleet", {});
      if (!data || !Array.isArray(data.campuses)) throw new Error(t("error.answer", { fun: "kiosk_inventory.fleet" }));
    } catch (err) {
      say("");
      failure(err, body);
      return;
    }
    say("");
    performance.mark("fleet:data"); // bench/console_render.py times the drawing from here
    state.fleet = data;
    const groups = new Set();
    for (const campus of data.campuses) {
      campusSelect.appendChild(el("option", { value: campus.name }, campus.name));
      for (const kiosk of campus.kiosks) for (const group of kiosk.groups || []) groups.add(group);
    }
    for (const group of [...groups].sort()) groupSelect.appendChild(el("option", { value: group }, group));
    const draw = () => renderFleet(data, filters, body);
    campusSelect.addEventListener("change", () => ((filters.campus = campusSelect.value), draw()));
    groupSelect.addEventListener("change", () => ((filters.group = groupSelect.value), draw()));
    search.addEventListener("input", () => ((filters.search = search.value), draw()));
    draw();
    performance.mark("fleet:drawn");
  }

  /* ---------- actions: wake / shutdown (test first), unit-split jobs ---------- */

  function actionsPanel() {
    const canWake = allowed("kiosk_power.wake");
    const canShutdown = allowed("kiosk_power.shutdown");
    const canJobs = allowed("kiosk_jobs.run");
    if (!canWake && !canShutdown && !canJobs) return null;
    const out = el("div", { class: "action-result", id: "action-result", "aria-live": "polite" });
    const target = el("input", { id: "a-target", value: "", placeholder: "group:pay", required: true, maxlength: 255 });
    const choose = el("select", { id: "a-action" });
    if (canWake) choose.appendChild(el("option", { value: "wake" }, t("action.wake")));
    if (canShutdown) choose.appendChild(el("option", { value: "shutdown" }, t("action.shutdown")));
    if (canJobs) choose.appendChild(el("option", { value: "job" }, t("action.job")));
    const fun = el("input", { id: "a-fun", value: "test.ping", maxlength: 128 });
    const unit = el("input", { id: "a-unit", type: "number", min: 1, max: 1000, value: 30 });
    const jobFields = el(
      "span",
      { class: "job-fields" },
      el("label", { for: "a-fun" }, t("action.fun")),
      fun,
      el("label", { for: "a-unit" }, t("action.unit")),
      unit
    );
    const syncFields = () => (jobFields.hidden = choose.value !== "job");
    choose.addEventListener("change", syncFields);
    syncFields();

    // A check answers for the values it was made with: Confirm runs exactly
    // those, and any change to the form (or a newer check) withdraws it.
    let seq = 0;
    async function check(event) {
      event.preventDefault();
      const mine = ++seq;
      clear(out);
      const action = choose.value;
      const tgt = target.value.trim();
      const jobFun = fun.value.trim();
      const jobUnit = Number(unit.value);
      try {
        let preview;
        if (action === "wake") {
          preview = await api("kiosk_power.targets", { target: tgt });
          if (mine !== seq) return;
          const lines = Object.entries(preview || {}).map(([campus, spec]) =>
            el("li", {}, t("action.wakeplan", { campus: campus, kiosks: (spec.kiosks || []).join(", "), relays: (spec.relays || []).join(", ") }))
          );
          if (!lines.length) return append(out, [el("p", { class: "error" }, t("action.nokiosk", { target: tgt }))]);
          append(out, [el("p", {}, t("action.testwake")), el("ul", {}, lines)]);
        } else if (action === "shutdown") {
          preview = await api("kiosk_power.shutdown", { target: tgt, test: true });
          if (mine !== seq) return;
          append(out, [el("p", {}, t("action.testshutdown")), resultList(preview)]);
        } else {
          append(out, [el("p", {}, t("action.testjob", { fun: jobFun, target: tgt, unit: jobUnit }))]);
        }
        const confirm = el(
          "button",
          { type: "button", class: "danger", id: "a-confirm" },
          t("action.confirm", { action: t("action." + action), target: tgt })
        );
        confirm.addEventListener("click", async () => {
          if (mine !== seq) return;
          confirm.disabled = true;
          try {
            let ret;
            if (action === "wake") ret = await api("kiosk_power.wake", { target: tgt });
            else if (action === "shutdown") ret = await api("kiosk_power.shutdown", { target: tgt });
            else ret = await api("kiosk_jobs.run", { tgt: tgt, fun: jobFun, unit: jobUnit, wait: true });
            append(out, [el("p", { class: "done", id: "a-done" }, t("action.done")), resultList(ret)]);
          } catch (err) {
            failure(err, out);
          }
        });
        append(out, [confirm, el("button", { type: "button", onclick: () => ((seq += 1), clear(out)) }, t("action.cancel"))]);
      } catch (err) {
        if (mine === seq) failure(err, out);
      }
    }

    const form = el(
      "form",
      { onsubmit: check },
      el("label", { for: "a-action" }, t("action.what")),
      choose,
      el("label", { for: "a-target" }, t("action.target")),
      target,
      jobFields,
      el("button", { type: "submit", id: "a-check" }, t("action.check"))
    );
    form.addEventListener("input", () => ((seq += 1), clear(out)));
    form.addEventListener("change", () => ((seq += 1), clear(out)));

    return el("details", { class: "card actions", id: "actions" }, el("summary", {}, t("action.title")), form, out);
  }

  // A runner's answer as a list of text: {key: value} pairs, one level deep.
  function resultList(ret) {
    if (!ret || typeof ret !== "object") return el("p", {}, text(ret));
    const shown = Array.isArray(ret) ? ret.map((v, i) => [i, v]) : Object.entries(ret);
    return el("ul", { class: "result" }, shown.map(([k, v]) => el("li", {}, el("b", {}, String(k)), ": ", text(v))));
  }

  /* ---------- power plan: timeline and rule editor ---------- */

  const DAY = 86400000;

  function isoDate(date) {
    return date.getFullYear() + "-" + String(date.getMonth() + 1).padStart(2, "0") + "-" + String(date.getDate()).padStart(2, "0");
  }

  function ruleLabel(rule) {
    return rule ? rule : t("plan.default");
  }

  // plan: {minion: {"timeline": [{from, until, state, rule}]}}; ruleInfo: {name: rule}.
  function renderTimeline(plan, ruleInfo, into, days) {
    clear(into);
    const minions = Object.keys(plan).sort();
    if (!minions.length) return append(into, [el("p", { class: "muted" }, t("plan.none"))]);
    const head = el("div", { class: "tl-row tl-head" }, el("span", { class: "tl-name" }, t("plan.kiosk")));
    const scale = el("div", { class: "tl-bar" });
    const first = plan[minions[0]].timeline || [];
    const start = first.length ? Date.parse(first[0].from) : Date.now();
    for (let day = 0; day < days; day += 1) {
      const mark = el("span", { class: "tl-day" }, new Date(start + day * DAY + DAY / 2).toLocaleDateString(undefined, { weekday: "short", month: "numeric", day: "numeric" }));
      mark.style.left = (100 * day) / days + "%";
      mark.style.width = 100 / days + "%";
      scale.appendChild(mark);
    }
    head.appendChild(scale);
    const rows = document.createDocumentFragment();
    rows.appendChild(head);
    for (const minion of minions) {
      const segments = plan[minion].timeline || [];
      const bar = el("div", { class: "tl-bar" });
      if (segments.length) {
        const from = Date.parse(segments[0].from);
        const span = Date.parse(segments[segments.length - 1].until) - from || 1;
        for (const seg of segments) {
          const begin = Date.parse(seg.from);
          const end = Date.parse(seg.until);
          const rule = ruleInfo[seg.rule];
          const holiday = rule && rule.dates && rule.dates.length > 0;
          const piece = el("span", {
            class: "seg state-" + seg.state + (holiday ? " holiday" : ""),
            title: t("plan.segment", {
              state: t("power." + seg.state),
              from: when(seg.from),
              until: when(seg.until),
              rule: ruleLabel(seg.rule),
              priority: rule ? rule.priority : "—",
            }),
            "data-rule": seg.rule || "",
          });
          piece.style.left = (100 * (begin - from)) / span + "%";
          piece.style.width = (100 * (end - begin)) / span + "%";
          bar.appendChild(piece);
        }
      }
      rows.appendChild(el("div", { class: "tl-row", "data-kiosk": minion }, el("span", { class: "tl-name" }, minion), bar));
    }
    into.appendChild(el("div", { class: "timeline", role: "img", "aria-label": t("plan.aria", { count: minions.length, days: days }) }, rows));
    into.appendChild(
      el(
        "p",
        { class: "legend" },
        el("span", { class: "seg-key state-on" }, t("power.on")),
        el("span", { class: "seg-key state-off" }, t("power.off")),
        el("span", { class: "seg-key state-off holiday" }, t("plan.holiday"))
      )
    );
  }

  const RULE_FIELDS = ["name", "state", "days", "dates", "start", "end", "target", "priority", "valid_from", "valid_until"];

  function ruleForm(ruleInfo, onSaved, previewInto, range) {
    const inputs = {};
    const errors = {};
    const field = (name, input) => {
      inputs[name] = input;
      errors[name] = el("span", { class: "field-error", id: "err-" + name, role: "alert" });
      input.setAttribute("aria-describedby", "err-" + name);
      return el("div", { class: "field" }, el("label", { for: "r-" + name }, t("rule." + name)), input, errors[name]);
    };
    const general = el("p", { class: "error", id: "rule-error", role: "alert" });
    const form = el(
      "form",
      { id: "rule-form", class: "card" },
      el("h3", {}, t("rule.title")),
      field("name", el("input", { id: "r-name", required: true, maxlength: 128 })),
      field("state", el("select", { id: "r-state" }, el("option", { value: "on" }, t("power.on")), el("option", { value: "off" }, t("power.off")))),
      field("days", el("input", { id: "r-days", placeholder: "mon-fri" })),
      field("dates", el("input", { id: "r-dates", placeholder: "2027-01-01..2027-01-03" })),
      field("start", el("input", { id: "r-start", placeholder: "07:30", required: true })),
      field("end", el("input", { id: "r-end", placeholder: "18:00", required: true })),
      field("target", el("input", { id: "r-target", value: "*" })),
      field("priority", el("input", { id: "r-priority", type: "number", value: 0 })),
      field("valid_from", el("input", { id: "r-valid_from", placeholder: "YYYY-MM-DD" })),
      field("valid_until", el("input", { id: "r-valid_until", placeholder: "YYYY-MM-DD" })),
      el("button", { type: "submit", class: "primary", id: "r-save" }, t("rule.save")),
      " ",
      el("button", { type: "button", id: "r-new", onclick: () => startNew() }, t("rule.new")),
      general
    );
    const save = form.querySelector("#r-save");
    let editing = null;

    // An edit sends an emptied optional field as "" (the store clears it); a new rule leaves it out.
    const OPTIONAL = ["days", "dates", "valid_from", "valid_until"];
    const collect = () => {
      const rule = {};
      for (const name of RULE_FIELDS) {
        const value = inputs[name].value.trim();
        if (value !== "") rule[name] = name === "priority" ? Number(value) : value;
        else if (editing && OPTIONAL.includes(name)) rule[name] = "";
      }
      return rule;
    };
    const showError = (err) => {
      for (const box of Object.values(errors)) box.textContent = "";
      general.textContent = "";
      const match = /^(\w+):\s/.exec(err.message);
      if (err.refused && match && errors[match[1]]) errors[match[1]].textContent = err.message;
      else general.textContent = err instanceof ApiError && err.status === 401 ? t("error.refused", { message: err.message }) : err.message;
    };
    const clearErrors = () => showError({ message: "" });

    let timer = null;
    let asked = 0;
    const preview = () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const rule = collect();
        if (!rule.name || !rule.start || !rule.end || (!rule.days && !rule.dates)) return;
        for (const name of OPTIONAL) if (rule[name] === "") delete rule[name]; // the preview's rule is whole
        const mine = ++asked;
        try {
          const plan = await api("kiosk_power.preview", { rule: rule, since: range.since, until: range.until });
          if (mine !== asked) return;
          clearErrors();
          const info = Object.assign({}, ruleInfo, { [rule.name]: { priority: rule.priority || 0, dates: rule.dates ? [rule.dates] : [] } });
          append(clear(previewInto), [el("h3", {}, t("rule.preview", { name: rule.name }))]);
          const box = el("div", { id: "preview-timeline" });
          previewInto.appendChild(box);
          renderTimeline(plan, info, box, range.days);
        } catch (err) {
          if (mine === asked) showError(err);
        }
      }, 350);
    };
    form.addEventListener("input", preview);
    form.addEventListener("change", preview);
    const startNew = () => {
      editing = null;
      asked += 1; // a preview still on its way is dropped
      form.reset();
      inputs.name.readOnly = false;
      clear(previewInto);
      clearErrors();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (save.disabled) return;
      save.disabled = true;
      const rule = collect();
      try {
        if (editing) {
          const { name, ...fields } = rule;
          await api("kiosk_power.rule_update", Object.assign({ name: editing }, fields));
        } else {
          await api("kiosk_power.rule_add", rule);
        }
        startNew();
        await onSaved();
        say(t("rule.saved", { name: rule.name }), "done");
      } catch (err) {
        showError(err);
      } finally {
        save.disabled = false;
      }
    });
    form.edit = (rule) => {
      editing = rule.name;
      for (const name of RULE_FIELDS) {
        let value = rule[name];
        if (Array.isArray(value)) value = value.join(",");
        inputs[name].value = value === null || value === undefined ? "" : String(value);
      }
      inputs.name.readOnly = true;
      inputs.name.focus();
      preview();
    };
    return form;
  }

  async function showPlan(params) {
    const root = main();
    const days = 7;
    const today = new Date();
    const range = { since: isoDate(today), until: isoDate(new Date(today.getTime() + days * DAY)), days: days };
    const target = el("input", { id: "p-target", value: params.target || "*", maxlength: 255 });
    const timeline = el("div", { id: "plan-timeline" });
    const previewBox = el("div", { id: "rule-preview" });
    const rulesBox = el("div", { id: "rules" });
    const info = {}; // the stored rules by name, shared with the editor's preview
    let loads = 0;
    const load = async () => {
      const mine = ++loads;
      clear(timeline);
      say(t("app.loading"));
      try {
        const [plan, rules] = await Promise.all([
          api("kiosk_power.plan", { target: target.value.trim() || "*", since: range.since, until: range.until, timeline: true }),
          api("kiosk_power.rule_list", {}),
        ]);
        if (mine !== loads) return; // a newer load is on its way
        say("");
        performance.mark("plan:data");
        for (const name of Object.keys(info)) delete info[name];
        for (const rule of rules) info[rule.name] = rule;
        renderTimeline(plan, info, timeline, days);
        performance.mark("plan:drawn");
        renderRules(rules, rulesBox, form, load);
      } catch (err) {
        if (mine !== loads) return;
        say("");
        failure(err, timeline);
      }
    };
    const canEdit = allowed("kiosk_power.rule_add") || allowed("kiosk_power.rule_update");
    const form = canEdit ? ruleForm(info, load, previewBox, range) : null;
    append(root, [
      el("h2", { class: "view" }, t("nav.plan")),
      el(
        "form",
        { class: "filters", onsubmit: (e) => (e.preventDefault(), load()) },
        el("label", { for: "p-target" }, t("plan.target")),
        target,
        el("button", { type: "submit" }, t("plan.show")),
        el("span", { class: "muted" }, t("plan.range", { since: range.since, until: range.until }))
      ),
      timeline,
      el("div", { class: "columns" }, el("div", {}, el("h3", {}, t("rule.list")), rulesBox), el("div", {}, form, previewBox)),
    ]);
    await load();
  }

  function renderRules(rules, into, form, reload) {
    clear(into);
    const canRemove = allowed("kiosk_power.rule_remove");
    const rows = rules.map((rule) =>
      el(
        "tr",
        { "data-rule": rule.name },
        el("td", {}, rule.name),
        el("td", {}, t("power." + rule.state)),
        el("td", {}, text(rule.days), rule.dates && rule.dates.length ? el("span", { class: "badge holiday" }, t("plan.dates", { count: rule.dates.length })) : null),
        el("td", {}, rule.start + "–" + rule.end),
        el("td", {}, rule.target),
        el("td", {}, String(rule.priority)),
        el(
          "td",
          {},
          form ? el("button", { type: "button", "aria-label": t("rule.editname", { name: rule.name }), onclick: () => form.edit(rule) }, t("rule.edit")) : null,
          canRemove
            ? el("button", {
                type: "button",
                class: "danger",
                "aria-label": t("rule.removename", { name: rule.name }),
                onclick: async () => {
                  if (!window.confirm(t("rule.confirmremove", { name: rule.name }))) return;
                  try {
                    await api("kiosk_power.rule_remove", { name: rule.name });
                    reload();
                  } catch (err) {
                    failure(err, into);
                  }
                },
              }, t("rule.remove"))
            : null
        )
      )
    );
    into.appendChild(table([t("rule.name"), t("rule.state"), t("rule.days"), t("rule.window"), t("rule.target"), t("rule.priority"), ""], rows, { class: "rules" }));
  }

  /* ---------- events and alerts ---------- */

  async function showEvents() {
    const root = main();
    const alertsBox = el("div", { id: "alerts" });
    const eventsBox = el("div", { id: "events" });
    const detail = el("div", { id: "event-detail" });
    append(root, [el("h2", { class: "view" }, t("nav.events")), el("h3", {}, t("events.alerts")), alertsBox, el("h3", {}, t("events.title")), eventsBox, detail]);
    say(t("app.loading"));
    try {
      const [events, fleet] = await Promise.all([
        api("kiosk_power.events", { limit: 50 }),
        api("kiosk_inventory.fleet", {}).catch((err) => ({ failed: err })), // the alerts alone may be refused
      ]);
      say("");
      const open = [];
      for (const campus of (fleet && fleet.campuses) || []) for (const kiosk of campus.kiosks) if (kiosk.alert) open.push(kiosk);
      if (fleet && fleet.failed) failure(fleet.failed, alertsBox);
      else alertsBox.appendChild(
        open.length
          ? table(
              [t("events.kiosk"), t("events.since"), t("events.expected"), t("events.observed"), t("events.reason")],
              open.map((k) => el("tr", {}, el("td", {}, el("a", { href: "#/kiosk/" + encodeURIComponent(k.minion_id) }, k.code)), el("td", {}, when(k.alert.since)), el("td", {}, text(k.alert.expected)), el("td", {}, text(k.alert.observed)), el("td", {}, text(k.alert.reason)))),
              { id: "alert-table" }
            )
          : el("p", { class: "muted" }, t("events.noalerts"))
      );
      eventsBox.appendChild(
        table(
          [t("events.id"), t("events.when"), t("events.action"), t("events.target"), t("events.user"), t("events.outcome"), ""],
          events.map((ev) => {
            const outcomes = Object.values(ev.kiosks || {});
            const good = outcomes.filter((o) => o.ok).length;
            return el(
              "tr",
              { "data-event": ev.id },
              el("td", {}, String(ev.id)),
              el("td", {}, when(ev.created_at)),
              el("td", {}, text(ev.action)),
              el("td", {}, text(ev.target)),
              el("td", {}, text(ev.user)),
              el("td", { class: good === outcomes.length ? "ok" : "bad" }, t("events.count", { good: good, all: outcomes.length })),
              el("td", {}, el("button", { type: "button", "aria-label": t("events.openname", { id: ev.id }), onclick: () => showEvent(ev, detail) }, t("events.open")))
            );
          }),
          { id: "event-table" }
        )
      );
    } catch (err) {
      say("");
      failure(err, eventsBox);
    }
  }

  async function showEvent(ev, into) {
    clear(into);
    into.dataset.event = String(ev.id);
    const rows = Object.entries(ev.kiosks || {}).map(([minion, o]) =>
      el("tr", {}, el("td", {}, minion), el("td", {}, text(o.code)), el("td", { class: o.ok ? "ok" : "bad" }, o.ok ? t("events.ok") : t("events.failed")), el("td", {}, text(o.acked && o.acked.join(", "))), el("td", {}, text(o.silent && o.silent.join(", "))), el("td", {}, text(o.detail)))
    );
    append(into, [
      el("h3", { tabindex: -1, id: "event-heading" }, t("events.detail", { id: ev.id, action: ev.action })),
      table([t("events.kiosk"), t("events.code"), t("events.outcome"), t("events.acked"), t("events.silent"), t("events.detailcol")], rows),
    ]);
    into.querySelector("h3").focus();
    if (!allowed("kiosk_sweep.results")) return;
    try {
      // {sweep number: {minion: {expected, observed, ok, reason, final, checked_at}}}
      const sweeps = await api("kiosk_sweep.results", { event: ev.id });
      if (into.dataset.event !== String(ev.id)) return; // another event was opened meanwhile
      const rows = [];
      for (const [sweep, kiosks] of Object.entries(sweeps || {})) {
        for (const [minion, r] of Object.entries(kiosks)) {
          rows.push(
            el(
              "tr",
              { "data-sweep": sweep, "data-kiosk": minion },
              el("td", {}, minion),
              el("td", {}, sweep + (r.final ? " " + t("events.final") : "")),
              el("td", {}, when(r.checked_at)),
              el("td", {}, text(r.expected)),
              el("td", { class: r.ok ? "ok" : "bad" }, text(r.observed)),
              el("td", {}, text(r.reason))
            )
          );
        }
      }
      append(into, [
        el("h3", {}, t("events.sweeps")),
        rows.length
          ? table([t("events.kiosk"), t("events.sweep"), t("events.when"), t("events.expected"), t("events.observed"), t("events.reason")], rows, { id: "sweep-table" })
          : el("p", { class: "muted" }, t("events.nosweeps")),
      ]);
    } catch (err) {
      failure(err, into);
    }
  }

  /* ---------- releases ---------- */

  async function showReleases() {
    const root = main();
    const box = el("div", { id: "releases" });
    append(root, [el("h2", { class: "view" }, t("nav.releases")), box]);
    say(t("app.loading"));
    try {
      const [releases, status] = await Promise.all([api("kiosk_release.list", {}), api("kiosk_release.status", {})]);
      say("");
      const versions = status.versions || {};
      append(box, [
        el("p", { id: "release-latest" }, t("releases.latest", { version: text(status.latest) })),
        el("h3", {}, t("releases.published")),
        table(
          [t("releases.version"), t("releases.md5"), t("releases.when"), t("releases.rollbackof"), t("releases.kiosks")],
          releases
            .slice()
            .reverse()
            .map((r) =>
              el(
                "tr",
                { "data-version": r.version },
                el("td", {}, text(r.version)),
                el("td", { class: "mono" }, text(r.md5)),
                el("td", {}, when(r.published)),
                el("td", {}, text(r.rollback_of)),
                el("td", {}, String((versions[r.version] || []).length))
              )
            ),
          { id: "release-list" }
        ),
        el("h3", {}, t("releases.rollouts")),
        (status.rollouts || []).length ? rolloutList(status.rollouts) : el("p", { class: "muted" }, t("releases.norollouts")),
        el("h3", {}, t("releases.perkiosk")),
        kioskReleaseTable(status),
      ]);
    } catch (err) {
      say("");
      failure(err, box);
    }
  }

  function rolloutList(rollouts) {
    return el(
      "div",
      { id: "rollouts" },
      rollouts.map((ro) =>
        el(
          "section",
          { class: "card rollout", "data-rollout": ro.id },
          el("h4", {}, t("releases.rollout", { id: ro.id, version: text(ro.version), status: text(ro.status), user: text(ro.user) })),
          ro.reason ? el("p", { class: "bad" }, text(ro.reason)) : null,
          el(
            "ol",
            { class: "waves" },
            (ro.waves || []).map((w) => el("li", { class: "wave-" + w.state }, t("releases.wave", { wave: w.wave, size: w.size, state: w.state, counts: Object.entries(w.counts || {}).map(([k, n]) => k + " " + n).join(", ") })))
          ),
          table(
            [t("events.kiosk"), t("releases.wavecol"), t("releases.state"), t("events.reason")],
            Object.entries(ro.kiosks || {}).map(([minion, k]) =>
              el("tr", { "data-kiosk": minion }, el("td", {}, minion), el("td", {}, text(k.wave)), el("td", { class: k.status === "installed" ? "ok" : k.status === "pending" ? "" : "bad" }, text(k.status)), el("td", {}, text(k.reason)))
            )
          )
        )
      )
    );
  }

  function kioskReleaseTable(status) {
    const rows = [];
    for (const [version, kiosks] of Object.entries(status.versions || {})) {
      for (const minion of kiosks) {
        const failed = (status.failures || {})[minion];
        const rolled = (status.rolled_back || {})[minion];
        const gone = (status.unreachable || {})[minion];
        let state = t("releases.installed");
        if (gone) state = t("releases.unreachable");
        else if (failed) state = t("releases.failed", { version: text(failed.version), reason: text(failed.reason) });
        else if (rolled) state = t("releases.rolledback", { version: text(rolled.version), reason: text(rolled.reason) });
        else if ((status.behind || []).includes(minion)) state = t("releases.behind");
        rows.push(
          el(
            "tr",
            { "data-kiosk": minion },
            el("td", {}, minion),
            el("td", {}, version),
            el("td", { class: failed || rolled || gone ? "bad" : "ok" }, state)
          )
        );
      }
    }
    return table([t("events.kiosk"), t("releases.version"), t("releases.state")], rows, { id: "release-kiosks" });
  }

  /* ---------- environment ---------- */

  // A line chart of points[key] over the window [since, until] (ISO times).
  function chart(points, key, label, unit, since, until) {
    const width = 560;
    const height = 160;
    const pad = 30;
    const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
    const values = points.filter((p) => typeof p[key] === "number");
    const title = svg("title");
    title.textContent = label;
    box.appendChild(title);
    if (!values.length) {
      const none = svg("text", { x: pad, y: height / 2 });
      none.textContent = t("env.nodata");
      box.appendChild(none);
      return box;
    }
    const times = values.map((p) => Date.parse(p.at));
    const nums = values.map((p) => p[key]);
    const t0 = Date.parse(since);
    const t1 = Date.parse(until);
    let lo = Math.min(...nums);
    let hi = Math.max(...nums);
    if (hi === lo) (lo -= 1), (hi += 1);
    const x = (time) => pad + ((width - 2 * pad) * (time - t0)) / (t1 - t0 || 1);
    const y = (v) => height - pad - ((height - 2 * pad) * (v - lo)) / (hi - lo);
    box.appendChild(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    for (const v of [lo, hi]) {
      const tick = svg("text", { x: 2, y: y(v) + 4, class: "tick" });
      tick.textContent = v.toFixed(1) + unit;
      box.appendChild(tick);
    }
    const line = values.map((p, i) => `${i ? "L" : "M"}${x(times[i]).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    box.appendChild(svg("path", { d: line, class: "line " + key }));
    for (const [i, p] of values.entries()) {
      // Each interval's average as a dot (a lone reading is a dot, not an invisible line); smoke in purple.
      const dot = svg("circle", { cx: x(times[i]).toFixed(1), cy: y(p[key]).toFixed(1), r: p.smoke ? 4 : 2.5, class: "point " + key + (p.smoke ? " smoke" : "") });
      const tip = svg("title");
      tip.textContent = when(p.at) + ": " + p[key] + unit + (p.smoke ? " · " + t("env.smoke") : "");
      dot.appendChild(tip);
      box.appendChild(dot);
    }
    return box;
  }

  async function showEnv(params) {
    const root = main();
    const hours = { 1: 1, 168: 168 }[params.hours] || 24;
    const box = el("div", { id: "env" });
    append(root, [
      el("h2", { class: "view" }, t("nav.env")),
      el(
        "p",
        { class: "filters" },
        el("a", { href: "#/env?hours=1", "aria-current": hours === 1 ? "true" : null, class: "pill" }, t("env.hour")),
        el("a", { href: "#/env?hours=24", "aria-current": hours === 24 ? "true" : null, class: "pill" }, t("env.day")),
        el("a", { href: "#/env?hours=168", "aria-current": hours === 168 ? "true" : null, class: "pill" }, t("env.week"))
      ),
      box,
    ]);
    say(t("app.loading"));
    try {
      const data = await api("kiosk_env.series", { hours: hours, buckets: { 1: 60, 24: 96, 168: 84 }[hours] });
      say("");
      const block = (kind, name, points) =>
        el(
          "section",
          { class: "env-block", ["data-" + kind]: name },
          el("h3", {}, t("env." + kind, { name: name })),
          el("div", { class: "charts" }, chart(points, "temperature", t("env.temperature", { name: name }), "°C", data.since, data.until), chart(points, "humidity", t("env.humidity", { name: name }), "%", data.since, data.until))
        );
      for (const [campus, entry] of Object.entries(data.campuses || {}).sort()) box.appendChild(block("campus", campus, entry.points));
      for (const [relay, entry] of Object.entries(data.relays || {}).sort()) box.appendChild(block("relay", relay, entry.points));
      if (!Object.keys(data.campuses || {}).length) box.appendChild(el("p", { class: "muted" }, t("env.noreadings")));
      box.appendChild(el("h3", {}, t("env.alerts")));
      box.appendChild(
        (data.alerts || []).length
          ? table(
              [t("env.at"), t("env.relaycol"), t("env.campuscol"), t("env.sensor"), t("env.state"), t("env.value")],
              data.alerts.map((a) => el("tr", { class: "alert-row" }, el("td", {}, when(a.at)), el("td", {}, text(a.relay)), el("td", {}, text(a.campus)), el("td", {}, text(a.sensor)), el("td", {}, text(a.state)), el("td", {}, text(a.value)))),
              { id: "env-alerts" }
            )
          : el("p", { class: "muted" }, t("env.noalerts"))
      );
    } catch (err) {
      say("");
      failure(err, box);
    }
  }

  /* ---------- kiosk page ---------- */

  async function showKiosk(minion) {
    const root = main();
    const box = el("div", { id: "kiosk" });
    append(root, [el("p", {}, el("a", { href: "#/fleet" }, t("kiosk.back"))), box]);
    say(t("app.loading"));
    try {
      const rows = await api("kiosk_inventory.list", { target: "id:" + minion.replace(/[*?[\]]/g, "") });
      const kiosk = rows.find((k) => k.minion_id === minion);
      say("");
      if (!kiosk) return failure(new Error(t("kiosk.unknown", { kiosk: minion })), box);
      // Each part below stands alone: one refused or failed call leaves the others shown.
      const optional = (fun, kwarg) => (allowed(fun) ? api(fun, kwarg).catch((err) => ({ failed: err })) : Promise.resolve(null));
      const [assetAnswer, history, jobs] = await Promise.all([
        optional("kiosk_inventory.asset", { kiosk: minion }),
        optional("kiosk_inventory.history", { kiosk: minion, limit: 50 }),
        optional("kiosk_jobs.recent", { minion: minion, limit: 20 }),
      ]);
      const asset = assetAnswer && !assetAnswer.failed ? assetAnswer : null;
      const facts = Object.assign({}, (asset && asset.facts) || {}, asset || {}, kiosk);
      const fields = ["code", "minion_id", "campus", "groups", "ip", "mac", "vnc_port", "hostname", "release", "vendor", "model", "serial", "cpu", "cpu_count", "memory_mb", "disk_gb", "first_seen", "last_seen"];
      const shownValue = (f) => (f.endsWith("_seen") ? when(facts[f]) : text(Array.isArray(facts[f]) ? facts[f].join(", ") : facts[f]));
      append(box, [
        el("h2", { class: "view" }, t("kiosk.title", { code: kiosk.code })),
        el(
          "dl",
          { class: "inventory", id: "kiosk-inventory" },
          fields.filter((f) => f in facts).map((f) => [el("dt", {}, t("kiosk.f." + f)), el("dd", { "data-field": f }, shownValue(f))])
        ),
        asset ? null : assetAnswer && assetAnswer.failed ? failure(assetAnswer.failed) : el("p", { class: "muted" }, t("kiosk.noasset")),
      ]);
      const tools = el("p", { class: "tools" });
      box.appendChild(tools);
      if (allowed("kiosk_vnc.link")) {
        tools.appendChild(
          el(
            "button",
            {
              type: "button",
              id: "novnc",
              onclick: async (event) => {
                const button = event.currentTarget;
                if (button.disabled) return;
                button.disabled = true;
                try {
                  const link = await api("kiosk_vnc.link", { kiosk: minion });
                  const address = new URL(link.url, location.href);
                  if (address.protocol !== "https:" && address.protocol !== "http:") {
                    throw new Error(t("kiosk.badlink", { url: link.url }));
                  }
                  // A link as well as the new tab, in case the browser holds the tab back.
                  const old = document.getElementById("novnc-link");
                  if (old) old.remove();
                  const anchor = el("a", { href: link.url, target: "_blank", rel: "noopener noreferrer", id: "novnc-link", class: "pill" }, t("kiosk.novnclink", { code: link.code }));
                  tools.appendChild(anchor);
                  anchor.click();
                } catch (err) {
                  failure(err, tools);
                } finally {
                  button.disabled = false;
                }
              },
            },
            t("kiosk.novnc")
          )
        );
      }
      if (allowed("kiosk_power.wake") || allowed("kiosk_power.shutdown")) {
        tools.appendChild(el("a", { href: "#/fleet?target=" + encodeURIComponent("id:" + minion), class: "pill" }, t("kiosk.actions")));
      }
      if (history && history.failed) append(box, [el("h3", {}, t("kiosk.history")), failure(history.failed)]);
      else if (history) {
        append(box, [
          el("h3", {}, t("kiosk.history")),
          history.length
            ? table([t("kiosk.when"), t("kiosk.field"), t("kiosk.old"), t("kiosk.new")], history.map((h) => el("tr", {}, el("td", {}, when(h.changed_at)), el("td", {}, text(h.field)), el("td", {}, text(h.old)), el("td", {}, text(h.new)))), { id: "kiosk-history" })
            : el("p", { class: "muted" }, t("kiosk.nohistory")),
        ]);
      }
      if (jobs && jobs.failed) append(box, [el("h3", {}, t("kiosk.jobs")), failure(jobs.failed)]);
      else if (jobs) {
        append(box, [
          el("h3", {}, t("kiosk.jobs")),
          jobs.length
            ? table([t("kiosk.when"), t("kiosk.jid"), t("kiosk.fun"), t("kiosk.success"), t("kiosk.master")], jobs.map((j) => el("tr", {}, el("td", {}, when(j.at)), el("td", { class: "mono" }, text(j.jid)), el("td", {}, text(j.fun)), el("td", { class: j.success ? "ok" : j.success === false ? "bad" : "" }, j.success ? t("events.ok") : j.success === false ? t("events.failed") : t("power.unknown")), el("td", {}, text(j.master_id)))), { id: "kiosk-jobs" })
            : el("p", { class: "muted" }, t("kiosk.nojobs")),
        ]);
      }
    } catch (err) {
      say("");
      failure(err, box);
    }
  }

  /* ---------- routing ---------- */

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const params = {};
    for (const [key, value] of new URLSearchParams(query || "")) params[key] = value;
    const decode = (part) => {
      try {
        return decodeURIComponent(part);
      } catch (err) {
        return part; // a malformed escape is shown as typed, not a crash
      }
    };
    const parts = path.split("/").map(decode);
    return { view: parts[0] || "fleet", arg: parts.slice(1).join("/"), params: params };
  }

  function route() {
    if (!session.load()) return showLogin();
    const { view, arg, params } = parseHash();
    markNav(view);
    document.getElementById("main").focus({ preventScroll: true });
    const views = { fleet: showFleet, plan: showPlan, events: showEvents, releases: showReleases, env: showEnv };
    const shown = view === "kiosk" && arg ? showKiosk(arg) : (views[view] || showFleet)(params);
    shown
      .then(() => {
        if (view === "fleet" && params.target) {
          const details = document.getElementById("actions");
          if (details) {
            details.open = true;
            document.getElementById("a-target").value = params.target;
          }
        }
      })
      .catch((err) => failure(err, document.getElementById("main")));
  }

  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", () => {
    document.title = t("app.title");
    // The skip link moves the focus; it is not a view (a hash change would re-route).
    document.querySelector("a.skip").addEventListener("click", (event) => {
      event.preventDefault();
      document.getElementById("main").focus();
    });
    header();
    route();
  });
})();
