// photoslot admin: small progressive helpers. Every page works without this file; it adds the
// Copy button, the live refresh of the slots, and the slot form's provider/operation switch.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy="<id of the element whose text is copied>"
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
  // Live pages: <body data-refresh="5"> reloads its live part every N seconds.
  var live = document.querySelector("[data-refresh]");
  if (live) {
    var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 5;
    setInterval(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(live.id);
          if (fresh) live.innerHTML = fresh.innerHTML;
        }).catch(function () {});
    }, seconds * 1000);
  }
  // Slot form: a new provider or operation reloads the form with that operation's fields.
  document.querySelectorAll("select[data-switch]").forEach(function (sel) {
    sel.addEventListener("change", function () {
      var form = sel.form;
      var url = new URL(window.location.href);
      url.searchParams.set("provider_id", form.elements["provider_id"].value);
      url.searchParams.set("operation_id", sel.name === "provider_id" ? "" : form.elements["operation_id"].value);
      ["name", "prompt"].forEach(function (k) { if (form.elements[k]) url.searchParams.set(k, form.elements[k].value); });
      window.location.assign(url.toString());
    });
  });
  document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });
  // Drop a photo on the test-shot (or template) box: it becomes the form's file.
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
  // A chosen test photo or template is shown before it is sent.
  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    input.addEventListener("change", function () {
      var img = document.getElementById(input.getAttribute("data-preview"));
      if (img && input.files && input.files[0]) { img.src = URL.createObjectURL(input.files[0]); img.hidden = false; }
    });
  });
});
