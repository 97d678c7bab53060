// memsvc admin: confirmations for destructive forms (no inline handlers: the CSP forbids them).
"use strict";
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) ev.preventDefault();
});
