// photoslot admin: small progressive helpers. Every page works without this file (forms post,
// confirmations are pages of their own); it adds the Copy button, the live refresh, the session's
// watch ("Session ended — sign in again", what was typed kept), the slot form's provider/operation
// switch without a reload, template previews, and the test shot's progress.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var body = document.body;
  var DRAFT = "photoslot-draft";

  // ------------------------------------------------------------------ copy buttons
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var el = document.getElementById(btn.getAttribute("data-copy"));
      var text = el ? el.textContent.trim() : "";
      var done = function () { btn.setAttribute("data-copied", "1"); btn.textContent = btn.getAttribute("data-done") || btn.textContent; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { fallback(el); done(); });
      } else { fallback(el); done(); }
    });
  });
  function fallback(el) {
    if (!el) return;
    var range = document.createRange(); range.selectNodeContents(el);
    var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    try { document.execCommand("copy"); } catch (e) { /* selected for the user to copy */ }
  }

  // ------------------------------------------------------------------ drafts: what was typed survives a sign-in
  function fieldsOf(form) {
    var out = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.name === "csrf" || el.type === "file" || el.type === "password" ||
          el.type === "submit" || el.type === "button") return;
      if (el.type === "checkbox" || el.type === "radio") out.push([el.name, el.checked ? "on" : "", el.type]);
      else out.push([el.name, el.value, el.type]);
    });
    return out;
  }
  function saveDraft(form, pending) {
    try {
      sessionStorage.setItem(DRAFT, JSON.stringify({path: location.pathname, action: form.getAttribute("action"),
        fields: fieldsOf(form), at: Date.now(), pending: !!pending}));
    } catch (e) { /* storage full or off: nothing kept */ }
  }
  function readDraft() {
    try { return JSON.parse(sessionStorage.getItem(DRAFT) || "null"); } catch (e) { return null; }
  }
  document.querySelectorAll("form[data-draft]").forEach(function (form) {
    form.addEventListener("submit", function () { saveDraft(form, false); });
  });
  function restore(form, fields) {
    var sw = {};
    fields.forEach(function (f) { if (f[0] === "provider_id" || f[0] === "operation_id") sw[f[0]] = f[1]; });
    if (sw.provider_id && form.elements.provider_id) { form.elements.provider_id.value = sw.provider_id; switchOperation(form, sw.operation_id); }
    fields.forEach(function (f) {
      if (f[0] === "provider_id" || f[0] === "operation_id") return;
      var candidates = Array.prototype.filter.call(form.querySelectorAll('[name="' + CSS.escape(f[0]) + '"]'),
        function (el) { return !el.disabled; });
      candidates.forEach(function (el) {
        if (el.type === "checkbox" || el.type === "radio") el.checked = f[1] === "on";
        else el.value = f[1];
        el.dispatchEvent(new Event("change"));
      });
    });
    var note = document.createElement("p");
    note.className = "notice"; note.setAttribute("role", "status"); note.id = "draft-restored";
    note.textContent = body.getAttribute("data-restored") || "";
    form.insertBefore(note, form.firstChild);
  }

  // ------------------------------------------------------------------ the session's watch
  var ended = false, refreshTimer = null, renewEvery = 60000;
  function sessionEnded() {
    if (ended) return;
    ended = true;
    if (refreshTimer) clearInterval(refreshTimer);
    document.querySelectorAll("form[data-draft]").forEach(function (form) { saveDraft(form, false); });
    var box = document.getElementById("session-ended");
    if (box) box.hidden = false;
    document.querySelectorAll(".refresh-state").forEach(function (el) {
      el.textContent = el.getAttribute("data-stopped-text"); el.classList.add("stopped");
    });
    document.querySelectorAll("[data-refresh]").forEach(function (el) { el.classList.add("stale"); });
  }
  function check(active) {
    return fetch("/admin/session" + (active ? "?active=1" : ""), {credentials: "same-origin", cache: "no-store",
      headers: {"X-Requested-With": "session"}})
      .then(function (r) {
        if (r.status === 401) { sessionEnded(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (state) {
        if (!state) return;
        if (state.idle_sec) renewEvery = Math.max(1000, Math.min(60000, state.idle_sec * 1000 / 4));
        plan(state.expires_in_sec);
      })
      .catch(function () { /* the server is away: the next check tells */ });
  }
  var planned = null;
  function plan(seconds) {
    if (planned) clearTimeout(planned);
    // look again when it would end (a renewal in another tab may have moved it), at least every minute
    planned = setTimeout(function () { check(false); }, Math.max(1, Math.min(60, seconds + 1)) * 1000);
  }
  if (body.getAttribute("data-session") === "on") {
    check(false);
    var lastActive = 0;
    ["keydown", "pointerdown", "input"].forEach(function (type) {
      document.addEventListener(type, function () {
        if (ended) return;
        var now = Date.now();
        if (now - lastActive > renewEvery) { lastActive = now; check(true); }  // in use: renewed (sessions.py)
      }, {passive: true, capture: true});
    });
  }

  // ------------------------------------------------------------------ live pages: [data-refresh="N"]
  var live = document.querySelector("[data-refresh]");
  if (live) {
    var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 5;
    document.querySelectorAll(".refresh-state").forEach(function (el) { el.textContent = el.getAttribute("data-live-text"); });
    refreshTimer = setInterval(function () {
      fetch(window.location.href, {credentials: "same-origin", headers: {"X-Requested-With": "refresh"}})
        .then(function (r) {
          if (r.status === 401) { sessionEnded(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (!html || ended) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(live.id);
          if (fresh && fresh.innerHTML !== live.innerHTML) live.innerHTML = fresh.innerHTML;
        }).catch(function () {});
    }, seconds * 1000);
  }

  // ------------------------------------------------------------------ the slot form: provider and operation
  function switchOperation(form, wanted) {
    var provider = form.elements.provider_id.value;
    var select = form.elements.operation_id;
    var tpl = form.querySelector('template[data-operations="' + provider + '"]');
    if (tpl) {
      var current = select.value;
      select.innerHTML = tpl.innerHTML;
      var keep = wanted || current;
      if (Array.prototype.some.call(select.options, function (o) { return o.value === keep; })) select.value = keep;
    }
    showOperation(form);
  }
  var detached = {};  // provider/operation → its fields as they were left (what was typed stays)
  function showOperation(form) {
    var key = form.elements.provider_id.value + "/" + form.elements.operation_id.value;
    var live = form.querySelector("fieldset.op");
    if (!live || live.getAttribute("data-op") !== key) {
      var next = detached[key];
      if (!next) {
        var tpl = form.querySelector('template[data-op-fields="' + key + '"]');
        next = tpl ? tpl.content.querySelector("fieldset.op").cloneNode(true) : null;
      }
      if (next && live) { detached[live.getAttribute("data-op")] = live; live.replaceWith(next); }
      live = next || live;
    }
    if (!live) return;
    var mode = live.getAttribute("data-prompt");
    var field = document.getElementById("prompt-field");
    var prompt = form.elements.prompt, mark = document.getElementById("prompt-mark");
    if (field && prompt) {
      field.hidden = mode === "none"; prompt.disabled = mode === "none"; prompt.required = mode === "required";
      if (mark) mark.textContent = mark.getAttribute(mode === "required" ? "data-required" : "data-optional");
    }
    replaceBoxes();
  }
  document.querySelectorAll("select[data-switch]").forEach(function (sel) {
    sel.addEventListener("change", function () {
      if (sel.name === "provider_id") switchOperation(sel.form); else showOperation(sel.form);
    });
  });
  document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });

  // ------------------------------------------------------------------ templates: previews, replacing asks first
  // (delegated: an operation's fields come and go with the switch above)
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("select[data-preview-select]")) {
      var img = document.getElementById(t.getAttribute("data-preview-select"));
      if (img) {
        if (t.value) { img.src = "/admin/templates/" + encodeURIComponent(t.value) + "/image"; img.hidden = false; }
        else { img.removeAttribute("src"); img.hidden = true; }
      }
      replaceBoxes();
    }
    if (t.matches && t.matches("input[type=file][data-preview]")) {
      var shown = document.getElementById(t.getAttribute("data-preview"));
      if (shown && t.files && t.files[0]) { shown.src = URL.createObjectURL(t.files[0]); shown.hidden = false; }
    }
    if (t.matches && t.matches("input[type=file][data-replace]")) replaceBoxes();
  });
  function replaceBoxes() {
    document.querySelectorAll("input[type=file][data-replace]").forEach(function (input) {
      var box = document.getElementById(input.getAttribute("data-replace"));
      var role = input.closest("fieldset.tpl-role");
      var chosen = role && role.querySelector("select[data-preview-select]");
      if (!box) return;
      var asks = !!(chosen && chosen.value && input.files && input.files.length);
      box.closest("label").hidden = !asks && !box.checked;
    });
  }
  replaceBoxes();

  // ------------------------------------------------------------------ drop a photo; preview before sending
  document.querySelectorAll("[data-drop]").forEach(function (zone) {
    var input = document.getElementById(zone.getAttribute("data-drop"));
    if (!input || typeof DataTransfer === "undefined") return;
    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("drop-over"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("drop-over"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault(); zone.classList.remove("drop-over");
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        input.dispatchEvent(new Event("change"));
      }
    });
  });

  // ------------------------------------------------------------------ the test shot's progress
  // The form is sent by fetch so the page can count the seconds while the shot runs (it may take the
  // whole response window); its answer is the redirect to the result, which the page then opens.
  // Without this script the form is sent as any form, and the browser's own spinner shows it runs.
  document.querySelectorAll("form[data-progress]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (typeof fetch === "undefined" || typeof FormData === "undefined") return;
      e.preventDefault();
      var max = parseInt(form.getAttribute("data-progress"), 10) || 60;
      var box = form.querySelector(".progress"), bar = box && box.querySelector("progress");
      var line = box && box.querySelector("[data-running]");
      var button = form.querySelector("button[type=submit]");
      if (box) box.hidden = false;
      if (button) button.disabled = true;  // sent once: a second click would be a second paid call
      var started = Date.now();
      var tick = function () {
        var s = Math.min(max, Math.floor((Date.now() - started) / 1000));
        if (bar) bar.value = s;
        if (line) line.textContent = line.getAttribute("data-running").replace("{s}", s).replace("{max}", max);
      };
      tick();
      var timer = setInterval(tick, 1000);
      fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
        .then(function (r) { clearInterval(timer); window.location.assign(r.url + (r.url.indexOf("#") < 0 ? "#test-shot" : "")); })
        .catch(function () { clearInterval(timer); form.submit(); });
    });
  });

  // ------------------------------------------------------------------ back after signing in: what was typed
  var draft = readDraft();
  if (document.querySelector("[data-login-form]")) {
    if (draft && Date.now() - draft.at < 12 * 3600 * 1000) { draft.pending = true; sessionStorage.setItem(DRAFT, JSON.stringify(draft)); }
  } else if (draft) {
    sessionStorage.removeItem(DRAFT);
    var target = draft.pending && draft.path === location.pathname &&
      document.querySelector('form[data-draft][action="' + draft.action + '"]');
    if (target) restore(target, draft.fields);
  }
});
