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

  document.addEventListener("DOMContentLoaded", function () {
    setUpMenu();
    setUpLive();
    setUpConfirm();
    setUpFocus();
  });
})();
