// FlowChat console: the little script the pages need (htmx does the rest). No inline
// script anywhere: the content security policy allows only the console's own files.
(function () {
  "use strict";

  // The phone menu: a real button, toggled by click or keyboard.
  function setUpMenu() {
    var button = document.querySelector(".menu-toggle");
    var nav = document.getElementById("nav");
    if (!button || !nav) return;
    button.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Live updates: an element with data-live-src opens that server-sent-event stream;
  // each event is re-dispatched on <body> as "live" (detail: the event's data), and
  // elements with hx-trigger="live from:body" reload their part of the page.
  function setUpLive() {
    var holder = document.querySelector("[data-live-src]");
    if (!holder || !window.EventSource) return;
    var source = new EventSource(holder.getAttribute("data-live-src"));
    source.onmessage = function (e) {
      var data = null;
      try { data = JSON.parse(e.data); } catch (err) { data = null; }
      if (data && data.type === "connected") { holder.setAttribute("data-live", "open"); return; }
      document.body.dispatchEvent(new CustomEvent("live", { detail: data }));
      if (data && data.thread_id) {
        document.body.dispatchEvent(new CustomEvent("live-thread-" + data.thread_id, { detail: data }));
      }
      holder.setAttribute("data-live-count", String(Number(holder.getAttribute("data-live-count") || "0") + 1));
    };
    source.addEventListener("signin", function () { source.close(); window.location.assign("/sign-in"); });
    source.onopen = function () { holder.setAttribute("data-live", "open"); };
    source.onerror = function () { holder.setAttribute("data-live", "retrying"); };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Buttons that ask first: data-confirm="Resolve this conversation?"
  function setUpConfirm() {
    document.body.addEventListener("htmx:confirm", function (e) {
      var el = e.detail.elt;
      var question = el && el.getAttribute("data-confirm");
      if (question && !window.confirm(question)) e.preventDefault();
    });
  }

  // After a swap that marks focus (data-focus), move keyboard focus there.
  function setUpFocus() {
    document.body.addEventListener("htmx:afterSwap", function (e) {
      var target = e.detail.target && e.detail.target.querySelector("[data-focus]");
      if (target) target.focus();
      var scroller = document.querySelector(".messages");
      if (scroller) scroller.scrollTop = scroller.scrollHeight;
    });
    var scroller = document.querySelector(".messages");
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
  }

  // CSV imports with progress: a form with data-import-parts sends the file in parts (the
  // header and data-part-rows rows each, raw CSV, one after the other) and shows the rows
  // done; the parts' reports become one (data-import-report renders it). A file with
  // quotes (a value may hold a line break) goes in one part. Without JavaScript the form
  // posts the whole file.
  function setUpImport() {
    var form = document.querySelector("form[data-import-parts]");
    if (!form || !window.fetch || !window.File || !File.prototype.text) return;
    var box = document.querySelector(".import-progress");
    var bar = box && box.querySelector("progress");
    var label = box && box.querySelector("[role=status]");
    var target = document.querySelector(form.getAttribute("data-target"));
    var csrf = form.querySelector("input[name=csrf_token]").value;
    function show(done, total) {
      var pct = total ? Math.floor((100 * done) / total) : 100;
      bar.value = pct;
      label.textContent = done + " of " + total + " rows (" + pct + "%)";
      box.setAttribute("data-done", String(done));
    }
    function post(url, body, type) {
      return fetch(url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Content-Type": type, "X-CSRF-Token": csrf }
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r;
      });
    }
    form.addEventListener("submit", function (e) {
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) return;
      var size = Number(form.getAttribute("data-part-rows")) || 200;
      e.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      box.hidden = false;
      file.text().then(function (text) {
        var lines = text.split(/\r?\n/);
        if (lines.length && lines[lines.length - 1] === "") lines.pop();
        var header = lines.shift() || "";
        var rows = lines.length;
        var step = text.indexOf('"') >= 0 ? Math.max(rows, 1) : size;
        var parts = [];
        show(0, rows);
        function next(offset) {
          if (offset >= rows && (rows > 0 || parts.length)) {
            var report = JSON.stringify({ filename: file.name, parts: parts });
            return post(form.getAttribute("data-import-report"), report, "application/json")
              .then(function (r) { return r.text(); })
              .then(function (html) { target.innerHTML = html; });
          }
          var chunk = [header].concat(lines.slice(offset, offset + step)).join("\n") + "\n";
          var url = form.getAttribute("data-import-parts") + "?offset=" + offset;
          return post(url, chunk, "text/csv")
            .then(function (r) { return r.json(); })
            .then(function (part) {
              parts.push(part);
              show(Math.min(offset + step, rows), rows);
              return next(offset + step);
            });
        }
        return next(0);
      }).catch(function (err) {
        var done = box.getAttribute("data-done") || "0";
        label.textContent = "The import stopped (" + err.message + ") after " + done + " rows.";
        box.setAttribute("data-failed", "yes");
      }).then(function () { button.disabled = false; form.reset(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpImport();
    setUpMenu();
    setUpLive();
    setUpConfirm();
    setUpFocus();
  });
})();
