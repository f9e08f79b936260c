// bulkexport-relay console: the only script. Pages showing work in flight (body[data-refresh]) reload themselves
// every N seconds, unless the operator unticked "Refresh" (remembered for the tab), is typing in a form, or the tab
// is hidden. The focused element is focused again after the reload, so keyboard users keep their place.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var key = "relay-console-refresh-off";
  var focusKey = "relay-console-focus";
  var box = document.getElementById("autorefresh");

  var refocus = sessionStorage.getItem(focusKey);
  if (refocus) {
    sessionStorage.removeItem(focusKey);
    var el = document.getElementById(refocus);
    if (el) { el.focus({ preventScroll: true }); }
  }
  if (!seconds) { return; }
  if (box) {
    box.checked = sessionStorage.getItem(key) !== "1";
    box.addEventListener("change", function () { sessionStorage.setItem(key, box.checked ? "0" : "1"); });
  }

  function busy() {
    var a = document.activeElement;
    return a && a.form && a !== box && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }

  function tick() {
    if ((box && !box.checked) || document.hidden || busy()) {
      window.setTimeout(tick, seconds * 1000);
      return;
    }
    var a = document.activeElement;
    if (a && a.id) { sessionStorage.setItem(focusKey, a.id); }
    window.location.reload();
  }
  window.setTimeout(tick, seconds * 1000);
})();
