// The message page's Copy button: puts the raw message (as shown) on the clipboard.
// A separate file because the console's Content-Security-Policy allows no inline script.
"use strict";
(function () {
  const button = document.getElementById("copy-raw");
  if (!button) { return; }
  const result = document.getElementById("copy-result");
  function said(text) { if (result) { result.textContent = text; } }
  button.addEventListener("click", function () {
    const source = document.getElementById(button.dataset.target || "raw-text");
    if (!source) { return; }
    const text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { said("Copied " + text.length + " characters."); },
        function () { said("The browser refused the clipboard: select the text and copy it."); });
      return;
    }
    const range = document.createRange();  // plain http off localhost: select, then copy
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    said(document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C to copy.");
  });
})();
